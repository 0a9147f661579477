package openpayments_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/partners/railtest"
)

// signed is one request as a client sends it: signed per the Open
// Payments profile of RFC 9421 by this test's own signer (the reference
// client's signatures are proven in TestOpenPaymentsClient).
type signed struct {
	method, url, token string
	body               []byte
	// What to spoil: the key that signs, the target URI signed, the body
	// sent after signing.
	key      ed25519.PrivateKey
	kid      string
	target   string
	sentBody []byte
}

func (e *env) send(s signed) (int, map[string]any) {
	e.t.Helper()
	sent := s.body
	if s.sentBody != nil {
		sent = s.sentBody
	}
	req, _ := http.NewRequestWithContext(e.t.Context(), s.method, s.url, bytes.NewReader(sent))
	if sent == nil {
		req.Body = nil
	}
	components := []string{"@method", "@target-uri"}
	if s.token != "" {
		req.Header.Set("Authorization", "GNAP "+s.token)
		components = append(components, "authorization")
	}
	if s.body != nil {
		d := sha512.Sum512(s.body)
		req.Header.Set("Content-Digest", "sha-512=:"+base64.StdEncoding.EncodeToString(d[:])+":")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Length", fmt.Sprint(len(sent)))
		req.ContentLength = int64(len(sent))
		components = append(components, "content-digest", "content-length", "content-type")
	}
	target := s.url
	if s.target != "" {
		target = s.target
	}
	quoted := make([]string, len(components))
	var base strings.Builder
	for i, c := range components {
		quoted[i] = `"` + c + `"`
		v := req.Header.Get(c)
		switch c {
		case "@method":
			v = s.method
		case "@target-uri":
			v = target
		}
		fmt.Fprintf(&base, "\"%s\": %s\n", c, v)
	}
	params := fmt.Sprintf("(%s);keyid=%q;created=%d", strings.Join(quoted, " "), s.kid, time.Now().Unix())
	base.WriteString(`"@signature-params": ` + params)
	req.Header.Set("Signature-Input", "sig1="+params)
	req.Header.Set("Signature", "sig1=:"+base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, []byte(base.String())))+":")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	json.Unmarshal(b, &v)
	return resp.StatusCode, v
}

// grantFor asks the authorisation server for a grant of access as cl and
// returns the access token's value and management URL.
func (e *env) grantFor(cl *clientKey, access ...map[string]any) (string, string) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"access_token": map[string]any{"access": access}, "client": cl.wallet})
	st, v := e.send(signed{method: "POST", url: e.base + "/auth", body: body, key: cl.priv, kid: cl.kid})
	tok, _ := v["access_token"].(map[string]any)
	if st != 200 || tok == nil {
		e.t.Fatalf("grant request = %d %v, want 200 with an access token", st, v)
	}
	return tok["value"].(string), tok["manage"].(string)
}

func errorCode(v map[string]any) string {
	e, _ := v["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestGNAPRefusals: every way a request to the authorisation or resource
// server can fail its authorisation is answered with the spec's error
// body, and nothing is written.
func TestGNAPRefusals(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	openpayments.UseGNAP(e.rail)
	cl := newClientKey(t, e, "refusals")
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	tok, _ := e.grantFor(cl, map[string]any{"type": "incoming-payment", "actions": []string{"create", "read", "list"}, "identifier": e.base + "/shop1"})
	create, _ := json.Marshal(map[string]any{"walletAddress": e.base + "/shop1", "incomingAmount": usd("100")})
	other, _ := json.Marshal(map[string]any{"walletAddress": e.base + "/customer", "incomingAmount": usd("100")})
	list := e.base + "/incoming-payments?wallet-address=" + e.base + "/shop1"
	ok := signed{method: "POST", url: e.base + "/incoming-payments", token: tok, body: create, key: cl.priv, kid: cl.kid}
	count := func() int {
		st, v := e.send(signed{method: "GET", url: list, token: tok, key: cl.priv, kid: cl.kid})
		r, _ := v["result"].([]any)
		if st != 200 {
			t.Fatalf("list = %d %v", st, v)
		}
		return len(r)
	}
	spoil := func(f func(*signed)) signed { s := ok; f(&s); return s }
	for _, tt := range []struct {
		name   string
		req    signed
		status int
		code   string
	}{
		{"no token", spoil(func(s *signed) { s.token = "" }), 401, "unauthorized"},
		{"unknown token", spoil(func(s *signed) { s.token = "not-a-token" }), 401, "unauthorized"},
		{"signed by another key", spoil(func(s *signed) { s.key = stranger }), 401, "unauthorized"},
		{"another keyid", spoil(func(s *signed) { s.kid = "nobody" }), 401, "unauthorized"},
		{"body changed after signing", spoil(func(s *signed) {
			s.sentBody = bytes.Replace(create, []byte(`"100"`), []byte(`"900"`), 1)
		}), 401, "unauthorized"},
		{"signed for another URI", spoil(func(s *signed) { s.target = e.base + "/quotes" }), 401, "unauthorized"},
		{"a wallet the grant does not name", spoil(func(s *signed) { s.body = other }), 403, "forbidden"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, v := e.send(tt.req)
			if st != tt.status || errorCode(v) != tt.code {
				t.Fatalf("create = %d %v, want %d %s", st, v, tt.status, tt.code)
			}
		})
	}
	if n := count(); n != 0 {
		t.Fatalf("%d incoming payments after the refusals, want none", n)
	}
	if st, v := e.send(ok); st != 201 {
		t.Fatalf("the well-formed request = %d %v, want 201", st, v)
	}

	// The token expires with its lifetime.
	openpayments.SetClock(e.rail, func() time.Time { return time.Now().Add(11 * time.Minute) })
	if st, v := e.send(ok); st != 401 || errorCode(v) != "unauthorized" {
		t.Fatalf("create with an expired token = %d %v, want 401", st, v)
	}
	openpayments.SetClock(e.rail, time.Now)
	if n := count(); n != 1 {
		t.Fatalf("%d incoming payments, want the one created", n)
	}
}

// TestGNAPGrantRequests: grant requests the authorisation server refuses —
// unsigned, signed by a key the client does not publish, malformed, and an
// outgoing payment the operator's policy denies the client — and the
// non-interactive grant it issues, for a client known by its key alone.
func TestGNAPGrantRequests(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	openpayments.UseGNAP(e.rail)
	cl := newClientKey(t, e, "grants")
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	grant := func(access any, client any) []byte {
		b, _ := json.Marshal(map[string]any{"access_token": map[string]any{"access": access}, "client": client})
		return b
	}
	incoming := []map[string]any{{"type": "incoming-payment", "actions": []string{"create"}}}
	outgoing := []map[string]any{{"type": "outgoing-payment", "actions": []string{"create"}, "identifier": e.base + "/customer"}}
	openpayments.SetGNAPPolicy(e.rail, cl.wallet, "deny")
	for _, tt := range []struct {
		name   string
		req    signed
		status int
		code   string
	}{
		{"signed by a key the client does not publish", signed{body: grant(incoming, cl.wallet), key: stranger, kid: cl.kid}, 401, "invalid_client"},
		{"an unknown action", signed{body: grant([]map[string]any{{"type": "quote", "actions": []string{"complete"}}}, cl.wallet), key: cl.priv, kid: cl.kid}, 400, "invalid_request"},
		{"an unknown property", signed{body: []byte(`{"access_token":{"access":[{"type":"quote","actions":["create"]}]},"client":"` + cl.wallet + `","extra":1}`), key: cl.priv, kid: cl.kid}, 400, "invalid_request"},
		{"outgoing payments the policy denies", signed{body: grant(outgoing, cl.wallet), key: cl.priv, kid: cl.kid}, 400, "request_denied"},
		{"outgoing payments for a key-only client", signed{body: grant(outgoing, map[string]any{"jwk": map[string]string{"kid": "k", "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}), key: cl.priv, kid: "k"}, 400, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.method, tt.req.url = "POST", e.base+"/auth"
			st, v := e.send(tt.req)
			if st != tt.status || errorCode(v) != tt.code {
				t.Fatalf("grant request = %d %v, want %d %s", st, v, tt.status, tt.code)
			}
		})
	}
	// A client known by its key alone (directed identity) gets incoming
	// payments, its requests checked against that key.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwk := map[string]string{"kid": "anon", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub)}
	st, v := e.send(signed{method: "POST", url: e.base + "/auth", body: grant(incoming, map[string]any{"jwk": jwk}), key: priv, kid: "anon"})
	tok, _ := v["access_token"].(map[string]any)
	if st != 200 || tok == nil {
		t.Fatalf("grant for a key-only client = %d %v, want 200", st, v)
	}
	body, _ := json.Marshal(map[string]any{"walletAddress": e.base + "/shop1"})
	create := signed{method: "POST", url: e.base + "/incoming-payments", token: tok["value"].(string), body: body, key: priv, kid: "anon"}
	if st, v := e.send(create); st != 201 {
		t.Fatalf("create with the key-only client's token = %d %v, want 201", st, v)
	}
	// The grant was issued at once: there is nothing to continue; the
	// continuation token is needed to ask, and to end the grant, after
	// which its access token works no more.
	cont, _ := v["continue"].(map[string]any)
	uri, _ := cont["uri"].(string)
	contToken, _ := cont["access_token"].(map[string]any)["value"].(string)
	if st, v := e.send(signed{method: "POST", url: uri, token: "wrong", key: priv, kid: "anon"}); st != 401 || errorCode(v) != "invalid_client" {
		t.Fatalf("continue with a wrong token = %d %v, want 401 invalid_client", st, v)
	}
	if st, v := e.send(signed{method: "POST", url: uri, token: contToken, key: priv, kid: "anon"}); st != 400 || errorCode(v) != "invalid_continuation" {
		t.Fatalf("continue = %d %v, want 400 invalid_continuation", st, v)
	}
	if st, v := e.send(signed{method: "DELETE", url: uri, token: contToken, key: priv, kid: "anon"}); st != 204 {
		t.Fatalf("DELETE the grant = %d %v, want 204", st, v)
	}
	if st, v := e.send(create); st != 401 {
		t.Fatalf("create after the grant ended = %d %v, want 401", st, v)
	}
}

// TestGNAPPrivateClients: without options.gnap.private_clients the switch
// does not fetch a client's keys from a loopback address (a grant request
// names the URL the switch fetches): the grant is refused.
func TestGNAPPrivateClients(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	openpayments.UseGNAP(e.rail)
	openpayments.RefusePrivateClients(e.rail)
	cl := newClientKey(t, e, "private")
	body, _ := json.Marshal(map[string]any{"access_token": map[string]any{"access": []map[string]any{{"type": "quote", "actions": []string{"create"}}}}, "client": cl.wallet})
	st, v := e.send(signed{method: "POST", url: e.base + "/auth", body: body, key: cl.priv, kid: cl.kid})
	desc, _ := v["error"].(map[string]any)["description"].(string)
	if st != 401 || errorCode(v) != "invalid_client" || !strings.Contains(desc, "private address") {
		t.Fatalf("grant for a client on loopback = %d %v, want 401 invalid_client naming the private address", st, v)
	}
}

// TestGNAPTokenManagement: the management URL refuses a request without
// the token's current value (401) or by another key (401), an unknown
// token (404), and the rotation of a revoked token (400); after a
// rotation the old value no longer works.
func TestGNAPTokenManagement(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	openpayments.UseGNAP(e.rail)
	cl := newClientKey(t, e, "manage")
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	tok, manage := e.grantFor(cl, map[string]any{"type": "quote", "actions": []string{"read"}})
	for _, tt := range []struct {
		name   string
		req    signed
		status int
		code   string
	}{
		{"another value", signed{method: "POST", url: manage, token: "wrong", key: cl.priv, kid: cl.kid}, 401, "invalid_client"},
		{"another key", signed{method: "POST", url: manage, token: tok, key: stranger, kid: cl.kid}, 401, "invalid_client"},
		{"unknown token", signed{method: "DELETE", url: e.base + "/auth/token/nosuchtoken", token: tok, key: cl.priv, kid: cl.kid}, 404, "invalid_rotation"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if st, v := e.send(tt.req); st != tt.status || errorCode(v) != tt.code {
				t.Fatalf("%s %s = %d %v, want %d %s", tt.req.method, tt.req.url, st, v, tt.status, tt.code)
			}
		})
	}
	st, v := e.send(signed{method: "POST", url: manage, token: tok, key: cl.priv, kid: cl.kid})
	rotated, _ := v["access_token"].(map[string]any)
	if st != 200 || rotated == nil {
		t.Fatalf("rotate = %d %v, want 200", st, v)
	}
	if st, _ := e.send(signed{method: "POST", url: manage, token: tok, key: cl.priv, kid: cl.kid}); st != 401 {
		t.Fatalf("rotate with the old value = %d, want 401", st)
	}
	value := rotated["value"].(string)
	if st, _ := e.send(signed{method: "DELETE", url: manage, token: value, key: cl.priv, kid: cl.kid}); st != 204 {
		t.Fatalf("revoke = %d, want 204", st)
	}
	if st, v := e.send(signed{method: "POST", url: manage, token: value, key: cl.priv, kid: cl.kid}); st != 400 || errorCode(v) != "invalid_rotation" {
		t.Fatalf("rotate a revoked token = %d %v, want 400 invalid_rotation", st, v)
	}
}
