package electrumsim

import (
	"bytes"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// panicWatch is a server error log that counts handler panics; the fuzz
// target may not log through its F.
type panicWatch struct{ panics atomic.Int64 }

func (w *panicWatch) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("panic")) {
		w.panics.Add(1)
	}
	return len(p), nil
}

// FuzzPartnerBodies sends arbitrary bodies to the partner endpoints over
// TLS: the sim must never panic, and every answer must be one the
// interface allows, with an ErrorDetail on every 400 except behaviour 56's.
func FuzzPartnerBodies(f *testing.F) {
	req := paymentRequest(1000)
	f.Add(0, mustJSON(f, req))
	f.Add(0, mustJSON(f, paymentRequest(1056)))
	f.Add(1, mustJSON(f, confirmation(req.ID)))
	f.Add(2, mustJSON(f, reversal(req.ID)))
	f.Add(0, []byte(`{"id":"00000000-0000-4000-8000-000000000000","amounts":{"requestAmount":{"amount":-5}}}`))
	f.Add(1, []byte(`{"id":1}`))
	f.Add(2, []byte("\x00\xff{"))

	sim := New(Config{LateAfter: time.Millisecond, SlowAfter: time.Millisecond})
	var watch panicWatch
	srv := httptest.NewUnstartedServer(sim.Handler())
	srv.Config.ErrorLog = log.New(&watch, "", 0)
	srv.StartTLS()
	f.Cleanup(srv.Close)
	f.Cleanup(sim.Close)
	client := srv.Client()
	client.Timeout = 2 * time.Second
	paths := []string{"/qr/v1/payments", "/qr/v1/payments/confirmations", "/qr/v1/payments/reversals"}
	allowed := map[int]bool{201: true, 202: true, 400: true, 404: true, 500: true, 501: true, 503: true, 504: true}

	f.Fuzz(func(t *testing.T, which int, body []byte) {
		e := &env{t: t, sim: sim, srv: srv, client: client}
		path := paths[uint(which)%uint(len(paths))]
		r := e.doAuth(e.client, http.MethodPost, path, body, "", "")
		if n := watch.panics.Load(); n != 0 {
			t.Fatalf("POST %s %q: the handler panicked", path, body)
		}
		if r.err != nil {
			return // behaviour 71 drops the connection
		}
		if !allowed[r.status] {
			t.Fatalf("POST %s %q = %d, not an answer of the interface", path, body, r.status)
		}
		if r.status == http.StatusBadRequest && len(r.body) > 0 {
			errorDetail(t, r.body)
		}
	})
}
