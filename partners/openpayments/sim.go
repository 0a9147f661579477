package openpayments

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/ilphttp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
	"github.com/qrswitch/qrswitch/qr"
)

// Simulator builds the customer's side: an Open Payments wallet whose
// account servicing entity is an ILP peer of the switch (the first of
// options.peers). Told a QR code or an incoming payment URL, it reads the
// incoming payment and pays what it still takes over STREAM through the
// switch's ILP-over-HTTP endpoint.
//
// Until the rail's GNAP server is wired, the simulator learns the payment
// method (ILP address and shared secret) from the rail in-process, where a
// real wallet would read the incoming payment with an access token; every
// packet still goes over HTTP through the switch's endpoint.
func (r *Rail) Simulator(env partners.SimEnv) (partners.Simulator, error) {
	if len(r.opts.Peers) == 0 {
		return nil, errors.New("the simulator pays as an ILP peer: options.peers names none")
	}
	tr := &http.Transport{TLSClientConfig: env.SwitchTLS, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 30 * time.Second, IdleConnTimeout: 90 * time.Second}
	if env.SwitchTLS == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	link := ilphttp.NewClient(strings.TrimRight(env.SwitchURL, "/")+r.path+"/ilp", r.opts.Peers[0].Token, 30*time.Second)
	link.HTTP.Transport = tr
	s := &simulator{rail: r, link: link, listen: env.Listen, switchURL: strings.TrimRight(env.SwitchURL, "/"),
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	s.ctx, s.stop = context.WithCancel(context.Background())
	return s, nil
}

type simulator struct {
	rail      *Rail
	link      *ilphttp.Client
	http      *http.Client
	listen    string
	switchURL string
	ctx       context.Context
	stop      context.CancelFunc

	mu       sync.Mutex
	payments []simPayment
}

// simPayment is one payment the simulator made.
type simPayment struct {
	IncomingPayment string `json:"incomingPayment"`
	Sent            uint64 `json:"sent"`
	Delivered       uint64 `json:"delivered"`
	Error           string `json:"error,omitempty"`
	At              string `json:"at"`
}

func (s *simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sim/v1/pay", s.pay)
	mux.HandleFunc("GET /sim/v1/payments", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"payments": append([]simPayment{}, s.payments...)})
	})
	mux.HandleFunc("POST /sim/v1/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.payments = nil
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func (s *simulator) Describe() map[string]any {
	base := "https://" + s.listen
	wallets := map[string]string{}
	for _, w := range s.rail.wallets {
		wallets[w.Retailer] = s.rail.walletURL(w.Name)
	}
	return map[string]any{"url": base, "pay": base + "/sim/v1/pay", "payments": base + "/sim/v1/payments", "reset": base + "/sim/v1/reset",
		"ilpEndpoint": s.link.URL, "walletAddresses": wallets}
}

func (s *simulator) Close() error { s.stop(); return nil }

// pay answers POST /sim/v1/pay {"qr": payload} or {"incomingPayment": url}.
func (s *simulator) pay(w http.ResponseWriter, req *http.Request) {
	var in struct {
		QR              string `json:"qr"`
		IncomingPayment string `json:"incomingPayment"`
	}
	if err := decodeStrict(mustRead(req), &in); err != nil || (in.QR == "") == (in.IncomingPayment == "") {
		writeError(w, http.StatusBadRequest, "invalid_request", `give {"qr": payload} or {"incomingPayment": url}`)
		return
	}
	u := in.IncomingPayment
	if in.QR != "" {
		d, err := qr.Decode(in.QR)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "decoding the QR code: "+err.Error())
			return
		}
		a, ok := d.Account(GUID)
		if u, _ = a.Field("01"); !ok || u == "" {
			writeError(w, http.StatusBadRequest, "invalid_request", "the QR code carries no Open Payments template")
			return
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	p := s.payIncoming(ctx, u)
	s.mu.Lock()
	s.payments = append(s.payments, p)
	s.mu.Unlock()
	status := http.StatusOK
	if p.Error != "" {
		status = http.StatusBadGateway
	}
	writeJSON(w, status, p)
}

func mustRead(req *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(req.Body, maxBody))
	return b
}

// payIncoming reads the incoming payment (its public form over HTTP, its
// method from the rail) and pays what it still takes.
func (s *simulator) payIncoming(ctx context.Context, u string) simPayment {
	p := simPayment{IncomingPayment: u, At: time.Now().UTC().Format(timeFormat)}
	if !strings.HasPrefix(u, s.switchURL+s.rail.path+"/incoming-payments/") {
		p.Error = "not an incoming payment of this switch"
		return p
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := s.http.Do(req)
	if err != nil {
		p.Error = fmt.Sprintf("reading the incoming payment: %v", err)
		return p
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.Error = fmt.Sprintf("reading the incoming payment: HTTP %d", resp.StatusCode)
		return p
	}
	id := u[strings.LastIndex(u, "/")+1:]
	ip, _, err := s.rail.readIncoming(ctx, id)
	if err != nil {
		p.Error = fmt.Sprintf("reading the incoming payment's method: %v", err)
		return p
	}
	if ip.Amount == nil {
		p.Error = "the incoming payment names no amount"
		return p
	}
	_, secret, err := s.rail.creds.Resolve(ip.Address)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	snd := &stream.Sender{Link: s.link.Send}
	st, err := snd.Pay(ctx, stream.Payment{Destination: ilp.Address(ip.Address), SharedSecret: secret, Mode: stream.FixedReceive,
		Amount: *ip.Amount - ip.Received}, stream.State{})
	p.Sent, p.Delivered = st.Sent, st.Delivered
	if err != nil {
		p.Error = err.Error()
	}
	return p
}

// Interface guard.
var _ partners.Simulated = (*Rail)(nil)
