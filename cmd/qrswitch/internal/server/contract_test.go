package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/qrswitch/qrswitch/internal/openapi"
	"github.com/qrswitch/qrswitch/internal/openapi/contract"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
)

// Every exchange of this package's whole-switch tests is checked against
// the switch's OpenAPI document: the requests and answers of the harness's
// Do and Post (and payAsync) through a checking transport, and the scans
// the simulator's customer app sends, from what it recorded.

// contractDocument is the document, loaded once for every test.
var contractDocument = sync.OnceValues(contract.Load)

func init() { checkExchanges = checkedTransport }

// checkedTransport wraps next so that every exchange is checked against
// the document; a violation fails t, naming the exchange.
//
// Benchmarks are not checked: they measure the switch, and kin-openapi
// compiles a JSON Schema for every body it validates (about 1.3 MB of
// allocations per flow: BenchmarkFlow ran at 43 flows/s with the checks,
// measuring them rather than the switch). The tests check the contract.
func checkedTransport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	if _, bench := t.(*testing.B); bench {
		return next
	}
	doc, err := contractDocument()
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	return &checked{t: t, next: next, doc: doc}
}

type checked struct {
	t    testing.TB
	next http.RoundTripper
	doc  *contract.Document
}

// testRoutes are routes the document leaves out: those tests add to a
// switch — the surface of the test rail railtest.Fake, a handler that
// panics — and the rails' own surfaces, which speak their protocols (each
// documented in docs/{rail}.md), not the Electrum interface's.
var testRoutes = []string{"/fake/", "/test/", "/ilpinvoice/", "/op/", "/ipp/"}

func (c *checked) RoundTrip(req *http.Request) (*http.Response, error) {
	for _, p := range testRoutes {
		if strings.HasPrefix(req.URL.Path, p) {
			return c.next.RoundTrip(req)
		}
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			c.t.Errorf("OpenAPI check: %s %s: the request body cannot be read twice", req.Method, req.URL.Path)
		} else if rc, err := req.GetBody(); err == nil {
			body, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	if err != nil {
		return nil, err
	}
	if err := c.doc.CheckExchange(req, body, resp.StatusCode, resp.Header, answer); err != nil {
		c.t.Errorf("OpenAPI check: %v", err)
	}
	return resp, nil
}

// checkScan checks a scan the simulator's customer app sent to the switch,
// and the switch's answer, against the document.
func checkScan(t testing.TB, h *Harness, res *electrumsim.ScanResult) {
	if _, bench := t.(*testing.B); bench {
		return // see checkedTransport
	}
	t.Helper()
	doc, err := contractDocument()
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	body, err := json.Marshal(res.Notification)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, h.Base+"/qr/v1/scans", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(ScanUser, ScanPass)
	header := http.Header{}
	if res.ContentType != "" {
		header.Set("Content-Type", res.ContentType)
	}
	if err := doc.CheckExchange(req, body, res.Status, header, res.Body); err != nil {
		t.Errorf("OpenAPI check of a simulator scan: %v", err)
	}
}

// TestOpenAPIDocumentServed: the switch serves its document, unauthenticated,
// as embedded, and what it serves is a valid OpenAPI 3.1 document.
func TestOpenAPIDocumentServed(t *testing.T) {
	h := NewHarness(t)
	r := h.Do(t, http.MethodGet, openapi.Path, "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s = %d %s, want 200", openapi.Path, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != openapi.ContentType {
		t.Errorf("GET %s Content-Type = %q, want %q", openapi.Path, ct, openapi.ContentType)
	}
	if !bytes.Equal(r.body, openapi.Document()) {
		t.Fatalf("GET %s served %d bytes that are not the embedded document", openapi.Path, len(r.body))
	}
	doc, err := contract.Parse(r.body)
	if err != nil {
		t.Fatalf("the served document: %v", err)
	}
	if v := doc.OpenAPI().OpenAPI; v != "3.1.0" {
		t.Errorf("served document is OpenAPI %q, want 3.1.0", v)
	}
}
