package electrum

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/railtest"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// partner starts a real TLS server answering with handler, and a rail
// trusting it.
func partner(t *testing.T, handler http.HandlerFunc) (*httptest.Server, partners.Rail) {
	t.Helper()
	eph, err := tlsconfig.NewEphemeral("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = eph.Server
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r, err := partners.New(Name, partners.Config{PartnerID: "p", BaseURL: srv.URL, Username: "switch", Password: "pw", Transport: transport(eph.Client), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return srv, r
}

func transport(c *tls.Config) http.RoundTripper { return &http.Transport{TLSClientConfig: c} }

func payment() *partners.Payment {
	return &partners.Payment{
		Key: "shop/1", TranID: "t1", Token: "tok", Partner: &wire.Institution{ID: "p", Name: "P"},
		Request: &wire.PaymentRequest{
			Transaction: wire.Transaction{ID: wire.NewID(), Time: "2026-11-21T10:00:00Z", ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{}},
			Amounts:     &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: 100, Currency: "710"}},
			TranID:      "t1",
		},
	}
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

const approval = `{"id":"x","time":"2026-11-21T10:00:00Z","thirdPartyIdentifiers":[],"amounts":{"approvedAmount":{"amount":100,"currency":"710"}},"partner":{"id":"p","name":"P"},"tranId":"t1"}`

func TestRequestOnTheWire(t *testing.T) {
	var got *http.Request
	var body []byte
	_, r := partner(t, func(w http.ResponseWriter, req *http.Request) {
		got = req
		body, _ = io.ReadAll(req.Body)
		w.WriteHeader(201)
		io.WriteString(w, approval)
	})
	p := payment()
	req := p.Request
	a := r.Pay(context.Background(), p)
	if a.Outcome != outcome.Successful || a.Response == nil || a.Code != "HTTP 201" {
		t.Fatalf("Pay = %+v, want successful with a response", a)
	}
	user, pass, ok := got.BasicAuth()
	if got.URL.Path != PayPath || got.Method != "POST" || !ok || user != "switch" || pass != "pw" || got.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request = %s %s auth %v %s:%s type %q", got.Method, got.URL.Path, ok, user, pass, got.Header.Get("Content-Type"))
	}
	var sent wire.PaymentRequest
	if err := json.Unmarshal(body, &sent); err != nil || sent.ID != req.ID || sent.PartnerPaymentToken != "tok" || sent.Partner == nil || sent.Partner.ID != "p" {
		t.Fatalf("sent %s (%v), want the request with its partner and token", body, err)
	}
	if p.Request.PartnerPaymentToken != "" || p.Request.Partner != nil {
		t.Fatalf("Pay changed the engine's request: %+v", p.Request)
	}
	if string(a.Sent) != string(wire.Mask(body)) || a.Latency <= 0 {
		t.Fatalf("Answer.Sent/Latency = %q/%s, want the masked body", a.Sent, a.Latency)
	}
	for _, tt := range []struct {
		path string
		call func() *partners.Answer
	}{
		{ConfirmPath, func() *partners.Answer {
			return r.Confirm(context.Background(), &partners.Advice{Kind: partners.KindConfirmation, Confirmation: &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: "c", RequestID: req.ID}}})
		}},
		{ReversePath, func() *partners.Answer {
			return r.Reverse(context.Background(), &partners.Advice{Kind: partners.KindReversal, Reversal: &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: "r", RequestID: req.ID}, ReversalReason: wire.ReasonTimeout}})
		}},
	} {
		tt.call()
		if got.URL.Path != tt.path {
			t.Errorf("advice went to %s, want %s", got.URL.Path, tt.path)
		}
	}
}

func TestClassifiedAnswers(t *testing.T) {
	detail := `{"id":"e","errorType":"INSUFFICIENT_FUNDS","errorMessage":"No money"}`
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		op        outcome.Operation
		want      outcome.Outcome
		errorType string
		malformed bool
	}{
		{"approval", answer(201, approval), outcome.Pay, outcome.Successful, "", false},
		{"decline with detail", answer(400, detail), outcome.Pay, outcome.Failed, wire.InsufficientFunds, false},
		{"decline without body", answer(400, ""), outcome.Pay, outcome.Failed, "", false},
		{"decline with junk body", answer(400, "<html>"), outcome.Pay, outcome.Failed, "", false},
		{"500", answer(500, detail), outcome.Pay, outcome.Unknown, "", false},
		{"504", answer(504, ""), outcome.Pay, outcome.Unknown, "", false},
		{"503", answer(503, ""), outcome.Pay, outcome.Failed, "", false},
		{"404 payment", answer(404, ""), outcome.Pay, outcome.Failed, "", false},
		{"404 confirmation", answer(404, ""), outcome.Confirm, outcome.Failed, "", false},
		{"404 reversal", answer(404, ""), outcome.Reverse, outcome.Successful, "", false},
		{"202 advice with any body", answer(202, "not json"), outcome.Confirm, outcome.Successful, "", false},
		{"malformed approval", answer(201, "{"), outcome.Pay, outcome.Unknown, "", true},
		{"approval missing amounts", answer(201, `{"id":"x"}`), outcome.Pay, outcome.Unknown, "", true},
		{"oversized approval", answer(201, `{"id":"`+strings.Repeat("x", maxAnswer)+`"}`), outcome.Pay, outcome.Unknown, "", true},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, outcome.Pay, outcome.Failed, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := partner(t, tt.handler)
			var a *partners.Answer
			switch tt.op {
			case outcome.Pay:
				a = r.Pay(context.Background(), payment())
			case outcome.Confirm:
				a = r.Confirm(context.Background(), &partners.Advice{Confirmation: &wire.PaymentConfirmation{}})
			default:
				a = r.Reverse(context.Background(), &partners.Advice{Reversal: &wire.PaymentReversal{}})
			}
			if a.Outcome != tt.want {
				t.Fatalf("outcome = %s (code %s, err %v), want %s", a.Outcome, a.Code, a.Err, tt.want)
			}
			if a.Outcome == outcome.Failed && tt.op == outcome.Pay {
				if a.Decline == nil {
					t.Fatal("failed Pay without a Decline")
				}
				if tt.errorType != "" && a.Decline.Detail.ErrorType != tt.errorType {
					t.Errorf("Decline errorType = %s, want the partner's %s", a.Decline.Detail.ErrorType, tt.errorType)
				}
			} else if a.Decline != nil {
				t.Errorf("Decline = %+v on a %s answer, want none", a.Decline, a.Outcome)
			}
			if errors.Is(a.Err, outcome.ErrMalformedAnswer) != tt.malformed {
				t.Errorf("err = %v, want malformed %v", a.Err, tt.malformed)
			}
		})
	}
}

func TestTransportFailures(t *testing.T) {
	t.Run("connection refused never left", func(t *testing.T) {
		srv, r := partner(t, answer(201, approval))
		srv.Close()
		a := r.Pay(context.Background(), payment())
		if !errors.Is(a.Err, outcome.ErrNotSent) || a.Outcome != outcome.Failed {
			t.Fatalf("Pay to a closed port = %s, %v; want failed, ErrNotSent", a.Outcome, a.Err)
		}
		if c := r.Confirm(context.Background(), &partners.Advice{Confirmation: &wire.PaymentConfirmation{}}); c.Outcome != outcome.Unknown {
			t.Fatalf("Confirm to a closed port = %s, want unknown (store-and-forward repeats it)", c.Outcome)
		}
	})
	t.Run("TLS handshake failure never left", func(t *testing.T) {
		srv := httptest.NewTLSServer(answer(201, approval)) // a certificate the rail does not trust
		defer srv.Close()
		eph, _ := tlsconfig.NewEphemeral("127.0.0.1")
		r, _ := New(partners.Config{BaseURL: srv.URL, Transport: transport(eph.Client), Timeout: time.Second})
		a := r.Pay(context.Background(), payment())
		if !errors.Is(a.Err, outcome.ErrNotSent) || a.Outcome != outcome.Failed {
			t.Fatalf("Pay to an untrusted server = %s, %v; want failed, ErrNotSent", a.Outcome, a.Err)
		}
	})
	t.Run("connection dropped after the request", func(t *testing.T) {
		_, r := partner(t, func(w http.ResponseWriter, req *http.Request) {
			io.ReadAll(req.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		a := r.Pay(context.Background(), payment())
		if a.Outcome != outcome.Unknown || errors.Is(a.Err, outcome.ErrNotSent) {
			t.Fatalf("dropped after sending = %s, %v; want unknown", a.Outcome, a.Err)
		}
	})
	t.Run("deadline passes while the partner thinks", func(t *testing.T) {
		_, r := partner(t, func(w http.ResponseWriter, req *http.Request) {
			io.ReadAll(req.Body)
			time.Sleep(500 * time.Millisecond)
			w.WriteHeader(201)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		a := r.Pay(ctx, payment())
		if a.Outcome != outcome.Unknown || errors.Is(a.Err, outcome.ErrNotSent) {
			t.Fatalf("timeout = %s, %v; want unknown", a.Outcome, a.Err)
		}
	})
	t.Run("a silent listener is not a sent request", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close() // accept, never handshake
			}
		}()
		eph, _ := tlsconfig.NewEphemeral("127.0.0.1")
		r, _ := New(partners.Config{BaseURL: "https://" + ln.Addr().String(), Transport: transport(eph.Client), Timeout: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		a := r.Pay(ctx, payment())
		if !errors.Is(a.Err, outcome.ErrNotSent) {
			t.Fatalf("handshake never finished = %s, %v; want ErrNotSent", a.Outcome, a.Err)
		}
	})
}

func TestNewRefusesBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "https://", "::"} {
		if _, err := New(partners.Config{BaseURL: u}); err == nil {
			t.Errorf("New(base_url %q) succeeded, want an error", u)
		}
	}
}

// TestDecline checks the mapping of a partner's failed answer to what the
// POS is told: only the statuses the interface declares for pay that mean
// failed (400, 503), the partner's ErrorDetail kept where it sent one.
func TestDecline(t *testing.T) {
	partnerDetail := &wire.ErrorDetail{ID: "a-very-long-partner-error-id-1234567890", ErrorType: wire.InsufficientFunds, ErrorMessage: "No money in the customer's wallet at all, sorry", DetailMessage: wire.Detail("x")}
	for _, tt := range []struct {
		status    int
		detail    *wire.ErrorDetail
		err       error
		want      int
		errorType string
	}{
		{400, partnerDetail, nil, 400, wire.InsufficientFunds},
		{400, nil, nil, 400, wire.DeclinedByPartner},
		{401, partnerDetail, nil, 503, wire.UpstreamUnavailable},
		{403, nil, nil, 503, wire.UpstreamUnavailable},
		{404, nil, nil, 400, wire.UnableToLocateRecord},
		{404, partnerDetail, nil, 400, wire.InsufficientFunds},
		{409, nil, nil, 400, wire.DeclinedByPartner},
		{501, nil, nil, 400, wire.FunctionNotSupported},
		{502, nil, nil, 503, wire.UpstreamUnavailable},
		{503, partnerDetail, nil, 503, wire.InsufficientFunds},
		{505, nil, nil, 503, wire.UpstreamUnavailable},
		{302, nil, nil, 503, wire.UpstreamUnavailable},
		{0, nil, outcome.ErrNotSent, 503, wire.UpstreamUnavailable},
	} {
		f := Decline(tt.status, tt.detail, tt.err, "req-1", "tran-1")
		if f.Status != tt.want || f.Detail.ErrorType != tt.errorType {
			t.Errorf("Decline(%d, detail %v, %v) = %d %s, want %d %s", tt.status, tt.detail != nil, tt.err, f.Status, f.Detail.ErrorType, tt.want, tt.errorType)
		}
		if err := f.Detail.Validate(); err != nil || len(f.Detail.ID) > 20 || len([]rune(f.Detail.ErrorMessage)) > wire.MaxErrorMessage ||
			f.Detail.OriginalID != "req-1" || f.Detail.TranID != "tran-1" {
			t.Errorf("Decline(%d) detail %+v: %v; want a valid ErrorDetail (id ≤ 20, message ≤ 40) naming the request", tt.status, f.Detail, err)
		}
	}
}

// railPartner is the partner side of the Electrum interface for the rail
// conformance suite: a real TLS server answering as it is told.
type railPartner struct {
	srv      *httptest.Server
	mu       sync.Mutex
	behave   map[string]railtest.Behaviour
	received map[string]int
}

func opOf(path string) string {
	switch path {
	case PayPath:
		return railtest.OpPay
	case ConfirmPath:
		return railtest.OpConfirm
	default:
		return railtest.OpReverse
	}
}

func (p *railPartner) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	op := opOf(r.URL.Path)
	p.mu.Lock()
	p.received[op]++
	b := p.behave[op]
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch b {
	case railtest.Decline:
		w.WriteHeader(400)
		io.WriteString(w, `{"id":"e1","errorType":"DO_NOT_HONOR","errorMessage":"Refused by the wallet"}`)
	case railtest.Unknown:
		w.WriteHeader(504)
	case railtest.Hang:
		<-r.Context().Done()
	case railtest.Malformed:
		w.WriteHeader(201)
		io.WriteString(w, `{"id":`)
	default:
		if op != railtest.OpPay {
			w.WriteHeader(202)
			w.Write(body)
			return
		}
		var req wire.PaymentRequest
		json.Unmarshal(body, &req)
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(&wire.PaymentResponse{Transaction: req.Transaction, Partner: req.Partner, Amounts: req.Amounts, TranID: req.TranID})
	}
}

func (p *railPartner) Behave(op string, b railtest.Behaviour) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.behave[op] = b
}

func (p *railPartner) Received(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.received[op]
}

func (p *railPartner) Stop() { p.srv.Close() }

func TestRailConformance(t *testing.T) {
	railtest.RunPush(t, railtest.Push{
		New: func(t *testing.T) (partners.Rail, railtest.Partner) {
			p := &railPartner{behave: map[string]railtest.Behaviour{}, received: map[string]int{}}
			srv, r := partner(t, p.serve)
			p.srv = srv
			return r, p
		},
		Payment: payment,
		Confirmation: func() *partners.Advice {
			id := wire.NewID()
			return &partners.Advice{Kind: partners.KindConfirmation, ID: id, Confirmation: &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: id, RequestID: wire.NewID(), Time: "2026-11-21T10:00:00Z"}}}
		},
		Reversal: func() *partners.Advice {
			id := wire.NewID()
			return &partners.Advice{Kind: partners.KindReversal, ID: id, Reversal: &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: id, RequestID: wire.NewID(), Time: "2026-11-21T10:00:00Z"}, ReversalReason: wire.ReasonCancelled}}
		},
	})
}
