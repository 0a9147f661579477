package server

import (
	"net/http"
	"testing"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
)

// BenchmarkFlow runs complete payments through an in-process switch over
// TLS with its embedded store, against the simulator: createQrCode, the
// payment request, the scan (sent at once, as the load tool does), the
// approval, the confirmation. 16 goroutines per GOMAXPROCS run flows one
// after another.
func BenchmarkFlow(b *testing.B) {
	h := NewHarness(b, func(c *config.Config, o *Options) { o.AccessLog = false })
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tranID, payload := h.createQR(b)
			req := payRequest("1234", tranID, 4200)
			answer := h.payAsync(req)
			if res := h.scan(b, payload); res.Status != http.StatusAccepted {
				b.Errorf("scan = %d %s", res.Status, res.Body)
				return
			}
			if r := <-answer; r.status != http.StatusCreated {
				b.Errorf("pay = %d %s", r.status, r.body)
				return
			}
			if r := h.Post(b, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(req.ID)); r.status != http.StatusAccepted {
				b.Errorf("confirm = %d %s", r.status, r.body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
}
