package electrumsim

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// Defaults of Config.
const (
	DefaultPartnerID   = "sim-wallet"
	DefaultPartnerName = "Sim Wallet"
	DefaultLateAfter   = 65 * time.Second
	DefaultSlowAfter   = 2 * time.Second
	DefaultScanTimeout = 10 * time.Second
)

// maxBody bounds every request body the sim reads.
const maxBody = 1 << 20

// Config sets up a Sim. The zero value works: a partner called sim-wallet
// that checks no credentials and has no switch to send scans to.
type Config struct {
	// PartnerID and PartnerName are the institution the sim answers as and
	// scans as. Defaults: DefaultPartnerID, DefaultPartnerName.
	PartnerID   string
	PartnerName string

	// Username and Password are the Basic auth credentials the switch must
	// present on /qr/v1/*. Both empty: no check.
	Username string
	Password string

	// LateAfter is how long a late answer (behaviour 70) and a hang fault
	// wait. Default DefaultLateAfter (65 s, past the interface's 60 s
	// timeout).
	LateAfter time.Duration
	// SlowAfter is how long a slow answer (behaviour 72) waits. Default
	// DefaultSlowAfter (2 s).
	SlowAfter time.Duration

	// SwitchURL is the switch's base URL, such as https://127.0.0.1:8443;
	// the customer app posts scans to {SwitchURL}/qr/v1/scans.
	SwitchURL string
	// ScanUsername and ScanPassword are the Basic auth credentials the
	// customer app presents to the switch. Both empty: none sent.
	ScanUsername string
	ScanPassword string
	// SwitchTLS is the TLS configuration for calling the switch (its trust
	// roots). Nil: the system roots.
	SwitchTLS *tls.Config
	// ScanTimeout bounds one scan notification to the switch. Default
	// DefaultScanTimeout (10 s).
	ScanTimeout time.Duration

	// Now is the clock of the ledger's timestamps. Default time.Now.
	Now func() time.Time
}

// Sim is a simulated payment partner (a wallet) speaking the partner side
// of the Electrum QR interface. It is safe for concurrent use.
type Sim struct {
	cfg      Config
	identity wire.Institution
	user     []byte // expected Basic auth, nil when not checked
	pass     []byte

	payments shards[payment]
	advices  shards[advice]
	scans    shards[ScanEntry]
	faults   faults
	quirks   quirks

	client *http.Client // to the switch, for scans

	// mu guards closed against the WaitGroup: no hold starts after Close.
	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
	held   atomic.Int64 // requests being held, for tests
}

// New returns a Sim configured by c, with defaults filled in.
func New(c Config) *Sim {
	if c.PartnerID == "" {
		c.PartnerID = DefaultPartnerID
	}
	if c.PartnerName == "" {
		c.PartnerName = DefaultPartnerName
	}
	if c.LateAfter <= 0 {
		c.LateAfter = DefaultLateAfter
	}
	if c.SlowAfter <= 0 {
		c.SlowAfter = DefaultSlowAfter
	}
	if c.ScanTimeout <= 0 {
		c.ScanTimeout = DefaultScanTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.SwitchURL = strings.TrimRight(c.SwitchURL, "/")
	s := &Sim{
		cfg:      c,
		identity: wire.Institution{ID: c.PartnerID, Name: c.PartnerName},
		done:     make(chan struct{}),
	}
	if c.Username != "" || c.Password != "" {
		s.user, s.pass = []byte(c.Username), []byte(c.Password)
	}
	s.payments.init()
	s.advices.init()
	s.scans.init()
	s.faults.rules = make(map[Operation]*faultRule)
	var tlsConfig *tls.Config
	if c.SwitchTLS != nil {
		tlsConfig = c.SwitchTLS.Clone()
	}
	s.client = &http.Client{
		Timeout: c.ScanTimeout,
		Transport: &http.Transport{
			Proxy:                 nil, // the switch is reached directly, whatever the environment says
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: c.ScanTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   64, // the load tool scans in parallel
			ForceAttemptHTTP2:     true,
		},
	}
	return s
}

// Handler returns the sim's HTTP surface: the partner endpoints under
// /qr/v1/ and the controls under /sim/v1/ (see the package comment). The
// controls are not authenticated; bind the listener to a trusted address.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /qr/v1/payments", s.servePay)
	mux.HandleFunc("POST /qr/v1/payments/confirmations", func(w http.ResponseWriter, r *http.Request) {
		s.serveAdvice(w, r, OpConfirm)
	})
	mux.HandleFunc("POST /qr/v1/payments/reversals", func(w http.ResponseWriter, r *http.Request) {
		s.serveAdvice(w, r, OpReverse)
	})
	mux.HandleFunc("GET /sim/v1/faults", s.serveFaults)
	mux.HandleFunc("POST /sim/v1/faults", s.serveSetFault)
	mux.HandleFunc("DELETE /sim/v1/faults", s.serveClearFaults)
	mux.HandleFunc("GET /sim/v1/ledger", s.serveLedger)
	mux.HandleFunc("POST /sim/v1/reset", s.serveReset)
	mux.HandleFunc("POST /sim/v1/scan", s.serveScan)
	mux.HandleFunc("GET /sim/v1/health", s.serveHealth)
	mux.HandleFunc("/sim/v1/quirks", s.serveQuirks)
	return mux
}

// Close ends the answers the sim is holding (late, slow, hang: their
// connections are closed unanswered), waits for them, and closes idle
// connections to the switch. Held answers that would start later end at
// once. The handler keeps serving everything else. Close is idempotent.
func (s *Sim) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

// hold waits d, unless the client goes away or the sim closes first; it
// reports whether the whole wait passed.
func (s *Sim) hold(ctx context.Context, d time.Duration) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.held.Add(1)
	s.mu.Unlock()
	defer func() {
		s.held.Add(-1)
		s.wg.Done()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// holdNote says why a hold ended early.
func (s *Sim) holdNote(ctx context.Context) string {
	if ctx.Err() != nil {
		return "client went away before the answer"
	}
	return "sim closed before the answer"
}

// drop closes the request's connection without an answer. Where the
// connection cannot be taken over (HTTP/2), the stream is reset instead.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// authorized checks the switch's Basic auth, answering 401 when it fails.
func (s *Sim) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.user == nil {
		return true
	}
	u, p, ok := r.BasicAuth()
	if ok && subtle.ConstantTimeCompare([]byte(u), s.user)&subtle.ConstantTimeCompare([]byte(p), s.pass) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="electrumsim", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, wire.NewErrorDetail(wire.GeneralError, "Authentication required", "", ""))
	return false
}

// readBody reads the request body, answering 400 when it is too long or
// cannot be read.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		reason := "request body could not be read"
		if errors.As(err, new(*http.MaxBytesError)) {
			reason = "request body is longer than " + strconv.Itoa(maxBody) + " bytes"
		}
		writeFormatError(w, &wire.FieldError{Reason: reason})
		return nil, false
	}
	return body, true
}

// decode decodes and validates a message, answering 400 FORMAT_ERROR naming
// the field when it is wrong.
func decode(w http.ResponseWriter, body []byte, v interface{ Validate() error }) bool {
	err := wire.Decode(body, v)
	if err == nil {
		err = v.Validate()
	}
	if err != nil {
		writeFormatError(w, err)
		return false
	}
	return true
}

// writeFormatError answers 400 FORMAT_ERROR. The errorMessage names the
// field (cut to the interface's 40 characters); detailMessage has the whole
// reason.
func writeFormatError(w http.ResponseWriter, err error) {
	msg := "Malformed request"
	var fe *wire.FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		msg = "Invalid " + fe.Field
	}
	d := wire.NewErrorDetail(wire.FormatError, msg, "", "")
	d.DetailMessage = wire.Detail(err.Error())
	writeError(w, http.StatusBadRequest, d)
}

func writeError(w http.ResponseWriter, status int, d *wire.ErrorDetail) {
	b, err := json.Marshal(d)
	if err != nil { // an ErrorDetail of strings always marshals
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, wire.NewErrorDetail(wire.GeneralError, "Encoding failed", "", ""))
		return
	}
	writeJSON(w, status, b)
}
