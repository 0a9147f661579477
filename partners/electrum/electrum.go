// Package electrum is the native rail: it calls a partner that implements
// the partner side of the Electrum QR interface — POST
// {base_url}/qr/v1/payments, /payments/confirmations and
// /payments/reversals, JSON over TLS with HTTP Basic auth — and classifies
// each answer with outcome.Classify.
//
// It tells an error that happened before the request could have reached the
// partner (refused dial, failed TLS handshake: outcome.ErrNotSent) from one
// after (timeout, reset): only the former proves nothing happened upstream.
package electrum

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// Name is the rail's registered name.
const Name = "electrum"

func init() { partners.Register(Name, New) }

// Paths of the partner side of the interface, relative to base_url.
const (
	PayPath     = "/qr/v1/payments"
	ConfirmPath = "/qr/v1/payments/confirmations"
	ReversePath = "/qr/v1/payments/reversals"
)

// maxAnswer bounds an answer body; the interface's messages are a few KiB.
const maxAnswer = 1 << 20

// Rail calls one Electrum-speaking partner.
type Rail struct {
	base   string
	auth   string
	client *http.Client
}

// New builds the rail for one partner.
func New(c partners.Config) (partners.Rail, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("base_url %q is not an http(s) URL", c.BaseURL)
	}
	tlsConf := c.TLS
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	r := &Rail{
		base: strings.TrimRight(c.BaseURL, "/"),
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

// Pay sends a payment request.
func (r *Rail) Pay(ctx context.Context, req *wire.PaymentRequest) *partners.Answer {
	a := r.do(ctx, outcome.Pay, PayPath, req)
	if a.Err == nil && a.Status >= 200 && a.Status < 300 {
		var resp wire.PaymentResponse
		if err := wire.Decode(a.Body, &resp); err != nil {
			a.Err = fmt.Errorf("%w: %v", outcome.ErrMalformedAnswer, err)
		} else if err := resp.Validate(); err != nil {
			a.Err = fmt.Errorf("%w: %v", outcome.ErrMalformedAnswer, err)
		} else {
			a.Response = &resp
		}
	}
	a.Outcome = outcome.Classify(outcome.Pay, a.Status, a.Err)
	return a
}

// Confirm sends a confirmation advice.
func (r *Rail) Confirm(ctx context.Context, adv *wire.PaymentConfirmation) *partners.Answer {
	a := r.do(ctx, outcome.Confirm, ConfirmPath, adv)
	a.Outcome = outcome.Classify(outcome.Confirm, a.Status, a.Err)
	return a
}

// Reverse sends a reversal advice.
func (r *Rail) Reverse(ctx context.Context, adv *wire.PaymentReversal) *partners.Answer {
	a := r.do(ctx, outcome.Reverse, ReversePath, adv)
	a.Outcome = outcome.Classify(outcome.Reverse, a.Status, a.Err)
	return a
}

// do sends msg and reads the answer. The caller classifies it.
func (r *Rail) do(ctx context.Context, op outcome.Operation, path string, msg any) *partners.Answer {
	a := &partners.Answer{}
	body, err := json.Marshal(msg)
	if err != nil {
		a.Err = fmt.Errorf("encoding %s: %w: %w", op, err, outcome.ErrNotSent)
		return a
	}
	a.Sent = body
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		a.Err = fmt.Errorf("building %s request: %w: %w", op, err, outcome.ErrNotSent)
		return a
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
		return a
	}
	defer resp.Body.Close()
	a.Status = resp.StatusCode
	a.Body, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	a.Latency = time.Since(start)
	if err == nil && len(a.Body) > maxAnswer {
		err = fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	if err != nil {
		// The status line is the answer, except for an approval, whose
		// body says what was approved.
		if op == outcome.Pay && a.Status >= 200 && a.Status < 300 {
			a.Err = fmt.Errorf("%w: reading the answer: %v", outcome.ErrMalformedAnswer, err)
		}
		return a
	}
	if a.Status >= 300 && len(a.Body) > 0 {
		var detail wire.ErrorDetail
		if wire.Decode(a.Body, &detail) == nil && detail.Validate() == nil {
			a.Error = &detail
		}
	}
	return a
}

// Interface guards.
var _ partners.Rail = (*Rail)(nil)
