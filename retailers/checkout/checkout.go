// Package checkout is the web shops' surface of the switch: a drop-in for
// 0xbtcpay's integration (seed 003) on its own listener — POST / JSON-RPC
// 2.0 start_payment behind an IP allow-list, the public GET
// /{id}/status.json, a postback when the payment is complete — and what
// users of checkout gateways miss in it: postbacks signed with HMAC-SHA256
// and repeated until the shop answers 2xx (store-and-forward, visible and
// replayable in the console), an expiry and the states a checkout goes
// through, credentials per shop besides the allow-list, and the EMVCo QR
// code of the checkout, so that any rail of the switch can pay it.
//
// Web shops are retailers without a till. A checkout is the engine's: a QR
// code offered on the pull rails and a payment that waits until the
// checkout expires (qrswitch.Engine.CreateCheckout). A rail's report of
// the money approves it, the switch confirms it with the rail itself, and
// queues the shop's postback to the shop's destination, which this package
// delivers (Postbacks).
package checkout

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Shop is one retailer's checkout.
type Shop struct {
	// Retailer is the shop as the engine knows it.
	Retailer qrswitch.Retailer
	// Username is the retailer's Basic-auth user, for credentials sent to
	// start_payment.
	Username string
	// Allow lists the addresses the shop's server calls from.
	Allow []netip.Prefix
	// RequireCredentials makes start_payment need the retailer's Basic-auth
	// credentials besides an allowed address.
	RequireCredentials bool
	// Currency is the unit of the shop's amounts: an ISO 4217 numeric code
	// or a rail's currency code, with Exponent decimals.
	Currency string
	Exponent int
	// MaxAmount bounds an amount, in minor units.
	MaxAmount *big.Int
	// Expiry is a checkout's life.
	Expiry time.Duration
	// PostbackSecret signs postbacks.
	PostbackSecret []byte
	// Merchant names the shop on its QR codes.
	Merchant wire.Merchant
}

// Options configure the surface.
type Options struct {
	Shops []*Shop
	// Auth verifies credentials sent to start_payment (the switch's
	// authenticator, with its throttling).
	Auth *httpapi.Authenticator
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client; the allow-list is checked against the client they name.
	TrustedProxies []netip.Prefix
	// Client delivers postbacks. Default: a client with a 30 s timeout that
	// follows no redirect.
	Client *http.Client
	Logger zerolog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Surface is the checkout surface.
type Surface struct {
	opts   Options
	engine atomic.Pointer[qrswitch.Engine]
	byID   map[string]*Shop
}

// New builds the surface. Set its engine (SetEngine) before it serves.
func New(o Options) *Surface {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	s := &Surface{opts: o, byID: map[string]*Shop{}}
	for _, sh := range o.Shops {
		s.byID[sh.Retailer.ID] = sh
	}
	return s
}

// SetEngine gives the surface its engine (built after the surface, since
// the engine needs the surface's postback destinations).
func (s *Surface) SetEngine(e *qrswitch.Engine) { s.engine.Store(e) }

// Destinations are the shops' postback queues, for the engine.
func (s *Surface) Destinations() []qrswitch.Destination {
	var out []qrswitch.Destination
	for _, sh := range s.opts.Shops {
		out = append(out, qrswitch.Destination{
			ID: qrswitch.RetailerDestination(sh.Retailer.ID), Name: sh.Retailer.ID + " postbacks",
			Timeout: 30 * time.Second, Deliverer: &postbacks{s: s, shop: sh},
		})
	}
	return out
}

// Handler serves the surface.
func (s *Surface) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", s.startPayment)
	mux.HandleFunc("GET /{id}/status.json", s.status)
	mux.HandleFunc("OPTIONS /", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As 0xbtcpay: a browser on any origin may poll a status.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
		mux.ServeHTTP(w, r)
	})
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, "not found")
}

// --- start_payment ----------------------------------------------------------

// The JSON-RPC 2.0 error codes and messages 0xbtcpay answers with.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	rpcInternal       = -32603
)

var rpcMessages = map[int]string{
	rpcParseError:     "Parse error",
	rpcInvalidRequest: "Invalid request",
	rpcMethodNotFound: "Method not found",
	rpcInvalidParams:  "Invalid params",
	rpcInternal:       "Internal error",
}

// maxRequest bounds a start_payment body.
const maxRequest = 64 << 10

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// rpcFail answers a JSON-RPC error as 0xbtcpay does: HTTP 200, id null.
func rpcFail(w http.ResponseWriter, code int, extra string) {
	msg := rpcMessages[code]
	if extra != "" {
		msg += ": " + extra
	}
	writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": nil, "error": rpcError{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// clientIP is the address the request comes from: the connection's, or,
// from a trusted proxy, the nearest address in X-Forwarded-For that is not
// a trusted proxy itself.
func (s *Surface) clientIP(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	if !s.trusted(addr) {
		return addr, true
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		if a = a.Unmap(); !s.trusted(a) {
			return a, true
		}
	}
	return addr, true
}

func (s *Surface) trusted(a netip.Addr) bool {
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// shopOf decides which shop a start_payment comes from, before its body is
// read: the shops whose allow-list holds the client's address, narrowed by
// credentials when several do or the shop requires them. It answers the
// refusal itself (403, or 401 when credentials would decide) and returns
// nil then.
func (s *Surface) shopOf(w http.ResponseWriter, r *http.Request) *Shop {
	ip, ok := s.clientIP(r)
	var allowed []*Shop
	if ok {
		for _, sh := range s.opts.Shops {
			for _, p := range sh.Allow {
				if p.Contains(ip) {
					allowed = append(allowed, sh)
					break
				}
			}
		}
	}
	if len(allowed) == 0 {
		w.WriteHeader(http.StatusForbidden)
		return nil
	}
	user, pass, sent := r.BasicAuth()
	if !sent {
		if len(allowed) == 1 && !allowed[0].RequireCredentials {
			return allowed[0]
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="qrswitch checkout", charset="UTF-8"`)
		w.WriteHeader(http.StatusUnauthorized)
		return nil
	}
	p, err := s.opts.Auth.Verify(user, pass, ip.String())
	var throttled *httpapi.ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Seconds()+0.999)))
		w.WriteHeader(http.StatusTooManyRequests)
		return nil
	case err != nil || p.Kind != httpapi.KindRetailer:
		w.Header().Set("WWW-Authenticate", `Basic realm="qrswitch checkout", charset="UTF-8"`)
		w.WriteHeader(http.StatusUnauthorized)
		return nil
	}
	for _, sh := range allowed {
		if sh.Retailer.ID == p.ID {
			return sh
		}
	}
	w.WriteHeader(http.StatusForbidden) // right credentials, from another shop's address
	return nil
}

// present reports whether a JSON-RPC member is there in 0xbtcpay's sense
// (Ruby's truthiness: anything but absent, null and false).
func present(m map[string]json.RawMessage, key string) bool {
	v, ok := m[key]
	if !ok {
		return false
	}
	t := string(bytes.TrimSpace(v))
	return t != "null" && t != "false"
}

// amountPattern is 0xbtcpay's: up to 8 digits, and up to 8 decimals.
var amountPattern = regexp.MustCompile(`^[0-9]{1,8}(?:\.[0-9]{1,8})?$`)

func (s *Surface) startPayment(w http.ResponseWriter, r *http.Request) {
	shop := s.shopOf(w, r)
	if shop == nil {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		rpcFail(w, rpcParseError, "")
		return
	}
	// Anything but a JSON object is a parse error, as 0xbtcpay answers
	// ("[]" and "5" included: it fails reading members of them).
	var rpc map[string]json.RawMessage
	if err := json.Unmarshal(body, &rpc); err != nil || rpc == nil {
		rpcFail(w, rpcParseError, "")
		return
	}
	if !present(rpc, "id") || !present(rpc, "method") || !present(rpc, "params") || string(rpc["jsonrpc"]) != `"2.0"` {
		rpcFail(w, rpcInvalidRequest, "")
		return
	}
	var method string
	if json.Unmarshal(rpc["method"], &method) != nil || method != "start_payment" {
		rpcFail(w, rpcMethodNotFound, "")
		return
	}
	var params map[string]json.RawMessage
	if json.Unmarshal(rpc["params"], &params) != nil {
		rpcFail(w, rpcInvalidParams, "params must be an object")
		return
	}
	if !present(params, "amount") {
		rpcFail(w, rpcInvalidParams, "missing amount")
		return
	}
	var text string
	minor, ok := (*big.Int)(nil), false
	if json.Unmarshal(params["amount"], &text) == nil && amountPattern.MatchString(text) {
		minor, ok = parseAmount(text, shop.Exponent)
	}
	if !ok || minor.Sign() <= 0 || minor.Cmp(shop.MaxAmount) > 0 || !minor.IsInt64() {
		rpcFail(w, rpcInvalidParams, "invalid amount")
		return
	}
	var postback string
	if present(params, "postback_url") {
		if json.Unmarshal(params["postback_url"], &postback) != nil || !validPostbackURL(postback) {
			rpcFail(w, rpcInvalidParams, "invalid postback URL")
			return
		}
	}
	data := []byte("null")
	if d, ok := params["data"]; ok {
		var buf bytes.Buffer
		if json.Compact(&buf, d) == nil {
			data = buf.Bytes()
		}
	}
	e := s.engine.Load()
	id := newID()
	now := s.opts.Now()
	p, code, f := e.CreateCheckout(r.Context(), shop.Retailer, &qrswitch.CheckoutRequest{
		ID: id, Amount: &wire.LedgerAmount{Amount: minor.Int64(), Currency: shop.Currency},
		AmountText: formatAmount(minor, shop.Exponent), Data: data, PostbackURL: postback,
		ExpiresAt: now.Add(shop.Expiry), Merchant: shop.Merchant,
	})
	if f != nil {
		if f.Cause != nil {
			s.opts.Logger.Error().Err(f.Cause).Str("shop", shop.Retailer.ID).Msg("start_payment failed")
		}
		// The switch could not take it (its store, a shutdown): not the
		// shop's mistake, so not an "invalid params".
		writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": rpc["id"],
			"error": rpcError{Code: rpcInternal, Message: rpcMessages[rpcInternal] + ": " + f.Detail.ErrorMessage}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": rpc["id"], "result": map[string]any{
		"id": id, "amount": p.Checkout.Amount, "address": addressOf(code),
	}})
}

// newID is a checkout id as 0xbtcpay makes them: 16 hex digits.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var idPattern = regexp.MustCompile(`^[0-9a-fA-F]{16}$`)

// validPostbackURL accepts an absolute http(s) URL with a host.
func validPostbackURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && !strings.ContainsAny(s, " \t\n")
}

// parseAmount turns a decimal string of at most exp decimals into minor
// units.
func parseAmount(s string, exp int) (*big.Int, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > exp {
		// More decimals than the currency has: only trailing zeros may go.
		if strings.Trim(frac[exp:], "0") != "" {
			return nil, false
		}
		frac = frac[:exp]
	}
	n, ok := new(big.Int).SetString(whole+frac+strings.Repeat("0", exp-len(frac)), 10)
	return n, ok
}

// formatAmount writes minor units as 0xbtcpay writes amounts (Ruby's
// BigDecimal#to_s("F")): no trailing zeros, but at least one decimal
// ("5.0", "222.333").
func formatAmount(minor *big.Int, exp int) string {
	s := minor.String()
	if len(s) <= exp {
		s = strings.Repeat("0", exp-len(s)+1) + s
	}
	whole, frac := s[:len(s)-exp], strings.TrimRight(s[len(s)-exp:], "0")
	if frac == "" {
		frac = "0"
	}
	return whole + "." + frac
}

// addressOf is the address a customer pays a checkout to: the first offer
// on its code that names one (the token rail's fresh address).
func addressOf(code *qrswitch.QRCode) any {
	for _, o := range code.Offers {
		if a := o.Display["address"]; a != "" {
			return a
		}
	}
	return nil
}

// --- status.json ------------------------------------------------------------

// Status is GET /{id}/status.json: 0xbtcpay's fields first (its web shops
// read those), then what it lacks.
type Status struct {
	Address any     `json:"address"`
	Amount  string  `json:"amount"`
	SeenAt  *int64  `json:"seen_at"`
	PaidAt  *int64  `json:"paid_at"`
	TxHash  *string `json:"tx_hash"`
	// State is new, seen, partially_paid, paid, overpaid, expired or
	// paid_late.
	State string `json:"status"`
	// Received is what arrived so far, in the checkout's unit.
	Received  string `json:"received"`
	ExpiresAt int64  `json:"expires_at"`
	// QRCode is the checkout's EMVCo payload: any rail of the switch can
	// pay it, an Electrum partner's wallet included.
	QRCode string `json:"qr_code"`
	// Offers are each rail's offer on the code (an address, a URI), by
	// partner.
	Offers map[string]map[string]string `json:"offers,omitempty"`
}

func (s *Surface) status(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		notFound(w)
		return
	}
	p, code, err := s.engine.Load().FindCheckout(r.Context(), strings.ToLower(id))
	if errors.Is(err, qrswitch.ErrNotFound) {
		notFound(w)
		return
	}
	if err != nil {
		s.opts.Logger.Error().Err(err).Str("checkout", id).Msg("reading a checkout")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	shop := s.byID[p.RetailerID]
	if shop == nil {
		notFound(w)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, statusOf(p, code, shop.Exponent))
}

// statusOf is a checkout's status.
func statusOf(p *qrswitch.Payment, code *qrswitch.QRCode, exp int) *Status {
	st := &Status{Address: addressOf(code), Amount: p.Checkout.Amount, ExpiresAt: p.Checkout.ExpiresAt.Unix(), QRCode: code.Payload}
	for _, o := range code.Offers {
		if len(o.Display) > 0 {
			if st.Offers == nil {
				st.Offers = map[string]map[string]string{}
			}
			st.Offers[o.PartnerID] = o.Display
		}
	}
	want := p.Request.Amounts.RequestAmount.Amount
	var received int64
	if p.Seen != nil {
		t := p.Seen.First.Unix()
		st.SeenAt = &t
		if p.Seen.Received != nil {
			received = p.Seen.Received.Amount
		}
	}
	paid := !p.Checkout.PaidAt.IsZero()
	if paid {
		t := p.Checkout.PaidAt.Unix()
		st.PaidAt = &t
		ref := p.Checkout.Reference
		st.TxHash = &ref
		received = max(received, want)
		if st.SeenAt == nil {
			st.SeenAt = &t
		}
	}
	if m := p.Paid; m != nil && m.Amount != nil {
		received = max(received, m.Amount.Amount)
	}
	st.Received = formatAmount(big.NewInt(received), exp)
	switch {
	case paid && received > want:
		st.State = "overpaid"
	case paid:
		st.State = "paid"
	case p.State == outcome.AwaitingScan && received >= want:
		st.State = "seen" // all of it on its way, not yet final
	case p.State == outcome.AwaitingScan && received > 0:
		st.State = "partially_paid"
	case p.State == outcome.AwaitingScan && p.Seen != nil:
		st.State = "seen"
	case p.State == outcome.AwaitingScan:
		st.State = "new"
	case received >= want:
		st.State = "paid_late"
	default:
		st.State = "expired"
	}
	return st
}

// --- postbacks --------------------------------------------------------------

// Headers of a postback.
const (
	// DeliveryHeader carries the delivery's id: the same on every attempt
	// of one postback, so a shop recognises a repeat.
	DeliveryHeader = "X-Qrswitch-Delivery"
	// SignatureHeader carries "t=UNIX,v1=HEX": HEX is the lower-case hex
	// HMAC-SHA256, under the shop's postback secret, of "UNIX." followed by
	// the body's bytes. A shop recomputes it, compares in constant time,
	// and refuses a t far from its clock (a replay).
	SignatureHeader = "X-Qrswitch-Signature"
)

// Sign is the signature header's value of body at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body, accepting a t within
// tolerance of now.
func Verify(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("malformed signature header")
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature time %s is %s from now", time.Unix(unix, 0).UTC(), d.Round(time.Second))
	}
	want := Sign(secret, body, time.Unix(unix, 0))
	if !hmac.Equal([]byte(want), []byte("t="+ts+",v1="+sig)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// postbacks delivers one shop's postbacks.
type postbacks struct {
	s    *Surface
	shop *Shop
}

// postback is the body 0xbtcpay posts: the checkout's id, the shop's data
// as the JSON text it sent (a string), and the transaction hash.
type postback struct {
	ID     string  `json:"id"`
	Data   string  `json:"data"`
	TxHash *string `json:"tx_hash"`
}

// Deliver posts a postback; the shop's 2xx ends it, anything else repeats
// it (store-and-forward, until give_up_after: then a dead letter for
// support to replay).
func (d *postbacks) Deliver(ctx context.Context, a *partners.Advice) *partners.Answer {
	ans := &partners.Answer{Outcome: outcome.Unknown}
	var target struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(a.Payload, &target) != nil || target.URL == "" {
		ans.Outcome = outcome.Failed
		ans.Err = errors.New("postback without a URL")
		return ans
	}
	_, id, _ := strings.Cut(a.PaymentKey, "/")
	p, code, err := d.s.engine.Load().Checkout(ctx, d.shop.Retailer.ID, id)
	if err != nil {
		ans.Err = fmt.Errorf("reading checkout %s: %w: %w", id, err, outcome.ErrNotSent)
		return ans
	}
	body, _ := json.Marshal(postback{ID: id, Data: string(p.Checkout.Data), TxHash: statusOf(p, code, d.shop.Exponent).TxHash})
	ans.Sent = body
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		ans.Err = fmt.Errorf("%w: %w", err, outcome.ErrNotSent)
		return ans
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "qrswitch-postback/1")
	req.Header.Set(DeliveryHeader, a.ID)
	req.Header.Set(SignatureHeader, Sign(d.shop.PostbackSecret, body, d.s.opts.Now()))
	start := time.Now()
	resp, err := d.s.opts.Client.Do(req)
	ans.Latency = time.Since(start)
	if err != nil {
		ans.Err = err
		return ans
	}
	defer resp.Body.Close()
	ans.Received, _ = io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	ans.Code = "HTTP " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		ans.Outcome = outcome.Successful
	}
	return ans
}

// Interface guards
var _ partners.Deliverer = (*postbacks)(nil)
