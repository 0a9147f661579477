package electrumsim

import (
	"net/http"
	"testing"
)

// BenchmarkPayConfirm measures a payment and its confirmation over TLS,
// from parallel clients with kept-alive connections.
func BenchmarkPayConfirm(b *testing.B) {
	e := newEnv(b, Config{})
	e.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := paymentRequest(1000)
			if r := e.pay(req); r.status != http.StatusCreated {
				b.Errorf("pay = %d %v", r.status, r.err)
				return
			}
			if r := e.confirm(confirmation(req.ID)); r.status != http.StatusAccepted {
				b.Errorf("confirm = %d %v", r.status, r.err)
				return
			}
		}
	})
}
