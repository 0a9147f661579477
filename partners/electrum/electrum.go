// Package electrum is the native rail: it calls a partner that implements
// the partner side of the Electrum QR interface — POST
// {base_url}/qr/v1/payments, /payments/confirmations and
// /payments/reversals, JSON over TLS with HTTP Basic auth — classifies each
// answer with outcome.Classify, and builds the retailer's answer to a
// decline. Its surface is the interface's notifyScan (POST /qr/v1/scans),
// where the partner's app reports a scan; its simulator is electrumsim.
//
// It tells an error that happened before the request could have reached the
// partner (refused dial, failed TLS handshake: outcome.ErrNotSent) from one
// after (timeout, reset): only the former proves nothing happened upstream.
package electrum

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
)

// Name is the rail's registered name.
const Name = "electrum"

func init() { partners.Register(Name, New) }

// Paths of the partner side of the interface, relative to base_url.
const (
	PayPath     = "/qr/v1/payments"
	ConfirmPath = "/qr/v1/payments/confirmations"
	ReversePath = "/qr/v1/payments/reversals"
	// ScanPath is the switch's own path where partners notify scans.
	ScanPath = "/qr/v1/scans"
)

// maxAnswer bounds an answer body; the interface's messages are a few KiB.
const maxAnswer = 1 << 20

// maxScan bounds a scan notification's body, as every retailer request.
const maxScan = 64 << 10

// Options are the rail's own options (a partner's `options:`). The rail has
// none yet: every Electrum partner is described by the common keys
// (base_url, username, password, ca_file, timeout, scan_username, …). An
// unknown key is refused.
type Options struct{}

// Rail calls one Electrum-speaking partner.
type Rail struct {
	id, name   string
	base       string
	user, pass string // Basic auth the switch presents upstream
	auth       string // its Authorization header, "" for none
	host       partners.Host
	client     *http.Client
}

// New builds the rail for one partner.
func New(c partners.Config) (partners.Rail, error) {
	var opts Options
	if err := partners.DecodeOptions(c.Options, &opts); err != nil {
		return nil, err
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("base_url %q is not an http(s) URL", c.BaseURL)
	}
	transport := c.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	r := &Rail{
		id:   c.PartnerID,
		name: c.Name,
		base: strings.TrimRight(c.BaseURL, "/"),
		user: c.Username,
		pass: c.Password,
		host: c.Host,
		client: &http.Client{
			Transport: transport,
			// The engine bounds each call with the partner's timeout (and
			// a late window); this is only a backstop.
			Timeout: c.Timeout + 2*time.Minute,
			// A partner that redirects a payment is misconfigured; never
			// re-send a payment somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if c.Username != "" || c.Password != "" {
		r.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
	}
	return r, nil
}

// Pay sends a payment request, with the partner and its payment token from
// the scan filled in.
// ShardSafe: the Electrum rail keeps no records (partners.ShardSafe).
func (r *Rail) ShardSafe() bool { return true }

func (r *Rail) Pay(ctx context.Context, p *partners.Payment) *partners.Answer {
	req := *p.Request
	req.Partner = p.Partner
	req.PartnerPaymentToken = p.Token
	a, status, detail := r.do(ctx, outcome.Pay, PayPath, &req)
	var resp wire.PaymentResponse
	if a.Err == nil && status >= 200 && status < 300 {
		if err := wire.Decode(a.Received, &resp); err != nil {
			a.Err = fmt.Errorf("%w: %v", outcome.ErrMalformedAnswer, err)
		} else if err := resp.Validate(); err != nil {
			a.Err = fmt.Errorf("%w: %v", outcome.ErrMalformedAnswer, err)
		} else {
			a.Response = &resp
		}
	}
	a.Outcome = outcome.Classify(outcome.Pay, status, a.Err)
	if a.Outcome == outcome.Failed {
		a.Decline = Decline(status, detail, a.Err, p.Request.ID, p.TranID)
	}
	a.Received = wire.Mask(a.Received)
	return a
}

// Confirm sends a confirmation advice.
func (r *Rail) Confirm(ctx context.Context, adv *partners.Advice) *partners.Answer {
	a, status, _ := r.do(ctx, outcome.Confirm, ConfirmPath, adv.Confirmation)
	a.Outcome = outcome.Classify(outcome.Confirm, status, a.Err)
	a.Received = wire.Mask(a.Received)
	return a
}

// Reverse sends a reversal advice.
func (r *Rail) Reverse(ctx context.Context, adv *partners.Advice) *partners.Answer {
	a, status, _ := r.do(ctx, outcome.Reverse, ReversePath, adv.Reversal)
	a.Outcome = outcome.Classify(outcome.Reverse, status, a.Err)
	a.Received = wire.Mask(a.Received)
	return a
}

// Code is the rail's code of an HTTP answer ("HTTP 404"), "" for none.
func Code(status int) string {
	if status == 0 {
		return ""
	}
	return "HTTP " + strconv.Itoa(status)
}

// do sends msg and reads the answer: its status and the partner's
// ErrorDetail, when it sent a valid one. The caller classifies it. Sent is
// masked; Received is raw until the caller has read it.
func (r *Rail) do(ctx context.Context, op outcome.Operation, path string, msg any) (*partners.Answer, int, *wire.ErrorDetail) {
	a := &partners.Answer{}
	body, err := json.Marshal(msg)
	if err != nil {
		a.Err = fmt.Errorf("encoding %s: %w: %w", op, err, outcome.ErrNotSent)
		return a, 0, nil
	}
	a.Sent = wire.Mask(body)
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		a.Err = fmt.Errorf("building %s request: %w: %w", op, err, outcome.ErrNotSent)
		return a, 0, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		a.Latency = time.Since(start)
		if !wrote.Load() {
			// No request header was written: the dial or the handshake
			// failed (or the deadline passed first), so the partner cannot
			// have seen the request.
			err = fmt.Errorf("%w: %w", err, outcome.ErrNotSent)
		}
		a.Err = err
		return a, 0, nil
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	a.Code = Code(status)
	a.Received, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	a.Latency = time.Since(start)
	if err == nil && len(a.Received) > maxAnswer {
		err = fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	if err != nil {
		// The status line is the answer, except for an approval, whose
		// body says what was approved.
		if op == outcome.Pay && status >= 200 && status < 300 {
			a.Err = fmt.Errorf("%w: reading the answer: %v", outcome.ErrMalformedAnswer, err)
		}
		return a, status, nil
	}
	var detail *wire.ErrorDetail
	if status >= 300 && len(a.Received) > 0 {
		var d wire.ErrorDetail
		if wire.Decode(a.Received, &d) == nil && d.Validate() == nil {
			detail = &d
		}
	}
	return a, status, detail
}

// Decline is the retailer's answer to a payment the partner declined
// (outcome failed): a status the interface declares for pay — 400 or 503,
// the two that mean failed — and an ErrorDetail, the partner's own when it
// sent one (its errorType kept, its status in providerErrorCode). The
// mapping, as the README's integrator section lists it:
//
//	nothing sent (refused, TLS)        503 UPSTREAM_UNAVAILABLE
//	400 and other 4xx                  400, the partner's errorType, else DECLINED_BY_PARTNER
//	401, 403                           503 UPSTREAM_UNAVAILABLE (the switch's credentials were refused)
//	404                                400, the partner's errorType, else UNABLE_TO_LOCATE_RECORD
//	501                                400, the partner's errorType, else FUNCTION_NOT_SUPPORTED
//	3xx, 502, 503, 505–599             503, the partner's errorType, else UPSTREAM_UNAVAILABLE
func Decline(status int, detail *wire.ErrorDetail, err error, requestID, tranID string) *wire.Failure {
	if err != nil {
		f := wire.Fail(503, wire.UpstreamUnavailable, "Partner unreachable", requestID, tranID)
		f.Detail.DetailMessage = wire.Detail("the payment was not sent: " + err.Error())
		return f
	}
	code, errorType, msg := 400, wire.DeclinedByPartner, "Declined by partner"
	switch {
	case status == 401 || status == 403:
		code, errorType, msg = 503, wire.UpstreamUnavailable, "Partner refused the switch"
		detail = nil // about the switch's credentials, not the customer
	case status == 404:
		errorType, msg = wire.UnableToLocateRecord, "Partner could not find the payment"
	case status == 501:
		errorType, msg = wire.FunctionNotSupported, "Not supported by partner"
	case status < 400 || status >= 500:
		code, errorType, msg = 503, wire.UpstreamUnavailable, "Partner unavailable"
	}
	if detail != nil {
		d := *detail
		d.ID = wire.NewErrorID()
		d.OriginalID = requestID
		d.TranID = tranID
		d.ErrorMessage = wire.ShortMessage(d.ErrorMessage)
		if d.ProviderErrorCode == "" {
			d.ProviderErrorCode = strconv.Itoa(status)
		}
		return &wire.Failure{Status: code, Detail: &d}
	}
	f := wire.Fail(code, errorType, msg, requestID, tranID)
	f.Detail.ProviderErrorCode = strconv.Itoa(status)
	f.Detail.DetailMessage = wire.Detail(fmt.Sprintf("partner answered HTTP %d without an ErrorDetail", status))
	return f
}

// Routes is the rail's surface: the interface's notifyScan, admitted for
// partners by their scan credentials. Every Electrum partner shares the
// path; the wiring gives each request to the rail of the partner that
// authenticated.
func (r *Rail) Routes() []partners.Route {
	return []partners.Route{{Method: http.MethodPost, Path: ScanPath, Auth: partners.AuthPartner, Handler: http.HandlerFunc(r.scan)}}
}

// scan handles POST /qr/v1/scans: 202 once the engine linked the scan,
// else the ErrorDetail of its decline.
func (r *Rail) scan(w http.ResponseWriter, req *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxScan))
	if err != nil {
		f := wire.Fail(400, wire.FormatError, "Request body too large", "", "")
		f.Detail.DetailMessage = wire.Detail("the body must be at most 64 KiB")
		writeFailure(w, f)
		return
	}
	var s wire.ScanNotification
	if err := wire.Decode(raw, &s); err != nil {
		writeFailure(w, wire.FormatFailure(err, ""))
		return
	}
	if f := r.host.Scanned(req.Context(), partners.CallerOf(req.Context()), &s, raw); f != nil {
		writeFailure(w, f)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// writeFailure writes an ErrorDetail answer; the wiring's access log
// records the status (and the cause, from the request's context).
func writeFailure(w http.ResponseWriter, f *wire.Failure) {
	body, _ := json.Marshal(f.Detail)
	if f.Cause != nil {
		partners.SetCause(w, f.Cause)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	w.Write(body)
}

// Simulator builds the partner-side simulator: a wallet whose customer app
// scans codes and whose back end answers payments and advices by the
// amount's last two digits (see electrumsim).
func (r *Rail) Simulator(env partners.SimEnv) (partners.Simulator, error) {
	sim := electrumsim.New(electrumsim.Config{
		PartnerID: r.id, PartnerName: r.name,
		Username: r.user, Password: r.pass,
		SwitchURL:    env.SwitchURL,
		ScanUsername: env.PartnerUsername, ScanPassword: env.PartnerPassword,
		SwitchTLS: env.SwitchTLS,
	})
	return &simulator{sim: sim, listen: env.Listen}, nil
}

type simulator struct {
	sim    *electrumsim.Sim
	listen string
}

func (s *simulator) Handler() http.Handler { return s.sim.Handler() }
func (s *simulator) Close() error          { s.sim.Close(); return nil }
func (s *simulator) Describe() map[string]any {
	base := "https://" + s.listen
	return map[string]any{
		"url":    base,
		"scan":   base + "/sim/v1/scan",
		"ledger": base + "/sim/v1/ledger",
		"faults": base + "/sim/v1/faults",
		"reset":  base + "/sim/v1/reset",
	}
}

// Interface guards
var (
	_ partners.Rail      = (*Rail)(nil)
	_ partners.Surface   = (*Rail)(nil)
	_ partners.Simulated = (*Rail)(nil)
)
