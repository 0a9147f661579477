package ilpinvoice

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/qr"
)

// The two ILPv1 payment packets of the document's 5.4 example, as its
// DFSPs put them in a credit's memo.
const (
	seedPacketPerfTest = "AYIBhgAAAAAAAAPoOmxldmVsb25lLmRmc3AxLlBlcmZUZXN0My5OdWlsRldUajNOOEs2dU0zRUprM25iZFdiX01LQkpwa1GCAT9QU0svMS4wCk5vbmNlOiBremE3cjlzaVFxLVpVQjJfaVphUTNBCkVuY3J5cHRpb246IG5vbmUKUGF5bWVudC1JZDogN2ZmZWMwNDMtYjA4Mi00OTExLWI0YjktNDhjYTczYzdiZjQzCgpDb250ZW50LUxlbmd0aDogMTM0CkNvbnRlbnQtVHlwZTogYXBwbGljYXRpb24vanNvbgpTZW5kZXItSWRlbnRpZmllcjogMjk5OTk4MDEKCiJ7XCJmZWVcIjowLFwidHJhbnNmZXJDb2RlXCI6XCJwMnBcIixcImRlYml0TmFtZVwiOlwiRGF2aWQgV2FybmVyXCIsXCJjcmVkaXROYW1lXCI6XCJUZWRkeSBEdW5jYW5cIixcImRlYml0SWRlbnRpZmllclwiOlwiMjk5OTk4MDFcIn0iAA"
	seedPacketMerchant = "AYIBgQAAAAAAAARMNGxldmVsb25lLmRmc3AxLm1lci5UQzFROHVYUllOOFpSNnJxc29yQXo0VExCWEEwdGFxSGeCAUBQU0svMS4wCk5vbmNlOiBrQVJ5eEdmdkpIeWVEWG92RVBEanB3CkVuY3J5cHRpb246IG5vbmUKUGF5bWVudC1JZDogZjI1MWQyYjItZDYxOS00YzIyLWFkYWEtZDBjYzFjNTg1OTk5CgpDb250ZW50LUxlbmd0aDogMTM1CkNvbnRlbnQtVHlwZTogYXBwbGljYXRpb24vanNvbgpTZW5kZXItSWRlbnRpZmllcjogOTI4MDYzOTEKCiJ7XCJmZWVcIjowLFwidHJhbnNmZXJDb2RlXCI6XCJpbnZvaWNlXCIsXCJkZWJpdE5hbWVcIjpcImFsaWNlIGNvb3BlclwiLFwiY3JlZGl0TmFtZVwiOlwibWVyIGNoYW50XCIsXCJkZWJpdElkZW50aWZpZXJcIjpcIjkyODA2MzkxXCJ9IgA"
)

func TestDestinationOf(t *testing.T) {
	v4, err := (&ilp.Prepare{Amount: 100, ExpiresAt: time.Now().Add(time.Minute), Destination: "test.qrswitch.shop-1.abc"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, memo, want string
		ok               bool
	}{
		{"the document's p2p packet", seedPacketPerfTest, "levelone.dfsp1.PerfTest3.NuilFWTj3N8K6uM3EJk3nbdWb_MKBJpkQ", true},
		{"the document's invoice packet", seedPacketMerchant, "levelone.dfsp1.mer.TC1Q8uXRYN8ZR6rqsorAz4TLBXA0taqHg", true},
		{"ILPv4 base64url", base64.RawURLEncoding.EncodeToString(v4), "test.qrswitch.shop-1.abc", true},
		{"ILPv4 standard base64", base64.StdEncoding.EncodeToString(v4), "test.qrswitch.shop-1.abc", true},
		{"empty", "", "", false},
		{"not base64", "!!!", "", false},
		{"a fulfill", base64.RawURLEncoding.EncodeToString([]byte{13, 1, 0}), "", false},
		{"truncated v1", seedPacketMerchant[:20], "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := destinationOf(c.memo)
			if (err == nil) != c.ok || got != c.want {
				t.Fatalf("destinationOf(%.20q) = %q, %v, want %q (ok %v)", c.memo, got, err, c.want, c.ok)
			}
		})
	}
}

func FuzzDestinationOf(f *testing.F) {
	f.Add(seedPacketMerchant)
	f.Add(seedPacketPerfTest)
	f.Add("DAAA")
	f.Fuzz(func(t *testing.T, memo string) {
		dest, err := destinationOf(memo)
		if err == nil {
			if _, perr := ilp.ParseAddress(dest); perr != nil && !v1Address(dest) {
				t.Fatalf("destinationOf(%q) = %q, not an ILP address: %v", memo, dest, perr)
			}
		}
	})
}

func TestMoney(t *testing.T) {
	cases := []struct {
		in   string
		exp  int
		want int64
		ok   bool
	}{
		{"10", 2, 1000, true}, {"10.5", 2, 1050, true}, {"\"0.01\"", 2, 1, true}, {"10.001", 2, 0, false},
		{"1e3", 2, 0, false}, {"abc", 2, 0, false}, {"5", 0, 5, true}, {"-1.00", 2, -100, true}, {"1/2", 2, 0, false},
		{"99999999999999999999", 2, 0, false},
	}
	for _, c := range cases {
		got, err := parseMoney(c.in, c.exp)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseMoney(%q, %d) = %d, %v, want %d (ok %v)", c.in, c.exp, got, err, c.want, c.ok)
		}
		if c.ok && c.want >= 0 {
			back, _ := parseMoney(qr.FormatMinor(got, c.exp), c.exp)
			if back != got {
				t.Errorf("parseMoney(qr.FormatMinor(%d)) = %d", got, back)
			}
		}
	}
	if s := qr.FormatMinor(5, 2); s != "0.05" {
		t.Errorf("qr.FormatMinor(5, 2) = %s, want 0.05", s)
	}
}
