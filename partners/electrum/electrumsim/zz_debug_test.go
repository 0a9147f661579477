package electrumsim
import ("testing";"time";"math/rand";"net/http";"net/http/httptest")
func TestZZHang(t *testing.T) {
	sim := New(Config{LateAfter: time.Millisecond, SlowAfter: time.Millisecond})
	srv := httptest.NewTLSServer(sim.Handler())
	defer srv.Close(); defer sim.Close()
	client := srv.Client(); client.Timeout = 2*time.Second
	e := &env{t: t, sim: sim, srv: srv, client: client}
	seeds := [][]byte{mustJSON(t, paymentRequest(1000)), mustJSON(t, confirmation("00000000-0000-4000-8000-000000000000")), mustJSON(t, reversal("00000000-0000-4000-8000-000000000000"))}
	paths := []string{"/qr/v1/payments", "/qr/v1/payments/confirmations", "/qr/v1/payments/reversals"}
	for i := 0; i < 3000; i++ {
		b := append([]byte(nil), seeds[i%3]...)
		for k := 0; k < 1+rand.Intn(3); k++ { b[rand.Intn(len(b))] = byte(rand.Intn(256)) }
		s := time.Now()
		r := e.doAuth(client, http.MethodPost, paths[rand.Intn(3)], b, "", "")
		if d := time.Since(s); d > 500*time.Millisecond { t.Fatalf("slow %v %v %d %q", d, r.err, r.status, b) }
	}
}
