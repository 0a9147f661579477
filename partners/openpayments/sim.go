package openpayments

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
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
// It reads the payment method as a payer's wallet does: the public form
// names the authorisation server, which grants it incoming-payment
// read-all (a client known by its key alone: a wallet need not publish
// one); the full form, read with that token and signed, carries the ILP
// address and shared secret.
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
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s.key, s.jwk = key, &JWK{Kid: "sim-wallet", Alg: "EdDSA", Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub)}
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
	// key signs its requests; jwk is its public half, given in grant
	// requests (it has no wallet address of its own to publish keys at).
	key ed25519.PrivateKey
	jwk *JWK

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

// payIncoming reads the incoming payment (with a grant, as a payer's
// wallet does) and pays what it still takes over STREAM.
func (s *simulator) payIncoming(ctx context.Context, u string) simPayment {
	p := simPayment{IncomingPayment: u, At: time.Now().UTC().Format(timeFormat)}
	if !strings.HasPrefix(u, s.switchURL+s.rail.path+"/incoming-payments/") {
		p.Error = "not an incoming payment of this switch"
		return p
	}
	pm, err := s.paymentMethod(ctx, u)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	if pm.amount == nil {
		p.Error = "the incoming payment names no amount"
		return p
	}
	snd := &stream.Sender{Link: s.link.Send}
	st, err := snd.Pay(ctx, stream.Payment{Destination: ilp.Address(pm.address), SharedSecret: pm.secret, Mode: stream.FixedReceive,
		Amount: *pm.amount - pm.received}, stream.State{})
	p.Sent, p.Delivered = st.Sent, st.Delivered
	if err != nil {
		p.Error = err.Error()
	}
	return p
}

// Interface guard.
var _ partners.Simulated = (*Rail)(nil)

// payMethod is what a payer needs of an incoming payment.
type payMethod struct {
	amount   *uint64
	received uint64
	address  string
	secret   []byte
}

// paymentMethod reads incoming payment u as a payer's wallet does, with a
// grant of the switch's authorisation server.
func (s *simulator) paymentMethod(ctx context.Context, u string) (*payMethod, error) {
	var public struct {
		AuthServer string `json:"authServer"`
	}
	if err := s.getJSON(ctx, u, "", &public); err != nil {
		return nil, fmt.Errorf("reading the incoming payment: %w", err)
	}
	body, _ := json.Marshal(map[string]any{
		"access_token": map[string]any{"access": []map[string]any{{"type": "incoming-payment", "actions": []string{"read-all"}}}},
		"client":       map[string]any{"jwk": s.jwk},
	})
	var grant struct {
		AccessToken struct {
			Value string `json:"value"`
		} `json:"access_token"`
	}
	if err := s.do(ctx, http.MethodPost, public.AuthServer, "", body, &grant); err != nil {
		return nil, fmt.Errorf("asking for a grant: %w", err)
	}
	var full struct {
		IncomingAmount *struct {
			Value string `json:"value"`
		} `json:"incomingAmount"`
		ReceivedAmount struct {
			Value string `json:"value"`
		} `json:"receivedAmount"`
		Methods []struct {
			Type         string `json:"type"`
			ILPAddress   string `json:"ilpAddress"`
			SharedSecret string `json:"sharedSecret"`
		} `json:"methods"`
	}
	if err := s.getJSON(ctx, u, grant.AccessToken.Value, &full); err != nil {
		return nil, fmt.Errorf("reading the incoming payment with the grant: %w", err)
	}
	m := &payMethod{}
	for _, x := range full.Methods {
		if x.Type == "ilp" {
			m.address = x.ILPAddress
			m.secret, _ = base64.RawURLEncoding.DecodeString(x.SharedSecret)
		}
	}
	if m.address == "" || len(m.secret) != 32 {
		return nil, errors.New("the incoming payment offers no ILP payment method")
	}
	if full.IncomingAmount != nil {
		n, err := strconv.ParseUint(full.IncomingAmount.Value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("incomingAmount %q: %w", full.IncomingAmount.Value, err)
		}
		m.amount = &n
	}
	m.received, _ = strconv.ParseUint(full.ReceivedAmount.Value, 10, 64)
	return m, nil
}

func (s *simulator) getJSON(ctx context.Context, u, token string, v any) error {
	return s.do(ctx, http.MethodGet, u, token, nil, v)
}

// do sends one signed request to the switch and decodes its JSON answer.
func (s *simulator) do(ctx context.Context, method, u, token string, body []byte, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "GNAP "+token)
	}
	signRequest(req, body, s.jwk.Kid, s.key, time.Now())
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d %s", method, u, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}
