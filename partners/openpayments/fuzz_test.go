package openpayments_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/partners/railtest"
)

// FuzzDecodeCreate: the create-incoming-payment decoder never panics, and
// whatever it accepts is a JSON object naming a served wallet address.
func FuzzDecodeCreate(f *testing.F) {
	e := newEnv(f, railtest.NewHost())
	w := e.base + "/shop1"
	for _, s := range []string{
		`{"walletAddress":"` + w + `"}`,
		`{"walletAddress":"` + w + `","incomingAmount":{"value":"100","assetCode":"USD","assetScale":2},"expiresAt":"2999-01-01T00:00:00Z","metadata":{"a":1}}`,
		`{"walletAddress":"` + w + `","incomingAmount":{"value":"18446744073709551616","assetCode":"USD","assetScale":2}}`,
		`{"walletAddress":1}`, `[]`, `null`, `{"walletAddress":"` + w + `","x":null}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := openpayments.DecodeCreate(e.rail, b); err == nil && !bytes.Contains(b, []byte("shop1")) {
			t.Fatalf("DecodeCreate(%q) = nil, want an error for a body naming no served wallet", b)
		}
	})
}

// FuzzILPEndpoint: any body POSTed to the ILP endpoint is answered with a
// status from the handler's list, a 200 carries an ILPv4 Fulfill or
// Reject, and the incoming payment never holds more than its amount.
func FuzzILPEndpoint(f *testing.F) {
	e := newEnv(f, railtest.NewHost())
	st, ip := e.do("POST", e.base+"/incoming-payments", "GNAP all", map[string]any{"walletAddress": e.base + "/shop1", "incomingAmount": usd("1000")})
	if st != 201 {
		f.Fatalf("create = %d %v", st, ip)
	}
	m := ip["methods"].([]any)[0].(map[string]any)
	dest := ilp.Address(m["ilpAddress"].(string))
	secret := decodeSecret(f, m["sharedSecret"].(string))
	keys, _ := stream.NewKeys(secret)
	for _, amount := range []uint64{0, 1, 999, 1000, 5000} {
		data, _ := keys.SealPacket(&stream.Packet{Sequence: 1, ILPType: ilp.TypePrepare, PrepareAmount: amount, Frames: []stream.Frame{stream.StreamMoney{StreamID: 1, Shares: 1}}})
		p := &ilp.Prepare{Amount: amount, ExpiresAt: time.Now().Add(24 * time.Hour), ExecutionCondition: keys.ConditionFor(data), Destination: dest, Data: data}
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{12, 0})
	f.Add([]byte("not a packet"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req := httptest.NewRequest(http.MethodPost, "/op/ilp", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+peerToken)
		req.Header.Set("Content-Type", "application/octet-stream")
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if _, err := ilp.DecodeReply(rec.Body.Bytes()); err != nil {
				t.Fatalf("200 answer %x is no Fulfill or Reject: %v", rec.Body.Bytes(), err)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("ILP endpoint answered %d, want 200, 400 or 413", rec.Code)
		}
		get := httptest.NewRecorder()
		e.mux.ServeHTTP(get, httptest.NewRequest(http.MethodGet, strings.TrimPrefix(ip["id"].(string), e.srv.URL), nil))
		var pub struct{ ReceivedAmount struct{ Value string } }
		if err := json.Unmarshal(get.Body.Bytes(), &pub); err != nil {
			t.Fatalf("public incoming payment %q: %v", get.Body.Bytes(), err)
		}
		if v, _ := strconv.ParseUint(pub.ReceivedAmount.Value, 10, 64); v > 1000 {
			t.Fatalf("received %d, more than the incoming amount 1000", v)
		}
	})
}

// FuzzPayingRequests: any body POSTed to create a quote or an outgoing
// payment is answered 201 or 400, never anything else, and a 400 carries
// the Open Payments error shape.
func FuzzPayingRequests(f *testing.F) {
	e := newEnv(f, railtest.NewHost())
	in := e.incomingFor("shop1", usd("1000"), "")
	cust := e.base + "/customer"
	for _, s := range []string{
		`{"walletAddress":"` + cust + `","receiver":"` + in + `","method":"ilp"}`,
		`{"walletAddress":"` + cust + `","receiver":"` + in + `","method":"ilp","debitAmount":{"value":"500","assetCode":"USD","assetScale":2}}`,
		`{"walletAddress":"` + cust + `","receiver":"` + in + `","method":"ilp","receiveAmount":{"value":"18446744073709551615","assetCode":"USD","assetScale":2}}`,
		`{"walletAddress":"` + cust + `","quoteId":"` + e.base + `/quotes/x"}`,
		`{}`, `[]`, `"x"`,
	} {
		f.Add(0, []byte(s))
		f.Add(1, []byte(s))
	}
	f.Fuzz(func(t *testing.T, which int, b []byte) {
		path := "/op/quotes"
		if which%2 != 0 {
			path = "/op/outgoing-payments"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
		req.Header.Set("Authorization", "GNAP all")
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated:
		case http.StatusBadRequest:
			var body struct{ Error struct{ Code string } }
			if json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error.Code == "" {
				t.Fatalf("400 body %q is not an Open Payments error", rec.Body.Bytes())
			}
		default:
			t.Fatalf("POST %s %q answered %d, want 201 or 400", path, b, rec.Code)
		}
	})
}

// FuzzSignatureInput: any Signature-Input header is parsed or refused,
// never a panic; one that parses names a keyid and a creation time.
func FuzzSignatureInput(f *testing.F) {
	f.Add(`sig1=("@method" "@target-uri" "authorization");keyid="k1";created=1700000000`)
	f.Add(`sig1=("@method");keyid="k";created=1;alg="ed25519", sig2=("@path");keyid="x";created=2`)
	f.Add(`sig1=(`)
	f.Add(`=()`)
	f.Fuzz(func(t *testing.T, h string) {
		openpayments.ParseSignatureInput(h)
	})
}

// FuzzGrantRequest: any grant request body is decoded or refused with an
// error, never a panic.
func FuzzGrantRequest(f *testing.F) {
	f.Add([]byte(`{"access_token":{"access":[{"type":"incoming-payment","actions":["create","read"]}]},"client":"https://c.example/w"}`))
	f.Add([]byte(`{"access_token":{"access":[{"type":"outgoing-payment","actions":["create"],"identifier":"https://x/y","limits":{"debitAmount":{"value":"1","assetCode":"USD","assetScale":2}}}]},"client":{"walletAddress":"https://c.example/w"}}`))
	f.Add([]byte(`{"access_token":{"access":[{"type":"incoming-payment","actions":["create"]}]},"client":{"jwk":{"kid":"k","kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}}`))
	f.Add([]byte(`{"client":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		openpayments.ParseGrantRequest(b)
	})
}

// FuzzContentDigest: any Content-Digest header is checked or refused,
// never a panic; a correct sha-512 member of the body always passes.
func FuzzContentDigest(f *testing.F) {
	f.Add("sha-512=:AAAA:", []byte("{}"))
	f.Add("sha-256=:x:, md5=:y:", []byte(""))
	f.Fuzz(func(t *testing.T, h string, body []byte) {
		openpayments.CheckDigest(h, body)
		d := sha512.Sum512(body)
		if err := openpayments.CheckDigest("sha-512=:"+base64.StdEncoding.EncodeToString(d[:])+":", body); err != nil {
			t.Fatalf("CheckDigest(correct sha-512) = %v, want nil", err)
		}
	})
}
