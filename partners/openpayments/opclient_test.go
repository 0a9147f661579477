package openpayments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/partners/railtest"
)

// TestOpenPaymentsClient: the reference client @interledger/open-payments
// reads the wallet address and its keys, creates, gets (full and public),
// lists and completes an incoming payment, validating every response
// against the Open Payments OpenAPI specs it ships.
func TestOpenPaymentsClient(t *testing.T) {
	e := newEnv(t, railtest.NewHost())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := jstest.Command(ctx, t, filepath.Join("testdata", "opclient.js"), e.base+"/shop1", "all", e.base+"/customer")
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
}
