package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/qrswitch/qrswitch/internal/wire"
)

// panics sums the switch's counter of recovered handler panics.
func panics(m *metrics) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { m.panics.Collect(ch); close(ch) }()
	var sum float64
	for x := range ch {
		var pb dto.Metric
		if x.Write(&pb) == nil && pb.Counter != nil {
			sum += pb.Counter.GetValue()
		}
	}
	return sum
}

// surfaces is the switch's real HTTP surfaces (retailers, the rails'
// surfaces, support) of a whole switch, served in memory.
type surfaces struct {
	router  http.Handler
	metrics *metrics
	// tranID is a QR code issued at start and requestID a payment approved
	// at start: fuzzed bodies name them through the placeholders @TRAN@
	// and @REQ@, so the fuzzer reaches past "unknown id".
	tranID, requestID string
}

func newSurfaces(tb testing.TB) *surfaces {
	tb.Helper()
	h := NewHarness(tb)
	s := &surfaces{metrics: h.Srv.metrics, router: h.Srv.api.Handler}
	// A QR code to name, and a payment approved on another one.
	s.tranID = s.issue(tb)
	paid := s.issue(tb)
	req := payRequest("1234", paid, 1001)
	s.requestID = req.ID
	answer := make(chan *httptest.ResponseRecorder, 1)
	go func() { answer <- s.serve("/qr/v1/payments", ShopUser, ShopPass, mustJSON(tb, req)) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := &wire.ScanNotification{ID: wire.NewID(), Time: now(), Partner: &wire.Institution{ID: "wallet-a", Name: "W"}, TranID: paid}
		if w := s.serve("/qr/v1/scans", ScanUser, ScanPass, mustJSON(tb, n)); w.Code == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the setup payment's scan was never linked")
		}
		time.Sleep(time.Millisecond)
	}
	if w := <-answer; w.Code != http.StatusCreated {
		tb.Fatalf("setup payment = %d %s", w.Code, w.Body)
	}
	return s
}

func mustJSON(tb testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (s *surfaces) issue(tb testing.TB) string {
	w := s.serve("/qr/v1/qrCodes", ShopUser, ShopPass, mustJSON(tb, qrRequest("1234")))
	var resp wire.CreateQrCodeResponse
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &resp) != nil {
		tb.Fatalf("createQrCode = %d %s", w.Code, w.Body)
	}
	return resp.TranID
}

func (s *surfaces) serve(path, user, pass string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	w := httptest.NewRecorder()
	s.router.ServeHTTP(w, req)
	return w
}

// surfaceOps are the JSON bodies the switch accepts, by the op byte of
// FuzzSurfaces, with the credentials that may send them.
var surfaceOps = []struct{ path, user, pass string }{
	{"/qr/v1/qrCodes", ShopUser, ShopPass},
	{"/qr/v1/payments", ShopUser, ShopPass},
	{"/qr/v1/payments/confirmations", ShopUser, ShopPass},
	{"/qr/v1/payments/reversals", ShopUser, ShopPass},
	{"/qr/v1/scans", ScanUser, ScanPass},
}

// FuzzSurfaces sends any body to every operation of the switch's real gin
// handlers, on the real engine and store, and checks the answer: never a
// panic, never a 5xx but 503 (storage) — a body is the client's mistake or
// the client's success — and every failure an ErrorDetail the interface
// allows (an id, a known errorType, an errorMessage of at most 40
// characters).
//
//	go test ./server -run '^$' -fuzz FuzzSurfaces -fuzztime 10m
func FuzzSurfaces(f *testing.F) {
	orig := originator("1234")
	origJSON, _ := json.Marshal(orig)
	seeds := []struct {
		op   uint8
		body string
	}{
		{0, `{"id":"` + wire.NewID() + `","time":"2026-11-21T10:00:00Z","originator":` + string(origJSON) + `,"client":{"id":"pos","name":"POS"},"qrProperties":{"value":{"amount":100,"currency":"710"},"scheme":"ELECTRUM_MERCHANT_MINIMAL"}}`},
		{1, `{"id":"` + wire.NewID() + `","time":"2026-11-21T10:00:00Z","originator":` + string(origJSON) + `,"client":{"id":"pos","name":"POS"},"amounts":{"requestAmount":{"amount":100,"currency":"710"}},"tranId":"@TRAN@"}`},
		{2, `{"id":"` + wire.NewID() + `","requestId":"@REQ@","time":"2026-11-21T10:00:00Z"}`},
		{3, `{"id":"` + wire.NewID() + `","requestId":"@REQ@","time":"2026-11-21T10:00:00Z","reversalReason":"CANCELLED"}`},
		{4, `{"id":"` + wire.NewID() + `","time":"2026-11-21T10:00:00Z","partner":{"id":"wallet-a","name":"W"},"tranId":"@TRAN@","partnerPaymentToken":"tok"}`},
		{1, `{"id":5}`}, {2, `[]`}, {3, ``}, {4, `{"partner":null}`}, {0, `{"qrProperties":{"expiryDate":"9999-12-31T23:59:59Z"}}`},
	}
	for _, s := range seeds {
		f.Add(s.op, []byte(s.body))
	}
	s := newSurfaces(f)
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		o := surfaceOps[int(op)%len(surfaceOps)]
		body = bytes.ReplaceAll(body, []byte("@TRAN@"), []byte(s.tranID))
		body = bytes.ReplaceAll(body, []byte("@REQ@"), []byte(s.requestID))
		before := panics(s.metrics)
		w := s.serve(o.path, o.user, o.pass, body)
		if panics(s.metrics) != before {
			t.Fatalf("POST %s %q: a handler panicked (answered %d)", o.path, body, w.Code)
		}
		switch {
		case w.Code >= 500 && w.Code != http.StatusServiceUnavailable:
			t.Fatalf("POST %s %q = %d %s: a server error for a body", o.path, body, w.Code, w.Body)
		case w.Code < 400:
			return
		}
		var d wire.ErrorDetail
		if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("POST %s %q = %d %q: not an ErrorDetail (%v)", o.path, body, w.Code, w.Body, err)
		}
		if d.ID == "" || len(d.ID) > 20 || !wire.IsErrorType(d.ErrorType) || d.ErrorMessage == "" || len([]rune(d.ErrorMessage)) > wire.MaxErrorMessage {
			t.Fatalf("POST %s %q = %d: ErrorDetail %+v breaks the interface", o.path, body, w.Code, d)
		}
		if w.Code == http.StatusServiceUnavailable && d.ErrorType != wire.UpstreamUnavailable {
			t.Fatalf("POST %s %q = 503 %s, want UPSTREAM_UNAVAILABLE", o.path, body, d.ErrorType)
		}
	})
}
