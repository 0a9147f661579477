// Package ippsim is a counterpart IPP accountant for development and
// tests: it plays a payer's brand (its page declaring its manifest, the
// manifest, its certificate and accountant endpoint), sends offers to the
// switch's brands for their QR codes' relays, answers verification queries
// about its own records, and decides the reversal offers the switch sends
// it — with faults on demand: wrong ver_data, slow answers, an error code
// for every notification, or no answer at all.
package ippsim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
	"github.com/qrswitch/qrswitch/qr"
)

// Config describes the brand the simulator plays.
type Config struct {
	// Brand is the simulator's brand, host[:port]/path, and BaseURL the
	// https URL of that page (https://host:port/path).
	Brand, BaseURL string
	// SwitchTLS trusts the switch's listener (and the simulator's own,
	// when both are test servers).
	SwitchTLS *tls.Config
	// Unit is the accounting unit of the offers it sends.
	Unit string
	// RSA makes the simulator sign with an RSA key and publish its
	// certificate; otherwise it uses query verification.
	RSA bool
}

// Faults are what the simulator does wrong on purpose.
type Faults struct {
	// WrongVerData sends offers whose ver_data does not verify.
	WrongVerData bool `json:"wrongVerData"`
	// Forget answers every verification query "no such record" (404).
	Forget bool `json:"forget"`
	// Delay holds every answer of the accountant endpoint this long.
	Delay time.Duration `json:"delay"`
	// Code answers every notification with this code (a 6xx decision
	// other than 620, or an error), instead of approving it.
	Code protocol.Code `json:"code"`
	// Down answers every notification with HTTP 503 and no IPP reply.
	Down bool `json:"down"`
}

// Sim is a running counterpart accountant.
type Sim struct {
	cfg    Config
	path   string
	signer protocol.Signer
	cert   []byte
	dir    *protocol.Directory
	client *http.Client

	mu       sync.Mutex
	faults   Faults
	own      map[string]protocol.QueryReply
	received []Received
	changed  chan struct{}
}

// Received is a notification the simulator received, and its reply.
type Received struct {
	Body  string          `json:"body"`
	Reply *protocol.Reply `json:"reply"`
	At    time.Time       `json:"at"`
}

// New builds a simulator.
func New(cfg Config) (*Sim, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("ippsim: base URL %q", cfg.BaseURL)
	}
	if !protocol.ValidBrand(cfg.Brand) {
		return nil, fmt.Errorf("ippsim: %q is not a brand", cfg.Brand)
	}
	tlsCfg := cfg.SwitchTLS
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, ResponseHeaderTimeout: 30 * time.Second}}
	s := &Sim{cfg: cfg, path: strings.TrimRight(u.Path, "/"), client: client, own: map[string]protocol.QueryReply{}, changed: make(chan struct{}, 64),
		dir: &protocol.Directory{Client: client, TTL: time.Minute}}
	if cfg.RSA {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cfg.Brand},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, err
		}
		s.signer, s.cert = protocol.Signer{Key: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return s, nil
}

// Brand is the simulator's brand.
func (s *Sim) Brand() string { return s.cfg.Brand }

// Close releases the simulator's connections.
func (s *Sim) Close() { s.client.CloseIdleConnections() }

// SetFaults replaces the faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Received returns the notifications received so far.
func (s *Sim) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// Changed signals each notification received.
func (s *Sim) Changed() <-chan struct{} { return s.changed }

// Handler serves the brand's page, manifest, certificate and accountant
// endpoint, and the simulator's controls under /sim/v1/.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+s.path, s.page)
	mux.HandleFunc("GET "+s.path+"/manifest.json", s.manifest)
	mux.HandleFunc("GET "+s.path+"/cert.pem", s.certificate)
	mux.HandleFunc("POST "+s.path+"/accountant", s.notify)
	mux.HandleFunc("GET "+s.path+"/accountant", s.query)
	mux.HandleFunc("POST /sim/v1/pay", s.payHandler)
	mux.HandleFunc("POST /sim/v1/faults", s.faultsHandler)
	mux.HandleFunc("GET /sim/v1/received", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, s.Received()) })
	return mux
}

func (s *Sim) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprintf(w, `<html><head><title>%s</title>
<meta name="ipp_manifest" content="%s/manifest.json" /></head><body>%s</body></html>`, s.cfg.Brand, s.cfg.BaseURL, s.cfg.Brand)
}

func (s *Sim) manifest(w http.ResponseWriter, _ *http.Request) {
	m := protocol.Manifest{Version: protocol.Version, Brand: s.cfg.Brand, Accountants: []string{s.cfg.BaseURL + "/accountant"}}
	if s.cert != nil {
		m.KeyCert = []string{s.cfg.BaseURL + "/cert.pem"}
	}
	w.Header().Set("Cache-Control", "max-age=60")
	writeJSON(w, 200, m)
}

func (s *Sim) certificate(w http.ResponseWriter, r *http.Request) {
	if s.cert == nil {
		http.NotFound(w, r)
		return
	}
	w.Write(s.cert)
}

// query answers a verification query about one of the simulator's records.
func (s *Sim) query(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	q, ok := s.own[r.URL.Query().Get("ver_query")]
	forget := s.faults.Forget
	s.mu.Unlock()
	if !ok || forget {
		writeJSON(w, 404, protocol.QueryReply{Code: protocol.CodeVerification, Status: protocol.CodeVerification.Status(), Message: "no such record"})
		return
	}
	writeJSON(w, 200, q)
}

// Sign signs any notification as the simulator's (tests forge with it)
// and keeps it for verification queries.
func (s *Sim) Sign(n *protocol.Notification) error { return s.sign(n) }

// sign signs n and keeps it for verification queries.
func (s *Sim) sign(n *protocol.Notification) error {
	if err := s.signer.Sign(n); err != nil {
		return err
	}
	s.mu.Lock()
	s.own[n.SHA1()] = protocol.QueryReply{Code: n.Code, Status: n.Status, Record: n.Canonical()}
	s.mu.Unlock()
	return nil
}

// notify decides a notification from the switch (its reversal offers):
// verified against the notifier's brand, then approved, or answered as the
// faults say.
func (s *Sim) notify(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<10))
	var rep *protocol.Reply
	status := 200
	defer func() {
		s.mu.Lock()
		s.received = append(s.received, Received{Body: string(body), Reply: rep, At: time.Now()})
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}()
	if f.Down {
		http.Error(w, "accountant down", http.StatusServiceUnavailable)
		return
	}
	n, err := protocol.ParseNotification(body)
	if err == nil {
		// The notifier of an offer to be paid is the payer; of a reversal
		// offer, the payee; of a decision, the other side of the offer.
		notifier := n.From
		if n.Reversal() == (n.Code == protocol.CodeOffer) {
			notifier = n.To
		}
		_, err = protocol.Verifier{Dir: s.dir}.Verify(r.Context(), n, notifier)
	}
	var pe *protocol.ParamError
	switch {
	case errors.As(err, &pe):
		rep = &protocol.Reply{Code: pe.Code, Status: pe.Code.Status(), Message: pe.Error()}
	case err != nil:
		rep = &protocol.Reply{Code: protocol.CodeServerError, Status: protocol.CodeServerError.Status(), Message: err.Error()}
	case n.Code != protocol.CodeOffer:
		rep = &protocol.Reply{Code: n.Code, Status: n.Code.Status(), Message: "recorded"}
	case f.Code != 0 && !f.Code.Decision() || f.Code == protocol.CodePending:
		rep = &protocol.Reply{Code: f.Code, Status: f.Code.Status(), Message: "simulated"}
	default:
		code := protocol.CodeApproved
		if f.Code != 0 {
			code = f.Code
		}
		d := *n
		d.Code, d.Status = code, code.Status()
		if code == protocol.CodeReset {
			d.RefAmount, d.Amount = n.Amount, halve(n.Amount)
			d.RefXTime, d.RefMemo = n.XTime, n.Memo
		}
		if err := s.sign(&d); err != nil {
			rep = &protocol.Reply{Code: protocol.CodeServerError, Status: protocol.CodeServerError.Status(), Message: err.Error()}
			break
		}
		rep = &protocol.Reply{Code: code, Status: code.Status(), Scheme: d.Scheme, VerData: d.VerData, Data: d.Canonical()}
		if code == protocol.CodeReset {
			rep.Amount, rep.RefAmount = d.Amount, d.RefAmount
		}
	}
	status = rep.HTTPStatus()
	writeJSON(w, status, rep)
}

// halve is a reset's new amount: half the original, in the same decimals.
func halve(a string) string {
	whole, frac, _ := strings.Cut(strings.TrimPrefix(a, "-"), ".")
	v, ok := protocol.ToMinor(whole+"."+frac, len(frac))
	if !ok {
		return a
	}
	out := qr.FormatMinor(v/2, len(frac))
	if strings.HasPrefix(a, "-") {
		return "-" + out
	}
	return out
}

// PayRequest is an offer the simulator is to send to a switch brand.
type PayRequest struct {
	To     string `json:"to"`
	Relay  string `json:"relay"`
	Amount string `json:"amount"`
	Unit   string `json:"unit,omitempty"`
	Memo   string `json:"memo,omitempty"`
	// XTime defaults to now.
	XTime int64 `json:"xtime,omitempty"`
}

// PayResult is what came of an offer.
type PayResult struct {
	Offer  string          `json:"offer"`
	Status int             `json:"httpStatus"`
	Reply  *protocol.Reply `json:"reply"`
	// DecisionVerified says the switch's decision in the reply verified
	// against the switch brand's manifest.
	DecisionVerified bool   `json:"decisionVerified"`
	DecisionError    string `json:"decisionError,omitempty"`
}

// Offer builds and signs an offer (without sending it).
func (s *Sim) Offer(p PayRequest) (*protocol.Notification, error) {
	if p.Unit == "" {
		p.Unit = s.cfg.Unit
	}
	if p.XTime == 0 {
		p.XTime = time.Now().Unix()
	}
	n := &protocol.Notification{Version: protocol.Version, Code: protocol.CodeOffer, Status: protocol.CodeOffer.Status(), Relay: p.Relay,
		XTime: p.XTime, Amount: p.Amount, Unit: p.Unit, From: s.cfg.Brand, To: p.To, Memo: p.Memo}
	if err := s.sign(n); err != nil {
		return nil, err
	}
	s.mu.Lock()
	wrong := s.faults.WrongVerData
	s.mu.Unlock()
	if wrong {
		if n.Scheme == protocol.SchemeQuery {
			n.VerData = strings.Repeat("0", 40)
		} else {
			n.VerData = "AAAA" + n.VerData[4:]
		}
	}
	return n, nil
}

// Pay sends an offer for a switch brand's code and verifies the decision.
func (s *Sim) Pay(ctx context.Context, p PayRequest) (*PayResult, error) {
	n, err := s.Offer(p)
	if err != nil {
		return nil, err
	}
	res, err := s.Send(ctx, n.To, n.Encode())
	if err != nil {
		return nil, err
	}
	if res.Reply.Code.Decision() {
		d, err := res.Reply.Decision()
		if err == nil {
			_, err = protocol.Verifier{Dir: s.dir}.Verify(ctx, d, n.To)
		}
		res.DecisionVerified = err == nil
		if err != nil {
			res.DecisionError = err.Error()
		}
	}
	return res, nil
}

// Send posts a URL-encoded notification (any bytes: tests forge and
// replay) to brand's accountant and reads the reply.
func (s *Sim) Send(ctx context.Context, brand, body string) (*PayResult, error) {
	m, err := s.dir.Manifest(ctx, brand)
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", brand, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Accountants[0], strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("notifying %s: %w", brand, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	rep, err := protocol.ParseReply(raw)
	if err != nil {
		return nil, fmt.Errorf("%s answered %d %q: %w", brand, resp.StatusCode, raw, err)
	}
	return &PayResult{Offer: body, Status: resp.StatusCode, Reply: rep}, nil
}

func (s *Sim) payHandler(w http.ResponseWriter, r *http.Request) {
	var p PayRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&p); err != nil {
		writeJSON(w, 400, map[string]string{"error": err.Error()})
		return
	}
	res, err := s.Pay(r.Context(), p)
	if err != nil {
		writeJSON(w, 502, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, 200, res)
}

func (s *Sim) faultsHandler(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&f); err != nil {
		writeJSON(w, 400, map[string]string{"error": err.Error()})
		return
	}
	s.SetFaults(f)
	writeJSON(w, 200, f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// Decide sends, later, the simulator's decision on an offer it received
// (its URL-encoded body) to the offer's notifier: after answering 610
// pending, say. A reset (640) halves the amount.
func (s *Sim) Decide(ctx context.Context, offer string, code protocol.Code) (*PayResult, error) {
	n, err := protocol.ParseNotification([]byte(offer))
	if err != nil {
		return nil, err
	}
	d := *n
	d.Code, d.Status = code, code.Status()
	if code == protocol.CodeReset {
		// A reset's ref_* name the record it resets.
		d.RefAmount, d.Amount = n.Amount, halve(n.Amount)
		d.RefXTime, d.RefMemo = n.XTime, n.Memo
	}
	if err := s.sign(&d); err != nil {
		return nil, err
	}
	notifier := n.To
	if !n.Reversal() {
		notifier = n.From
	}
	return s.Send(ctx, notifier, d.Encode())
}
