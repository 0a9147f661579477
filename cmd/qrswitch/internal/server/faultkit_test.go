package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// This file is the fault kit of the reliability tests: a scripted partner
// that sits in front of the simulator and answers chosen messages with
// chosen faults, and real TCP fault proxies (toxiproxy, embedded) between
// the switch and the partner.

// script is one scripted answer of the partner to a message.
type script struct {
	// status, when not 0, is the status answered instead of the sim's.
	status int
	// body is the body answered with status (empty: none).
	body string
	// forward has the sim receive (and act on) the message first; without
	// status, its own answer is then given.
	forward bool
	// transit holds the message this long before the partner reads it: a
	// request still on its way.
	transit time.Duration
	// delay holds the answer this long after reading (and forwarding).
	delay time.Duration
	// trickle writes the body trickleChunk bytes at a time, spread evenly
	// over this long, whatever the body's length.
	trickle time.Duration
	// reset resets the TCP connection after reading (forwarding and delay)
	// instead of answering.
	reset bool
	// rewrite, when set, changes the answer's body before it is sent.
	rewrite func([]byte) []byte
	// times is how many deliveries the script answers before the sim takes
	// over again; 0 means all of them.
	times int
	// held, when set, stops the partner at that point until release is
	// closed: the test closes it once it has seen the switch give up, so
	// the answer comes after the switch's timeout on any machine, however
	// slow.
	held    heldAt
	release chan struct{}
}

// heldAt is where a scripted partner waits for its release.
type heldAt int

const (
	notHeld    heldAt = iota
	heldRead          // before reading the message: a request still on its way
	heldAnswer        // before answering, resetting, or sending the last bytes of a trickled body
)

// withRelease returns s with a release of its own if it is held, and the
// function that releases it (idempotent, also run at the test's end).
func withRelease(t testing.TB, s script) (script, func()) {
	if s.held == notHeld {
		return s, func() {}
	}
	s.release = make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(s.release) }) }
	t.Cleanup(release)
	return s, release
}

// released waits until the script is released, unless ctx ends first.
func (s *script) released(ctx context.Context, at heldAt) bool {
	if s.held != at {
		return true
	}
	select {
	case <-s.release:
		return true
	case <-ctx.Done():
		return false
	}
}

// scriptedPartner answers messages by script, keyed by operation and
// payment request id, and hands every other message to the simulator.
// Keying by request id lets tests run in parallel on one partner.
type scriptedPartner struct {
	sim atomic.Pointer[http.Handler]

	mu      sync.Mutex
	scripts map[string]*script
	seen    map[string]int // deliveries per key, scripted or not
}

func newScriptedPartner() *scriptedPartner {
	p := &scriptedPartner{scripts: map[string]*script{}, seen: map[string]int{}}
	h := http.Handler(http.NotFoundHandler())
	p.sim.Store(&h)
	return p
}

// Operations of the partner, as script keys name them.
const (
	opPay     = "pay"
	opConfirm = "confirm"
	opReverse = "reverse"
)

func scriptKey(op, requestID string) string { return op + "/" + requestID }

// set scripts the answers to op for the payment request id.
func (p *scriptedPartner) set(op, requestID string, s script) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scripts[scriptKey(op, requestID)] = &s
}

// clear removes the script of op for the payment request id.
func (p *scriptedPartner) clear(op, requestID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.scripts, scriptKey(op, requestID))
}

// deliveries counts the messages of op for the request id that reached the
// partner (through any lane).
func (p *scriptedPartner) deliveries(op, requestID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[scriptKey(op, requestID)]
}

func (p *scriptedPartner) take(key string) *script {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[key]++
	s := p.scripts[key]
	if s == nil {
		return nil
	}
	c := *s
	if s.times > 0 {
		if s.times--; s.times == 0 {
			delete(p.scripts, key)
		}
	}
	return &c
}

func (p *scriptedPartner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sim := *p.sim.Load()
	var op string
	switch r.URL.Path {
	case "/qr/v1/payments":
		op = opPay
	case "/qr/v1/payments/confirmations":
		op = opConfirm
	case "/qr/v1/payments/reversals":
		op = opReverse
	default:
		sim.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var ids struct{ ID, RequestID string }
	json.Unmarshal(body, &ids)
	requestID := ids.RequestID
	if op == opPay {
		requestID = ids.ID
	}
	s := p.take(scriptKey(op, requestID))
	if s == nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		sim.ServeHTTP(w, r)
		return
	}
	if !waited(r.Context(), s.transit) || !s.released(r.Context(), heldRead) {
		return
	}
	status, answer := s.status, []byte(s.body)
	if s.forward {
		fwd := r.Clone(r.Context())
		fwd.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, fwd)
		if status == 0 {
			status, answer = rec.Code, rec.Body.Bytes()
		}
	}
	if s.rewrite != nil {
		answer = s.rewrite(answer)
	}
	if !waited(r.Context(), s.delay) {
		return
	}
	if s.trickle <= 0 && !s.released(r.Context(), heldAnswer) {
		return
	}
	if s.reset {
		resetConn(w)
		return
	}
	if len(answer) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(answer)))
	w.WriteHeader(status)
	if s.trickle <= 0 {
		w.Write(answer)
		return
	}
	rc := http.NewResponseController(w)
	rc.Flush()
	every := s.trickle / time.Duration((len(answer)+trickleChunk-1)/trickleChunk+1)
	for len(answer) > 0 {
		n := min(trickleChunk, len(answer))
		if n == len(answer) && !s.released(r.Context(), heldAnswer) {
			return
		}
		if _, err := w.Write(answer[:n]); err != nil {
			return
		}
		answer = answer[n:]
		rc.Flush()
		if !waited(r.Context(), every) {
			return
		}
	}
}

// The partners' timeout in the fault matrix, and how long a late answer
// is waited for. No row races the timer: rows "within the timeout" take a
// tenth of a long timeout, and rows "past the timeout" hold their answer
// (script.held) until the test has seen the switch give up, so a loaded
// machine makes a row slower, never its verdict different. The timeout is
// long because every answer of the matrix that must beat it (a few
// hundred milliseconds on an idle machine) was seen to take seconds beside
// a CPU hog.
const (
	faultTimeout    = 15 * time.Second
	faultLateWindow = 3 * faultTimeout
	// withinTimeout is how long a row's partner or network takes at most
	// when its answer must arrive in time.
	withinTimeout = faultTimeout / 10
)

// trickleChunk is how many bytes of a trickled body are written at once.
const trickleChunk = 8

// concurrently runs one subtest per row at once, up to limit at a time
// (go test's -parallel, which is GOMAXPROCS by default, would run these
// mostly idle tests two by two on a small machine).
func concurrently[R any](t *testing.T, limit int, rows []R, name func(R) string, test func(*testing.T, R)) {
	t.Helper()
	slots := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, row := range rows {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			t.Run(name(row), func(t *testing.T) { test(t, row) })
		})
	}
	wg.Wait()
}

// waited waits d unless ctx ends first, and reports whether it waited d.
func waited(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// resetConn closes the request's connection with a TCP reset (no FIN, no
// answer): what a partner process that crashed mid-request looks like.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	raw.Close()
}

// lane is one partner of the switch reached through its own fault proxy,
// so network faults of one test do not touch another's traffic.
type lane struct {
	id, scanUser, scanPass string
	proxy                  *toxiproxy.Proxy
	upstream               string // the partner's host:port
}

// poison adds a toxic to the lane's proxy, e.g.
// `{"type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`.
// Connections already open are dropped first, so the toxic meets a fresh
// connection from its first byte.
func (l *lane) poison(t testing.TB, toxic string) {
	t.Helper()
	l.drop(t)
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		t.Fatalf("adding toxic %s: %v", toxic, err)
	}
}

// heal removes every toxic and points the lane at its partner again.
func (l *lane) heal(t testing.TB) {
	t.Helper()
	l.proxy.Toxics.ResetToxics(context.Background())
	l.setUpstream(t, l.upstream)
}

// drop closes every connection through the lane (stop and start again on
// the same port).
func (l *lane) drop(t testing.TB) {
	t.Helper()
	l.proxy.Stop()
	if err := l.proxy.Start(); err != nil {
		t.Fatalf("restarting proxy %s: %v", l.id, err)
	}
}

// stop stops the lane's proxy: connections to it are refused.
func (l *lane) stop() { l.proxy.Stop() }

// start starts a stopped lane again, on the same port.
func (l *lane) start(t testing.TB) {
	t.Helper()
	if err := l.proxy.Start(); err != nil {
		t.Fatalf("starting proxy %s: %v", l.id, err)
	}
}

// setUpstream points the lane at another server.
func (l *lane) setUpstream(t testing.TB, addr string) {
	t.Helper()
	if l.proxy.Upstream == addr && l.proxy.Enabled {
		return
	}
	if err := l.proxy.Update(&toxiproxy.Proxy{Listen: l.proxy.Listen, Upstream: addr, Enabled: true}); err != nil {
		t.Fatalf("pointing proxy %s at %s: %v", l.id, addr, err)
	}
}

// newToxiproxy returns an embedded toxiproxy server (no API listener).
func newToxiproxy() *toxiproxy.ApiServer {
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
}

// newLaneProxy starts a proxy in front of upstream on a free loopback port.
//
// Its port is below the kernel's ephemeral range: a lane is stopped and
// started again on the same port (connection refused, then healed), and a
// port in the ephemeral range can be taken meanwhile by any outgoing
// connection on the machine (seen: "bind: address already in use" on a
// loaded machine running other tests). Below the range only an explicit
// bind to that very port could take it.
func newLaneProxy(t testing.TB, srv *toxiproxy.ApiServer, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	for range 200 {
		port := stablePortLow + rand.IntN(stablePortHigh-stablePortLow)
		p := toxiproxy.NewProxy(srv, name, fmt.Sprintf("127.0.0.1:%d", port), upstream)
		if err := p.Start(); err != nil {
			continue // taken: another port
		}
		t.Cleanup(p.Stop)
		return p
	}
	t.Fatalf("starting proxy %s: no free port in [%d, %d)", name, stablePortLow, stablePortHigh)
	return nil
}

// The ports lanes listen on: below Linux's default ephemeral range
// (32768–60999) and above the well-known services.
const stablePortLow, stablePortHigh = 20000, 32000

// faultHarness is a switch whose partners answer through a scripted
// partner in front of the simulator; wallet-a is reached directly, and
// every lane through its own fault proxy.
type faultHarness struct {
	*Harness
	partner *scriptedPartner
	lanes   chan *lane
	// untrusted is a TLS server with a certificate the switch does not
	// trust, for handshake failures.
	untrusted string
}

// startPartner starts the scripted partner on a real TLS server and
// returns it with its URL and the file of the CA that signed its
// certificate. attach puts a simulator behind it.
func startPartner(t testing.TB, dir string) (p *scriptedPartner, url, caFile string) {
	t.Helper()
	eph, err := tlsconfig.NewEphemeral("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "sim-ca.pem")
	if err := os.WriteFile(caFile, eph.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p = newScriptedPartner()
	ts := httptest.NewUnstartedServer(p)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are the point here
	ts.TLS = eph.Server
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return p, ts.URL, caFile
}

// attach creates the simulator behind the partner, as wallet-a with the
// test credentials, sending scans to switchURL.
func (p *scriptedPartner) attach(t testing.TB, switchURL string, switchTLS *tls.Config) *electrumsim.Sim {
	sim := electrumsim.New(electrumsim.Config{
		PartnerID: "wallet-a", PartnerName: "Wallet A",
		Username: "switch", Password: "switch-secret",
		LateAfter: 1500 * time.Millisecond, SlowAfter: 300 * time.Millisecond,
		SwitchURL: switchURL, ScanUsername: ScanUser, ScanPassword: ScanPass,
		SwitchTLS: switchTLS,
	})
	t.Cleanup(sim.Close)
	h := sim.Handler()
	p.sim.Store(&h)
	return sim
}

// newFaultHarness starts a fault harness with lanes lanes; tune, when
// given, adjusts the server's options.
func newFaultHarness(t *testing.T, lanes int, tune ...func(*Options)) *faultHarness {
	t.Helper()
	dir := t.TempDir()
	partner, partnerURL, caFile := startPartner(t, dir)
	other, err := tlsconfig.NewEphemeral("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	bad := httptest.NewUnstartedServer(http.NotFoundHandler())
	bad.Config.ErrorLog = log.New(io.Discard, "", 0)
	bad.TLS = other.Server
	bad.StartTLS()
	t.Cleanup(bad.Close)

	simAddr := strings.TrimPrefix(partnerURL, "https://")
	cfg := testConfig(dir, partnerURL, caFile)
	for i := range cfg.Partners {
		cfg.Partners[i].Timeout = config.Duration(faultTimeout)
	}
	tp := newToxiproxy()
	fh := &faultHarness{partner: partner, lanes: make(chan *lane, lanes), untrusted: strings.TrimPrefix(bad.URL, "https://")}
	for i := range lanes {
		id := fmt.Sprintf("lane-%02d", i)
		l := &lane{id: id, scanUser: id, scanPass: id + "-password", upstream: simAddr}
		l.proxy = newLaneProxy(t, tp, id, simAddr)
		cfg.Partners = append(cfg.Partners, config.Partner{
			ID: id, Name: "Lane " + id, Rail: "electrum", BaseURL: "https://" + l.proxy.Listen,
			Username: "switch", Password: "switch-secret", CAFile: caFile, Timeout: config.Duration(faultTimeout),
			ScanUsername: l.scanUser, ScanPassword: l.scanPass,
		})
		fh.lanes <- l
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration invalid: %v", err)
	}
	h := &Harness{T: t, Cfg: cfg, SimURL: partnerURL, Logs: newSyncBuffer()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("switch log:\n%s", h.Logs)
		}
	})
	o := Options{LateWindow: faultLateWindow, SAFPoll: 50 * time.Millisecond, DrainTimeout: 5 * time.Second}
	for _, f := range tune {
		f(&o)
	}
	h.start(o)
	h.Sim = partner.attach(t, h.Base, h.Client.Transport.(*http.Transport).TLSClientConfig)
	fh.Harness = h
	return fh
}

// lane takes a lane for the test, healed, and gives it back at its end.
func (fh *faultHarness) lane(t *testing.T) *lane {
	t.Helper()
	l := <-fh.lanes
	t.Cleanup(func() {
		l.heal(t)
		fh.lanes <- l
	})
	return l
}

// laneScan notifies the switch of a scan as the lane's partner.
func (fh *faultHarness) laneScan(t testing.TB, l *lane, tranID string) Response {
	t.Helper()
	n := &wire.ScanNotification{ID: wire.NewID(), Time: now(), Partner: &wire.Institution{ID: l.id, Name: "Lane"},
		TranID: tranID, PartnerPaymentToken: "tok-secret-123456"}
	return fh.Post(t, "/qr/v1/scans", l.scanUser, l.scanPass, n)
}

// startPay creates a QR code, sends its payment request, waits until the
// switch holds it, calls before (when not nil), and has the partner scan
// it: through the lane when one is given, else as wallet-a through the
// simulator. It returns the request and the retailer's answer to come.
func (fh *faultHarness) startPay(t *testing.T, l *lane, amount int64, before func(*wire.PaymentRequest)) (*wire.PaymentRequest, <-chan Response) {
	t.Helper()
	tranID, payload := fh.createQR(t)
	req := payRequest("1234", tranID, amount)
	answer := fh.payAsync(req)
	fh.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
	if before != nil {
		before(req)
	}
	if l != nil {
		if r := fh.laneScan(t, l, tranID); r.status != 202 {
			t.Fatalf("scan through %s = %d %s, want 202", l.id, r.status, r.body)
		}
	} else if res := fh.scan(t, payload); res.Status != 202 {
		t.Fatalf("scan = %d %s, want 202", res.Status, res.Body)
	}
	return req, answer
}

// approved runs a payment to approval (through the lane, if any).
func (fh *faultHarness) approved(t *testing.T, l *lane, amount int64) *wire.PaymentRequest {
	t.Helper()
	req, answer := fh.startPay(t, l, amount, nil)
	if r := <-answer; r.status != 201 {
		t.Fatalf("pay = %d %s, want 201", r.status, r.body)
	}
	return req
}

// answers returns the partner's answers to a message as the trace records
// them (late answers excluded), in order.
func answers(st qrswitch.Story, op, messageID string) []qrswitch.TraceEntry {
	var out []qrswitch.TraceEntry
	for _, e := range st.Trace {
		if e.Operation == op && e.Kind == qrswitch.KindAnswer && e.Direction == qrswitch.Inbound &&
			e.MessageID == messageID && e.Outcome != "" {
			out = append(out, e)
		}
	}
	return out
}

// lateAnswers returns the trace's late answers to a message.
func lateAnswers(st qrswitch.Story, op, messageID string) []qrswitch.TraceEntry {
	var out []qrswitch.TraceEntry
	for _, e := range st.Trace {
		if e.Operation == op && e.MessageID == messageID && strings.Contains(e.Note, "late response ignored") {
			out = append(out, e)
		}
	}
	return out
}
