package openpayments_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/partners/openpayments"
	"github.com/qrswitch/qrswitch/partners/railtest"
)

// TestOpenPaymentsClient: the reference client @interledger/open-payments
// reads the wallet address and its keys, creates, gets (full and public),
// lists and completes an incoming payment, validating every response
// against the Open Payments OpenAPI specs it ships.
func TestOpenPaymentsClient(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	openpayments.UseGNAP(e.rail)
	cl := newClientKey(t, e, "opclient-key")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := jstest.Command(ctx, t, filepath.Join("testdata", "opclient.js"), e.base+"/shop1", e.base+"/customer", cl.wallet, cl.keyFile, cl.kid)
	cmd.Env = append(cmd.Environ(), "NODE_EXTRA_CA_CERTS="+e.caFile())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res struct {
		Error      string          `json:"error"`
		Details    json.RawMessage `json:"details"`
		Wallet     map[string]any  `json:"wallet"`
		Created    map[string]any  `json:"created"`
		Got        map[string]any  `json:"got"`
		PublicForm map[string]any  `json:"publicForm"`
		List       struct {
			Result []map[string]any `json:"result"`
		} `json:"list"`
		Completed   map[string]any `json:"completed"`
		Quote       map[string]any `json:"quote"`
		GotQuote    map[string]any `json:"gotQuote"`
		Outgoing    map[string]any `json:"outgoing"`
		GotOutgoing map[string]any `json:"gotOutgoing"`
		OutList     struct {
			Result []map[string]any `json:"result"`
		} `json:"outgoingList"`
		Grant struct {
			AccessToken struct {
				Value, Manage string
				ExpiresIn     int `json:"expires_in"`
			} `json:"access_token"`
		} `json:"grant"`
		Rotated         struct{ Value, Manage string } `json:"rotated"`
		AfterRotation   map[string]any                 `json:"afterRotation"`
		AfterRevocation struct{ Status int }           `json:"afterRevocation"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || res.Error != "" {
		t.Fatalf("node opclient.js: %v %v: %s %s\n%s", err, jerr, res.Error, res.Details, stderr.String())
	}
	id, _ := res.Created["id"].(string)
	if res.Wallet["id"] != e.base+"/shop1" || !strings.HasPrefix(id, e.base+"/incoming-payments/") {
		t.Fatalf("wallet %v, created %v: want shop1 and an incoming payment URL", res.Wallet, res.Created)
	}
	if res.Got["id"] != id || fmt.Sprint(res.Got["methods"]) != fmt.Sprint(res.Created["methods"]) {
		t.Fatalf("get = %v, want %s with its methods", res.Got, id)
	}
	if res.PublicForm["authServer"] != e.base+"/auth" {
		t.Fatalf("public form = %v, want the auth server", res.PublicForm)
	}
	if len(res.List.Result) != 1 || res.List.Result[0]["id"] != id {
		t.Fatalf("list = %v, want the one incoming payment", res.List.Result)
	}
	if res.Completed["completed"] != true {
		t.Fatalf("complete = %v, want completed", res.Completed)
	}
	if fmt.Sprint(res.Quote["debitAmount"]) != fmt.Sprint(usd("313")) || res.GotQuote["id"] != res.Quote["id"] {
		t.Fatalf("quote = %v, got %v: want a debit of 313 (300 + 10 fixed + 3 at 100 bps)", res.Quote, res.GotQuote)
	}
	if res.Outgoing["quoteId"] != res.Quote["id"] || res.GotOutgoing["id"] != res.Outgoing["id"] || res.Outgoing["failed"] != false {
		t.Fatalf("outgoing = %v, got %v: want one on the quote", res.Outgoing, res.GotOutgoing)
	}
	if len(res.OutList.Result) != 1 || res.OutList.Result[0]["id"] != res.Outgoing["id"] {
		t.Fatalf("outgoing list = %v, want the one outgoing payment", res.OutList.Result)
	}
	if g := res.Grant.AccessToken; g.Value == "" || !strings.HasPrefix(g.Manage, e.base+"/auth/token/") || g.ExpiresIn != 600 {
		t.Fatalf("grant = %+v, want an access token managed under %s/auth/token/, expiring in 600 s", g, e.base)
	}
	if res.Rotated.Value == "" || res.Rotated.Value == res.Grant.AccessToken.Value || res.AfterRotation["id"] != id {
		t.Fatalf("rotated token %+v, read with it %v: want a new value that reads %s", res.Rotated, res.AfterRotation, id)
	}
	if res.AfterRevocation.Status != 401 {
		t.Fatalf("a read with the revoked token = %+v, want 401", res.AfterRevocation)
	}
}

// clientKey is a client of the authorisation server: its wallet address
// (served by the test's TLS server, with its jwks.json) and its key.
type clientKey struct {
	wallet, kid, keyFile string
	priv                 ed25519.PrivateKey
}

// newClientKey makes a client with an Ed25519 key, its jwks.json served
// at {server}/clients/{kid}/jwks.json, its private key in a PEM file.
func newClientKey(t testing.TB, e *env, kid string) *clientKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	c := &clientKey{wallet: e.srv.URL + "/clients/" + kid, kid: kid, keyFile: filepath.Join(t.TempDir(), kid+".pem"), priv: priv}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kid": kid, "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519",
		"x": base64.RawURLEncoding.EncodeToString(pub)}}})
	e.mux.HandleFunc("GET /clients/"+kid+"/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	})
	return c
}
