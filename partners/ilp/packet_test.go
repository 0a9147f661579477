package ilp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/jstest"
)

func TestParseAddress(t *testing.T) {
	long := "g." + strings.Repeat("a", MaxAddressLength-2)
	tests := []struct {
		in string
		ok bool
	}{
		{"g.acme.bob", true},
		{"g.us-fed.ach.0.acmebank.swx0a0.acmecorp.sales.199.~ipr.cdfa5e16-e759-4ba3-88f6-8b9dc83c1868.2", true},
		{"private.a", true}, {"example.a", true}, {"peer.config", true}, {"self.a", true},
		{"test.a", true}, {"test1.a", true}, {"test2.a", true}, {"test3.a", true}, {"local.a", true},
		{"test.A_b~c-D", true},
		{long, true},
		{long + "a", false},
		{"test4.a", false},
		{"g", false},
		{"g.", false},
		{"g..a", false},
		{".g.a", false},
		{"g.a.", false},
		{"g.a b", false},
		{"g.a+b", false},
		{"g.é", false},
		{"", false},
		{"G.a", false},
		// The seed's addresses predate IL-RFC 15's schemes.
		{"levelone.dfsp2.bob", false},
		{"levelone.dfsp2.alice.~psk.UZVSWwsy6ww.MFsvYpK_6SY5BpNLznWs8g.2527962e-5bbd-460e-8945-154a34f17dba", false},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseAddress(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("ParseAddress(%q) error = %v, want ErrInvalidAddress", tt.in, err)
			}
			if tt.ok && string(a) != tt.in {
				t.Errorf("ParseAddress(%q) = %q", tt.in, a)
			}
			if Address(tt.in).Valid() != tt.ok {
				t.Errorf("Address(%q).Valid() = %v, want %v", tt.in, !tt.ok, tt.ok)
			}
		})
	}
}

func TestAddressHelpers(t *testing.T) {
	a := Address("g.acme.bob")
	if got := a.Scheme(); got != "g" {
		t.Errorf("Scheme() = %q, want g", got)
	}
	if !a.HasPrefix("g.acme") || a.HasPrefix("g.ac") || !a.HasPrefix(a) {
		t.Errorf("HasPrefix wrong for %q", a)
	}
	if b, err := a.Append("x~1"); err != nil || b != "g.acme.bob.x~1" {
		t.Errorf("Append(x~1) = %q, %v", b, err)
	}
	for _, seg := range []string{"a.b", "", "a b"} {
		if _, err := a.Append(seg); err == nil {
			t.Errorf("Append(%q) = nil error, want invalid", seg)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		code                ErrorCode
		name                string
		final, temp, relate bool
	}{
		{F00BadRequest, "Bad Request", true, false, false},
		{F02Unreachable, "Unreachable", true, false, false},
		{F08AmountTooLarge, "Amount Too Large", true, false, false},
		{F99ApplicationError, "Application Error", true, false, false},
		{"F42", "Final Error", true, false, false},
		{T04InsufficientLiquidity, "Insufficient Liquidity", false, true, false},
		{"T55", "Temporary Error", false, true, false},
		{R00TransferTimedOut, "Transfer Timed Out", false, false, true},
		{R02InsufficientTimeout, "Insufficient Timeout", false, false, true},
		{"X00", "", false, false, false},
		{"F0", "", false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			if got := tt.code.Name(); got != tt.name {
				t.Errorf("%s.Name() = %q, want %q", tt.code, got, tt.name)
			}
			if tt.code.Final() != tt.final || tt.code.Temporary() != tt.temp || tt.code.Relative() != tt.relate {
				t.Errorf("%s classes = %v %v %v, want %v %v %v", tt.code, tt.code.Final(), tt.code.Temporary(), tt.code.Relative(), tt.final, tt.temp, tt.relate)
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"20171223012140549", time.Date(2017, 12, 23, 1, 21, 40, 549e6, time.UTC), true},
		{"00000101000000000", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"99991231235959999", time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), true},
		{"20171323012140549", time.Time{}, false},
		{"2017122301214054", time.Time{}, false},
		{"2017122301214054Z", time.Time{}, false},
		{"2017-12-23T01:21", time.Time{}, false},
		{"+0171223012140549", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTimestamp(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseTimestamp(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseTimestamp(%q) = %v, want %v", tt.in, got, tt.want)
			}
			back, err := FormatTimestamp(got)
			if err != nil || back != tt.in {
				t.Errorf("FormatTimestamp(%v) = %q, %v, want %q", got, back, err, tt.in)
			}
		})
	}
	if _, err := FormatTimestamp(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Errorf("FormatTimestamp(year 10000) = nil error, want error")
	}
	// Sub-millisecond precision is truncated, and zones are converted to UTC.
	loc := time.FixedZone("x", 3600)
	got, err := FormatTimestamp(time.Date(2020, 1, 1, 1, 0, 0, 1_999_999, loc))
	if err != nil || got != "20200101000000001" {
		t.Errorf("FormatTimestamp(+01:00, 1.999999ms) = %q, %v, want 20200101000000001", got, err)
	}
}

func cond(b byte) (c [32]byte) {
	for i := range c {
		c[i] = b + byte(i)
	}
	return c
}

// samplePackets are edge values for the cross-checks: zero and maximum
// amounts, empty and maximum data, long addresses, long length prefixes.
func samplePackets() map[string]Packet {
	exp := time.Date(2017, 12, 23, 1, 21, 40, 549e6, time.UTC)
	return map[string]Packet{
		"prepare/basic": &Prepare{Amount: 107, ExpiresAt: exp, ExecutionCondition: cond(1), Destination: "example.alice", Data: []byte("hello")},
		"prepare/zero":  &Prepare{Amount: 0, ExpiresAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), ExecutionCondition: [32]byte{}, Destination: "g.a", Data: nil},
		"prepare/max":   &Prepare{Amount: math.MaxUint64, ExpiresAt: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), ExecutionCondition: cond(0xe0), Destination: Address("test." + strings.Repeat("z", MaxAddressLength-5)), Data: bytes.Repeat([]byte{0xab}, MaxDataLength)},
		"prepare/127":   &Prepare{Amount: 1 << 53, ExpiresAt: exp, ExecutionCondition: cond(7), Destination: "private.moneyd.~ab-_c", Data: bytes.Repeat([]byte{1}, 127)},
		"prepare/128":   &Prepare{Amount: 1<<53 + 1, ExpiresAt: exp, ExecutionCondition: cond(8), Destination: "peer.config", Data: bytes.Repeat([]byte{2}, 128)},
		"prepare/256":   &Prepare{Amount: 9, ExpiresAt: exp, ExecutionCondition: cond(9), Destination: "local.x", Data: bytes.Repeat([]byte{3}, 256)},
		"fulfill/basic": &Fulfill{Fulfillment: cond(0x30), Data: []byte{0xde, 0xad}},
		"fulfill/empty": &Fulfill{Fulfillment: [32]byte{}, Data: []byte{}},
		"fulfill/max":   &Fulfill{Fulfillment: cond(0xff), Data: bytes.Repeat([]byte{0xcd}, MaxDataLength)},
		"reject/basic":  &Reject{Code: F99ApplicationError, TriggeredBy: "example.us.bob", Message: "missing", Data: []byte{1, 2, 3}},
		"reject/empty":  &Reject{Code: T04InsufficientLiquidity, TriggeredBy: "", Message: "", Data: nil},
		"reject/utf8":   &Reject{Code: "F42", TriggeredBy: "g.x", Message: "déjà vu ✓", Data: nil},
		"reject/max":    &Reject{Code: R00TransferTimedOut, TriggeredBy: Address("g." + strings.Repeat("q", MaxAddressLength-2)), Message: strings.Repeat("m", MaxMessageLength), Data: bytes.Repeat([]byte{9}, MaxDataLength)},
	}
}

func TestPacketRoundTrip(t *testing.T) {
	for name, p := range samplePackets() {
		t.Run(name, func(t *testing.T) {
			b, err := p.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary() error = %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(MarshalBinary()) error = %v", err)
			}
			again, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("Decode then MarshalBinary = %x…, %v, want the original %x…", again[:min(len(again), 32)], err, b[:32])
			}
			if !samePacket(got, p) {
				t.Errorf("Decode(MarshalBinary(%+v)) = %+v", p, got)
			}
		})
	}
}

func samePacket(a, b Packet) bool {
	switch x := a.(type) {
	case *Prepare:
		y, ok := b.(*Prepare)
		return ok && x.Amount == y.Amount && x.ExpiresAt.Equal(y.ExpiresAt) && x.ExecutionCondition == y.ExecutionCondition && x.Destination == y.Destination && bytes.Equal(x.Data, y.Data)
	case *Fulfill:
		y, ok := b.(*Fulfill)
		return ok && x.Fulfillment == y.Fulfillment && bytes.Equal(x.Data, y.Data)
	case *Reject:
		y, ok := b.(*Reject)
		return ok && x.Code == y.Code && x.TriggeredBy == y.TriggeredBy && x.Message == y.Message && bytes.Equal(x.Data, y.Data)
	}
	return false
}

func TestEncodeRefuses(t *testing.T) {
	exp := time.Now()
	tests := map[string]Packet{
		"bad destination": &Prepare{ExpiresAt: exp, Destination: "nope"},
		"data too long":   &Prepare{ExpiresAt: exp, Destination: "g.a", Data: make([]byte, MaxDataLength+1)},
		"fulfill data":    &Fulfill{Data: make([]byte, MaxDataLength+1)},
		"short code":      &Reject{Code: "F1"},
		"unknown class":   &Reject{Code: "X00"},
		"bad triggeredBy": &Reject{Code: "F00", TriggeredBy: "g."},
		"long message":    &Reject{Code: "F00", Message: strings.Repeat("x", MaxMessageLength+1)},
		"non-UTF-8":       &Reject{Code: "F00", Message: "\xff"},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			if b, err := p.MarshalBinary(); err == nil {
				t.Errorf("MarshalBinary(%+v) = %x, want an error", p, b)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, err := (&Fulfill{Fulfillment: cond(1), Data: []byte{1}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	prep, err := samplePackets()["prepare/basic"].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The seed carries pre-ILPv4 packets (type 1, ILP payment with PSK);
	// they are not ILPv4 and must be refused, as ilp-packet refuses them.
	legacy, err := base64.RawURLEncoding.DecodeString("AYIBhgAAAAAAAAPoOmxldmVsb25lLmRmc3AxLlBlcmZUZXN0My5OdWlsRldUajNOOEs2dU0zRUprM25iZFdiX01LQkpwa1GCAT9QU0svMS4wCk5vbmNlOiBremE3cjlzaVFxLVpVQjJfaVphUTNBCkVuY3J5cHRpb246IG5vbmUKUGF5bWVudC1JZDogN2ZmZWMwNDMtYjA4Mi00OTExLWI0YjktNDhjYTczYzdiZjQzCgpDb250ZW50LUxlbmd0aDogMTM0CkNvbnRlbnQtVHlwZTogYXBwbGljYXRpb24vanNvbgpTZW5kZXItSWRlbnRpZmllcjogMjk5OTk4MDEKCiJ7XCJmZWVcIjowLFwidHJhbnNmZXJDb2RlXCI6XCJwMnBcIixcImRlYml0TmFtZVwiOlwiRGF2aWQgV2FybmVyXCIsXCJjcmVkaXROYW1lXCI6XCJUZWRkeSBEdW5jYW5cIixcImRlYml0SWRlbnRpZmllclwiOlwiMjk5OTk4MDFcIn0iAA")
	if err != nil {
		t.Fatal(err)
	}
	badTime := bytes.Clone(prep)
	copy(badTime[2+8:], "20171323012140549")
	badDest := bytes.Clone(prep)
	badDest[2+8+17+32+1] = '!'
	tests := map[string][]byte{
		"empty":            {},
		"type only":        {13},
		"unknown type":     {15, 0},
		"seed legacy type": legacy,
		"truncated":        good[:len(good)-1],
		"trailing":         append(bytes.Clone(good), 0),
		"inner trailing":   {13, 35, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 0, 0, 0},
		"non-canonical":    {13, 0x81, 33, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 0},
		"bad month":        badTime,
		"bad destination":  badDest,
		"bad code":         {14, 6, 'X', '0', '0', 0, 0, 0},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if p, err := Decode(b); err == nil || !errors.Is(err, ErrInvalidPacket) {
				t.Errorf("Decode(%x) = %+v, %v, want ErrInvalidPacket", b[:min(len(b), 16)], p, err)
			}
		})
	}
	if _, err := DecodePrepare(good); !errors.Is(err, ErrUnexpectedType) {
		t.Errorf("DecodePrepare(Fulfill) error = %v, want ErrUnexpectedType", err)
	}
	if _, err := DecodeReply(prep); !errors.Is(err, ErrUnexpectedType) {
		t.Errorf("DecodeReply(Prepare) error = %v, want ErrUnexpectedType", err)
	}
}

func TestAmountTooLarge(t *testing.T) {
	a := AmountTooLarge{Received: 1000, Maximum: 250}
	b, _ := a.MarshalBinary()
	if hex.EncodeToString(b) != "00000000000003e800000000000000fa" {
		t.Errorf("MarshalBinary() = %x", b)
	}
	got, err := ParseAmountTooLarge(b)
	if err != nil || got != a {
		t.Errorf("ParseAmountTooLarge(%x) = %+v, %v, want %+v", b, got, err, a)
	}
	if _, err := ParseAmountTooLarge(b[:15]); err == nil {
		t.Errorf("ParseAmountTooLarge(15 octets) = nil error")
	}
}

// jsResult is what testdata/ilppacket.js reports for one case.
type jsResult struct {
	OK     bool           `json:"ok"`
	Error  string         `json:"error"`
	Hex    string         `json:"hex"`
	Fields map[string]any `json:"fields"`
}

func runILPPacket(t *testing.T, cases []map[string]any) []jsResult {
	t.Helper()
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	out := jstest.Run(t, filepath.Join("testdata", "ilppacket.js"), in)
	var res []jsResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("reading ilppacket.js output: %v\n%s", err, out)
	}
	if len(res) != len(cases) {
		t.Fatalf("ilppacket.js returned %d results, want %d", len(res), len(cases))
	}
	return res
}

// TestGoEncodesJSDecodes: every Go-encoded packet is read by ilp-packet,
// which reports the same fields and re-serializes the identical bytes.
func TestGoEncodesJSDecodes(t *testing.T) {
	pkts := samplePackets()
	var names []string
	var cases []map[string]any
	encoded := map[string][]byte{}
	for name, p := range pkts {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: MarshalBinary() error = %v", name, err)
		}
		encoded[name] = b
		names = append(names, name)
		cases = append(cases, map[string]any{"op": "decode", "hex": hex.EncodeToString(b)})
	}
	res := runILPPacket(t, cases)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			r := res[i]
			if !r.OK {
				t.Fatalf("ilp-packet deserialize(%s) failed: %s", name, r.Error)
			}
			if r.Hex != hex.EncodeToString(encoded[name]) {
				t.Errorf("ilp-packet re-serialized %s differently:\n js %s…\n go %x…", name, r.Hex[:min(len(r.Hex), 80)], encoded[name][:40])
			}
			checkJSFields(t, pkts[name], r.Fields)
		})
	}
}

func checkJSFields(t *testing.T, p Packet, f map[string]any) {
	t.Helper()
	want := map[string]string{}
	switch x := p.(type) {
	case *Prepare:
		want["type"] = "12"
		want["amount"] = strconv.FormatUint(x.Amount, 10)
		want["expiresAt"] = x.ExpiresAt.UTC().Format("2006-01-02T15:04:05.000Z")
		want["executionCondition"] = hex.EncodeToString(x.ExecutionCondition[:])
		want["destination"] = string(x.Destination)
		want["data"] = hex.EncodeToString(x.Data)
	case *Fulfill:
		want["type"] = "13"
		want["fulfillment"] = hex.EncodeToString(x.Fulfillment[:])
		want["data"] = hex.EncodeToString(x.Data)
	case *Reject:
		want["type"] = "14"
		want["code"] = string(x.Code)
		want["triggeredBy"] = string(x.TriggeredBy)
		want["message"] = x.Message
		want["data"] = hex.EncodeToString(x.Data)
	}
	for k, w := range want {
		var got string
		switch v := f[k].(type) {
		case string:
			got = v
		case float64:
			got = strconv.FormatFloat(v, 'f', -1, 64)
		}
		if got != w {
			t.Errorf("ilp-packet field %s = %.60q, want %.60q", k, got, w)
		}
	}
}

// TestJSEncodesGoDecodes: packets serialized by ilp-packet decode in Go to
// the same fields and re-encode to the same bytes.
func TestJSEncodesGoDecodes(t *testing.T) {
	pkts := samplePackets()
	var names []string
	var cases []map[string]any
	for name, p := range pkts {
		var j map[string]any
		switch x := p.(type) {
		case *Prepare:
			j = map[string]any{"type": 12, "amount": strconv.FormatUint(x.Amount, 10), "expiresAt": x.ExpiresAt.UTC().Format(time.RFC3339Nano),
				"executionCondition": hex.EncodeToString(x.ExecutionCondition[:]), "destination": string(x.Destination), "data": hex.EncodeToString(x.Data)}
		case *Fulfill:
			j = map[string]any{"type": 13, "fulfillment": hex.EncodeToString(x.Fulfillment[:]), "data": hex.EncodeToString(x.Data)}
		case *Reject:
			j = map[string]any{"type": 14, "code": string(x.Code), "triggeredBy": string(x.TriggeredBy), "message": x.Message, "data": hex.EncodeToString(x.Data)}
		}
		names = append(names, name)
		cases = append(cases, map[string]any{"op": "encode", "packet": j})
	}
	res := runILPPacket(t, cases)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			r := res[i]
			if !r.OK {
				t.Fatalf("ilp-packet serialize(%s) failed: %s", name, r.Error)
			}
			b, err := hex.DecodeString(r.Hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(ilp-packet %s) error = %v", name, err)
			}
			if !samePacket(got, pkts[name]) {
				t.Errorf("Decode(ilp-packet %s) = %+v, want %+v", name, got, pkts[name])
			}
			again, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("Go re-encoding of ilp-packet %s differs", name)
			}
		})
	}
}

// TestRefusalsAgree: bytes Go refuses are refused by ilp-packet too, where
// ilp-packet checks the same rule (it ignores trailing octets, and reads
// any three-character code, so those cases are Go-only).
func TestRefusalsAgree(t *testing.T) {
	legacy, _ := base64.RawURLEncoding.DecodeString("AYIBgQAAAAAAAARMNGxldmVsb25lLmRmc3AxLm1lci5UQzFROHVYUllOOFpSNnJxc29yQXo0VExCWEEwdGFxSGeCAUBQU0svMS4wCk5vbmNlOiBrQVJ5eEdmdkpIeWVEWG92RVBEanB3CkVuY3J5cHRpb246IG5vbmUKUGF5bWVudC1JZDogZjI1MWQyYjItZDYxOS00YzIyLWFkYWEtZDBjYzFjNTg1OTk5CgpDb250ZW50LUxlbmd0aDogMTM1CkNvbnRlbnQtVHlwZTogYXBwbGljYXRpb24vanNvbgpTZW5kZXItSWRlbnRpZmllcjogOTI4MDYzOTEKCiJ7XCJmZWVcIjowLFwidHJhbnNmZXJDb2RlXCI6XCJpbnZvaWNlXCIsXCJkZWJpdE5hbWVcIjpcImFsaWNlIGNvb3BlclwiLFwiY3JlZGl0TmFtZVwiOlwibWVyIGNoYW50XCIsXCJkZWJpdElkZW50aWZpZXJcIjpcIjkyODA2MzkxXCJ9IgA")
	prep, _ := samplePackets()["prepare/basic"].MarshalBinary()
	badDest := bytes.Clone(prep)
	badDest[2+8+17+32+1] = '!'
	cases := map[string][]byte{
		"seed legacy":     legacy,
		"non-canonical":   {13, 0x81, 33, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 0},
		"bad destination": badDest,
		"truncated":       prep[:len(prep)-3],
	}
	var names []string
	var in []map[string]any
	for n, b := range cases {
		names = append(names, n)
		in = append(in, map[string]any{"op": "decode", "hex": hex.EncodeToString(b)})
	}
	res := runILPPacket(t, in)
	for i, n := range names {
		if _, err := Decode(cases[n]); err == nil {
			t.Errorf("%s: Decode = nil error, want refusal", n)
		}
		if res[i].OK {
			t.Errorf("%s: ilp-packet accepted bytes Go refuses", n)
		}
	}
}
