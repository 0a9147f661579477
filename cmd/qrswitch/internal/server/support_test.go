package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// shop is a retailer's credentials in the harness configuration.
type shop struct{ user, pass, institution string }

var (
	shop1 = shop{ShopUser, ShopPass, "1234"}
	shop2 = shop{Shop2User, Shop2Pass, "5678"}
)

// payAs runs a payment of s through QR code, request and scan to the
// retailer's answer, and returns the request and the answer's status.
// tweak, when set, changes the request before it is sent.
func (h *Harness) payAs(t testing.TB, s shop, amount int64, tweak func(*wire.PaymentRequest)) (*wire.PaymentRequest, int) {
	t.Helper()
	r := h.Post(t, "/qr/v1/qrCodes", s.user, s.pass, qrRequest(s.institution))
	if r.status != 201 {
		t.Fatalf("createQrCode as %s = %d %s", s.user, r.status, r.body)
	}
	var code wire.CreateQrCodeResponse
	if err := json.Unmarshal(r.body, &code); err != nil {
		t.Fatal(err)
	}
	req := payRequest(s.institution, code.TranID, amount)
	if tweak != nil {
		tweak(req)
	}
	answer := make(chan Response, 1)
	go func() { answer <- h.Post(t, "/qr/v1/payments", s.user, s.pass, req) }()
	h.waitState(t, qrswitch.PaymentKey(s.user, req.ID), "AWAITING_SCAN")
	if res := h.scan(t, code.QrCode); res.Status != 202 {
		t.Fatalf("scan = %d %s", res.Status, res.Body)
	}
	return req, (<-answer).status
}

// supportGet reads a support API path as user and decodes a 200 answer
// into out.
func (h *Harness) supportGet(t testing.TB, user, pass, path string, out any) {
	t.Helper()
	r := h.Do(t, http.MethodGet, path, user, pass, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, r.body)
	}
}

type searchAnswer struct {
	Results []qrswitch.PaymentSummary `json:"results"`
	Next    string                    `json:"next"`
}

func (h *Harness) search(t testing.TB, params url.Values) searchAnswer {
	t.Helper()
	var out searchAnswer
	h.supportGet(t, ViewUser, ViewPass, "/support/v1/transactions?"+params.Encode(), &out)
	return out
}

// TestSupportSearch runs every search filter of the support API over
// payments that differ in each, and checks the keys each one finds, newest
// first; then pages through them with the cursor.
func TestSupportSearch(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	start := time.Now().UTC()
	// Created one after the other, so newest first is the reverse.
	approved, st := h.payAs(t, shop1, 1001, nil)
	if st != 201 {
		t.Fatalf("approved payment = %d", st)
	}
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(approved.ID)); r.status != 202 {
		t.Fatalf("confirmation = %d %s", r.status, r.body)
	}
	conf := h.waitState(t, qrswitch.PaymentKey("shop-1", approved.ID), "CONFIRMED")
	adviceID := strings.TrimPrefix(conf.AdviceKey, "shop-1/")
	declined, st := h.payAs(t, shop1, 1051, func(r *wire.PaymentRequest) { r.Stan = "000051" })
	if st != 400 {
		t.Fatalf("declined payment = %d", st)
	}
	mid := time.Now().UTC()
	unknown, st := h.payAs(t, shop1, 1064, nil)
	if st != 504 {
		t.Fatalf("payment answered 504 by the partner = %d", st)
	}
	other, st := h.payAs(t, shop2, 2002, func(r *wire.PaymentRequest) {
		r.Originator.TerminalID = "T0000002"
		r.Originator.Merchant.MerchantID = "M00000000000002"
	})
	if st != 201 {
		t.Fatalf("shop-2's payment = %d", st)
	}
	keys := map[string]string{
		"approved": "shop-1/" + approved.ID, "declined": "shop-1/" + declined.ID,
		"unknown": "shop-1/" + unknown.ID, "other": "shop-2/" + other.ID,
	}
	all := []string{"other", "unknown", "declined", "approved"}
	for _, tc := range []struct {
		name   string
		params url.Values
		want   []string
	}{
		{"none", url.Values{}, all},
		{"requestId", url.Values{"requestId": {declined.ID}}, []string{"declined"}},
		{"tranId", url.Values{"tranId": {unknown.TranID}}, []string{"unknown"}},
		{"adviceId", url.Values{"adviceId": {adviceID}}, []string{"approved"}},
		{"adviceId and another retailer", url.Values{"adviceId": {adviceID}, "retailer": {"shop-2"}}, nil},
		{"rrn", url.Values{"rrn": {other.Rrn}}, []string{"other"}},
		{"stan", url.Values{"stan": {"000051"}}, []string{"declined"}},
		{"retailer", url.Values{"retailer": {"shop-2"}}, []string{"other"}},
		{"merchant", url.Values{"merchant": {"M00000000000001"}}, []string{"unknown", "declined", "approved"}},
		{"terminal", url.Values{"terminal": {"T0000002"}}, []string{"other"}},
		{"partner", url.Values{"partner": {"wallet-a"}}, all},
		{"other partner", url.Values{"partner": {"wallet-b"}}, nil},
		{"state", url.Values{"state": {"CONFIRMED"}}, []string{"approved"}},
		{"outcome successful", url.Values{"outcome": {"successful"}}, []string{"other", "approved"}},
		{"outcome failed", url.Values{"outcome": {"failed"}}, []string{"declined"}},
		{"outcome unknown", url.Values{"outcome": {"unknown"}}, []string{"unknown"}},
		{"minAmount", url.Values{"minAmount": {"1051"}}, []string{"other", "unknown", "declined"}},
		{"maxAmount", url.Values{"maxAmount": {"1051"}}, []string{"declined", "approved"}},
		{"amount range", url.Values{"minAmount": {"1050"}, "maxAmount": {"1100"}}, []string{"unknown", "declined"}},
		{"from", url.Values{"from": {mid.Format(time.RFC3339Nano)}}, []string{"other", "unknown"}},
		{"to", url.Values{"to": {mid.Format(time.RFC3339Nano)}}, []string{"declined", "approved"}},
		{"from and to", url.Values{"from": {start.Format(time.RFC3339Nano)}, "to": {mid.Format(time.RFC3339Nano)}}, []string{"declined", "approved"}},
		{"combined", url.Values{"retailer": {"shop-1"}, "outcome": {"successful"}, "minAmount": {"1000"}}, []string{"approved"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h.search(t, tc.params)
			var gotKeys, want []string
			for _, r := range got.Results {
				gotKeys = append(gotKeys, r.Key)
			}
			for _, w := range tc.want {
				want = append(want, keys[w])
			}
			if !slices.Equal(gotKeys, want) {
				t.Errorf("search %v = %v, want %v", tc.params, gotKeys, want)
			}
		})
	}
	t.Run("summary", func(t *testing.T) {
		got := h.search(t, url.Values{"requestId": {other.ID}})
		if len(got.Results) != 1 {
			t.Fatalf("got %d results", len(got.Results))
		}
		s := got.Results[0]
		if s.State != "APPROVED" || s.Outcome != "successful" || s.PartnerID != "wallet-a" || s.Amount != 2002 ||
			s.Currency != "710" || s.TerminalID != "T0000002" || s.MerchantID != "M00000000000002" || s.Rrn != other.Rrn || s.Status != 201 {
			t.Errorf("summary = %+v", s)
		}
	})
	t.Run("paging", func(t *testing.T) {
		var pages []string
		params := url.Values{"limit": {"1"}}
		for range 10 {
			got := h.search(t, params)
			for _, r := range got.Results {
				pages = append(pages, r.Key)
			}
			if got.Next == "" {
				break
			}
			params.Set("cursor", got.Next)
		}
		var want []string
		for _, w := range all {
			want = append(want, keys[w])
		}
		if !slices.Equal(pages, want) {
			t.Errorf("pages of 1 = %v, want %v", pages, want)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"state=PAID", "outcome=maybe", "minAmount=-1", "maxAmount=x", "from=yesterday",
			"to=2026-13-01", "limit=0", "limit=501", "cursor=%21%21"} {
			r := h.Do(t, http.MethodGet, "/support/v1/transactions?"+q, ViewUser, ViewPass, nil)
			if r.status != 400 {
				t.Errorf("search ?%s = %d, want 400", q, r.status)
				continue
			}
			if d := r.detail(t); d.ErrorType != wire.FormatError || !strings.HasPrefix(d.ErrorMessage, "Invalid field") {
				t.Errorf("search ?%s: %s %q, want FORMAT_ERROR naming the field", q, d.ErrorType, d.ErrorMessage)
			}
		}
	})
}

// TestSupportTransactionDetail: a payment's detail has every hop of its
// trace with timing, status, outcome and masked bodies, and every attempt
// of its advice.
func TestSupportTransactionDetail(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	req, st := h.payAs(t, shop1, 1050, nil) // advices: three 500s, then accepted
	if st != 201 {
		t.Fatalf("payment = %d", st)
	}
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(req.ID)); r.status != 202 {
		t.Fatalf("confirmation = %d", r.status)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	s := h.story(t, req.ID)
	hops := map[string]bool{}
	for _, e := range s.Trace {
		hops[string(e.Direction)+" "+strings.SplitN(e.Peer, ":", 2)[0]+" "+e.Operation+" "+e.Kind] = true
		if strings.Contains(e.Body, "tok-secret-123456") {
			t.Errorf("a trace body carries the payment token: %s", e.Body)
		}
	}
	for _, want := range []string{
		"out retailer createQrCode answer", "in retailer pay request", "in partner notifyScan request",
		"out partner pay request", "in partner pay answer", "out retailer pay answer",
		"in retailer confirmPayment request", "out partner confirmPayment request", "in partner confirmPayment answer",
	} {
		if !hops[want] {
			t.Errorf("trace lacks the hop %q; has %v", want, hops)
		}
	}
	if len(s.Attempts) != 4 {
		t.Fatalf("attempts = %+v, want 4", s.Attempts)
	}
	for i, a := range s.Attempts {
		wantCode, wantOutcome := "HTTP 500", "unknown"
		if i == 3 {
			wantCode, wantOutcome = "HTTP 202", "successful"
		}
		if a.N != i+1 || a.Code != wantCode || a.Outcome != wantOutcome || a.AdviceKey != s.Payment.AdviceKey || a.At.IsZero() {
			t.Errorf("attempt %d = %+v, want #%d %s %s", i, a, i+1, wantCode, wantOutcome)
		}
	}
}

// actionAs posts an operator action as user.
func (h *Harness) actionAs(t testing.TB, user, pass, path string, body any) Response {
	t.Helper()
	return h.Post(t, path, user, pass, body)
}

func reason(why string) map[string]string { return map[string]string{"reason": why} }

// TestSupportRoleEnforcement: every read admits both roles; every action
// admits operators only, a viewer getting 403 with an ErrorDetail; nobody
// else gets past authentication.
func TestSupportRoleEnforcement(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	req := h.approvedPayment(t, 1103)
	reads := []string{
		"/support/v1/me", "/support/v1/transactions?retailer=shop-1", "/support/v1/transactions/" + req.ID,
		"/support/v1/saf", "/support/v1/saf/wallet-a/advices?state=DEAD", "/support/v1/saf/wallet-a/audit",
	}
	actions := []string{
		"/support/v1/saf/wallet-b/pause", "/support/v1/saf/wallet-b/resume", "/support/v1/saf/wallet-b/retry",
		"/support/v1/advices/shop-1/none/retry", "/support/v1/advices/shop-1/none/replay", "/support/v1/advices/shop-1/none/final",
	}
	for _, path := range reads {
		for _, u := range [][2]string{{SupUser, SupPass}, {ViewUser, ViewPass}} {
			if r := h.Do(t, http.MethodGet, path, u[0], u[1], nil); r.status != 200 {
				t.Errorf("GET %s as %s = %d %s, want 200", path, u[0], r.status, r.body)
			}
		}
	}
	// Wrong passwords under a new name each time: the throttle (10 per
	// user) must not lock the viewer out of the checks below.
	for i, path := range append(reads, actions...) {
		method := http.MethodGet
		if slices.Contains(actions, path) {
			method = http.MethodPost
		}
		for _, u := range [][2]string{{"", ""}, {ShopUser, ShopPass}, {ScanUser, ScanPass}, {fmt.Sprintf("nobody-%d", i), "wrong-password"}} {
			if r := h.Do(t, method, path, u[0], u[1], reason("x")); r.status != 401 {
				t.Errorf("%s %s as %q = %d, want 401", method, path, u[0], r.status)
			}
		}
	}
	for _, path := range actions {
		r := h.actionAs(t, ViewUser, ViewPass, path, map[string]string{"reason": "trying", "outcome": "successful"})
		if r.status != http.StatusForbidden {
			t.Errorf("POST %s as viewer = %d %s, want 403", path, r.status, r.body)
			continue
		}
		r.detail(t)
		// As an operator the same request passes the role check (and
		// meets the records: 200, or a refusal that is not 401/403).
		if r := h.actionAs(t, SupUser, SupPass, path, map[string]string{"reason": "trying", "outcome": "successful"}); r.status == 401 || r.status == 403 {
			t.Errorf("POST %s as operator = %d, want past the role check", path, r.status)
		}
	}
	// The viewer's attempts changed nothing.
	var audit struct{ Audit []qrswitch.TraceEntry }
	h.supportGet(t, SupUser, SupPass, "/support/v1/saf/wallet-b/audit", &audit)
	for _, e := range audit.Audit {
		if strings.Contains(e.Peer, ViewUser) {
			t.Errorf("a viewer's refused action is in the audit trail: %+v", e)
		}
	}
}

// auditEntry finds the operator's audit entry of action in trace.
func auditEntry(trace []qrswitch.TraceEntry, operator, action string) (qrswitch.TraceEntry, bool) {
	for _, e := range trace {
		if e.Peer == "operator:"+operator && e.Operation == action {
			return e, true
		}
	}
	return qrswitch.TraceEntry{}, false
}

func checkAudit(t *testing.T, h *Harness, trace []qrswitch.TraceEntry, action, why string) {
	t.Helper()
	e, ok := auditEntry(trace, SupUser, action)
	if !ok {
		t.Fatalf("no audit entry of %s by %s in %+v", action, SupUser, trace)
	}
	if !strings.Contains(e.Note, why) || e.At.IsZero() {
		t.Errorf("audit entry of %s = %+v, want the reason %q and a time", action, e, why)
	}
	logs := h.Logs.String()
	if !strings.Contains(logs, `"action":"`+action+`"`) || !strings.Contains(logs, `"operator":"`+SupUser+`"`) || !strings.Contains(logs, why) {
		t.Errorf("no log line of %s by %s with its reason", action, SupUser)
	}
}

func (h *Harness) advice(t testing.TB, key string) *qrswitch.Advice {
	t.Helper()
	a, err := h.Srv.Store().Advice(t.Context(), key)
	if err != nil {
		t.Fatalf("Advice(%s): %v", key, err)
	}
	return a
}

func adviceSends(h *Harness, id string) int {
	a, ok := h.ledgerAdvice(id)
	if !ok {
		return 0
	}
	return a.Deliveries
}

// confirmed confirms an approved payment of shop-1 and returns the advice
// key.
func (h *Harness) confirmAdvice(t *testing.T, req *wire.PaymentRequest) (*wire.PaymentConfirmation, string) {
	t.Helper()
	c := confirmation(req.ID)
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, c); r.status != 202 {
		t.Fatalf("confirmation = %d %s", r.status, r.body)
	}
	return c, qrswitch.AdviceKey("shop-1", c.ID)
}

// TestOperatorPauseResume: a paused queue sends nothing, neither from the
// queue nor at enqueue, until it is resumed; both actions are audited in
// the partner's trail, and refused when they change nothing or lack a
// reason.
func TestOperatorPauseResume(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	req := h.approvedPayment(t, 1104)
	pause := "/support/v1/saf/wallet-a/pause"
	if r := h.actionAs(t, SupUser, SupPass, pause, reason("  ")); r.status != 400 || r.detail(t).ErrorType != wire.FormatError {
		t.Fatalf("pause without a reason = %d %s, want 400 FORMAT_ERROR", r.status, r.body)
	}
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-z/pause", reason("no such partner")); r.status != 404 {
		t.Fatalf("pause of an unknown partner = %d, want 404", r.status)
	}
	if r := h.actionAs(t, SupUser, SupPass, pause, reason("wallet-a maintenance until 14:00")); r.status != 200 {
		t.Fatalf("pause = %d %s", r.status, r.body)
	}
	if r := h.actionAs(t, SupUser, SupPass, pause, reason("again")); r.status != 409 {
		t.Fatalf("second pause = %d, want 409", r.status)
	}
	conf, key := h.confirmAdvice(t, req)
	time.Sleep(500 * time.Millisecond) // ten SAF polls
	if n := adviceSends(h, conf.ID); n != 0 {
		t.Fatalf("the partner got the confirmation %d time(s) while its queue was paused", n)
	}
	if a := h.advice(t, key); a.State != qrswitch.AdvicePending || a.Attempts != 0 {
		t.Fatalf("advice while paused = %s with %d attempts, want PENDING untried", a.State, a.Attempts)
	}
	var queues struct{ Partners []qrswitch.PartnerQueue }
	h.supportGet(t, ViewUser, ViewPass, "/support/v1/saf", &queues)
	if q := queues.Partners[0]; q.Destination != "wallet-a" || !q.Paused || q.Pending != 1 || q.Control.By != SupUser {
		t.Errorf("queue of wallet-a while paused = %+v", q)
	}
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/retry", reason("now")); r.status != 409 {
		t.Errorf("retry of a paused queue = %d, want 409", r.status)
	}
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/resume", reason("maintenance over")); r.status != 200 {
		t.Fatalf("resume = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/resume", reason("again")); r.status != 409 {
		t.Errorf("second resume = %d, want 409", r.status)
	}
	var audit struct{ Audit []qrswitch.TraceEntry }
	h.supportGet(t, ViewUser, ViewPass, "/support/v1/saf/wallet-a/audit", &audit)
	checkAudit(t, h, audit.Audit, qrswitch.ActionPause, "wallet-a maintenance until 14:00")
	checkAudit(t, h, audit.Audit, qrswitch.ActionResume, "maintenance over")
	if len(audit.Audit) != 2 {
		t.Errorf("audit trail has %d entries, want 2 (refused actions leave none): %+v", len(audit.Audit), audit.Audit)
	}
}

// slowRetries makes every SAF retry wait an hour, so that only an
// operator's action sends it sooner.
func slowRetries(c *config.Config, _ *Options) {
	c.SAF.InitialInterval = config.Duration(time.Hour)
	c.SAF.MaxInterval = config.Duration(2 * time.Hour)
	c.SAF.GiveUpAfter = config.Duration(24 * time.Hour)
}

// TestOperatorRetry: "retry now" sends one waiting advice at once, and
// "retry all" every retry of a partner's queue; both are audited. (A
// final answer after failures drains the whole queue by itself, so the
// single retry here meets one more 500.)
func TestOperatorRetry(t *testing.T) {
	t.Parallel()
	h := NewHarness(t, slowRetries)
	h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500, Count: 3})
	req1 := h.approvedPayment(t, 1105)
	req2 := h.approvedPayment(t, 1106)
	conf1, key1 := h.confirmAdvice(t, req1)
	conf2, key2 := h.confirmAdvice(t, req2)
	eventually(t, "both first attempts answered 500", func() bool {
		return h.advice(t, key1).Attempts == 1 && h.advice(t, key2).Attempts == 1
	})
	if a := h.advice(t, key1); a.NextAt.Before(time.Now().Add(20 * time.Minute)) {
		t.Fatalf("next attempt at %v: the retry is not an hour away", a.NextAt)
	}
	path := "/support/v1/advices/shop-1/" + conf1.ID + "/retry"
	if r := h.actionAs(t, SupUser, SupPass, path, reason("partner fixed their 500s")); r.status != 200 {
		t.Fatalf("retry = %d %s", r.status, r.body)
	}
	eventually(t, "the retried advice's second attempt", func() bool { return h.advice(t, key1).Attempts == 2 })
	if a := h.advice(t, key2); a.Attempts != 1 {
		t.Errorf("the other advice was sent too (%d attempts)", a.Attempts)
	}
	checkAudit(t, h, h.story(t, req1.ID).Trace, qrswitch.ActionRetry, "partner fixed their 500s")
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/advices/shop-1/none/retry", reason("x")); r.status != 404 {
		t.Errorf("retry of an unknown advice = %d, want 404", r.status)
	}
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/retry", reason("drain the backlog")); r.status != 202 {
		t.Fatalf("retry all = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req1.ID), "CONFIRMED")
	h.waitState(t, qrswitch.PaymentKey("shop-1", req2.ID), "CONFIRMED")
	if n := adviceSends(h, conf2.ID); n != 2 {
		t.Errorf("the partner got the second confirmation %d times, want 2", n)
	}
	if r := h.actionAs(t, SupUser, SupPass, path, reason("again")); r.status != 409 {
		t.Errorf("retry of a finished advice = %d, want 409", r.status)
	}
	var audit struct{ Audit []qrswitch.TraceEntry }
	h.supportGet(t, ViewUser, ViewPass, "/support/v1/saf/wallet-a/audit", &audit)
	checkAudit(t, h, audit.Audit, qrswitch.ActionRetryAll, "drain the backlog")
}

// deadLetters makes advices dead-letter after a few fast retries.
func deadLetters(c *config.Config, _ *Options) {
	c.SAF.GiveUpAfter = config.Duration(300 * time.Millisecond)
}

// deadAdvice confirms an approved payment while the partner answers every
// advice 500, and waits until the confirmation is dead-lettered.
func (h *Harness) deadAdvice(t *testing.T, amount int64) (*wire.PaymentRequest, *wire.PaymentConfirmation, string) {
	t.Helper()
	req := h.approvedPayment(t, amount)
	h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500})
	conf, key := h.confirmAdvice(t, req)
	eventually(t, "dead letter", func() bool { return h.advice(t, key).State == qrswitch.AdviceDead })
	h.Sim.ClearFaults()
	return req, conf, key
}

// TestOperatorReplay: a dead letter replayed is sent again at once with
// the same id and a fresh give-up age, its attempts kept.
func TestOperatorReplay(t *testing.T) {
	t.Parallel()
	h := NewHarness(t, deadLetters)
	req, conf, key := h.deadAdvice(t, 1107)
	dead := h.advice(t, key)
	var list struct{ Advices []*qrswitch.Advice }
	h.supportGet(t, ViewUser, ViewPass, "/support/v1/saf/wallet-a/advices?state=DEAD", &list)
	if len(list.Advices) != 1 || list.Advices[0].Key() != key {
		t.Fatalf("dead letters = %+v, want %s", list.Advices, key)
	}
	path := "/support/v1/advices/shop-1/" + conf.ID + "/replay"
	r := h.actionAs(t, SupUser, SupPass, path, reason("wallet-a is back (ticket 4711)"))
	if r.status != 200 {
		t.Fatalf("replay = %d %s", r.status, r.body)
	}
	var replayed qrswitch.Advice
	json.Unmarshal(r.body, &replayed)
	if replayed.State != qrswitch.AdvicePending || replayed.Attempts != dead.Attempts || !replayed.QueuedAt.After(dead.QueuedAt) {
		t.Errorf("replayed advice = %s, %d attempts, queued %v; want PENDING, %d attempts, queued after %v",
			replayed.State, replayed.Attempts, replayed.QueuedAt, dead.Attempts, dead.QueuedAt)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	if a, ok := h.ledgerAdvice(conf.ID); !ok || !a.EffectApplied {
		t.Errorf("the partner did not apply the replayed confirmation: %+v", a)
	}
	checkAudit(t, h, h.story(t, req.ID).Trace, qrswitch.ActionReplay, "wallet-a is back (ticket 4711)")
	if r := h.actionAs(t, SupUser, SupPass, path, reason("again")); r.status != 409 {
		t.Errorf("replay of an advice that is not dead = %d, want 409", r.status)
	}
}

// TestOperatorFinalize: an operator ends a dead letter with the outcome
// the partner gave by other means; it is not sent again, the payment moves
// to the matching final state, and what makes no sense is refused.
func TestOperatorFinalize(t *testing.T) {
	t.Parallel()
	h := NewHarness(t, deadLetters)
	req, conf, key := h.deadAdvice(t, 1108)
	sends := adviceSends(h, conf.ID)
	path := "/support/v1/advices/shop-1/" + conf.ID + "/final"
	for _, body := range []map[string]string{
		{"reason": "x", "outcome": "unknown"},
		{"reason": "x"},
		{"outcome": "successful"},
	} {
		if r := h.actionAs(t, SupUser, SupPass, path, body); r.status != 400 {
			t.Errorf("final %v = %d, want 400", body, r.status)
		}
	}
	r := h.actionAs(t, SupUser, SupPass, path, map[string]string{"reason": "wallet-a confirmed capture by phone", "outcome": "successful"})
	if r.status != 200 {
		t.Fatalf("final = %d %s", r.status, r.body)
	}
	p := h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	a := h.advice(t, key)
	if a.State != qrswitch.AdviceDone || a.Outcome.String() != "successful" || !strings.Contains(a.Note, SupUser) {
		t.Errorf("advice after final = %s %s %q", a.State, a.Outcome, a.Note)
	}
	time.Sleep(200 * time.Millisecond)
	if n := adviceSends(h, conf.ID); n != sends {
		t.Errorf("the partner got the advice again after it was marked final (%d → %d)", sends, n)
	}
	checkAudit(t, h, h.story(t, req.ID).Trace, qrswitch.ActionFinal, "wallet-a confirmed capture by phone")
	if r := h.actionAs(t, SupUser, SupPass, path, map[string]string{"reason": "again", "outcome": "failed"}); r.status != 409 {
		t.Errorf("final of a finished advice = %d, want 409", r.status)
	}
	_ = p

	// A dead reversal marked failed: REVERSAL_FAILED, a state support
	// looks at.
	req2 := h.approvedPayment(t, 1109)
	h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500})
	rev := reversal(req2.ID, wire.ReasonCancelled)
	if r := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, rev); r.status != 202 {
		t.Fatalf("reversal = %d", r.status)
	}
	eventually(t, "dead reversal", func() bool { return h.advice(t, "shop-1/"+rev.ID).State == qrswitch.AdviceDead })
	h.Sim.ClearFaults()
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/advices/shop-1/"+rev.ID+"/final",
		map[string]string{"reason": "wallet-a says the funds were already captured", "outcome": "failed"}); r.status != 200 {
		t.Fatalf("final failed = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req2.ID), "REVERSAL_FAILED")
}

// TestOperatorActionsCounted: each action carried out is counted in the
// metrics by action.
func TestOperatorActionsCounted(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	for _, a := range []string{"pause", "resume", "retry"} {
		if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-b/"+a, reason("drill")); r.status >= 300 {
			t.Fatalf("%s = %d %s", a, r.status, r.body)
		}
	}
	body := scrape(t, h)
	for _, a := range []string{qrswitch.ActionPause, qrswitch.ActionResume, qrswitch.ActionRetryAll} {
		if want := fmt.Sprintf(`qrswitch_operator_actions_total{action=%q} 1`, a); !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// scrape returns the admin listener's /metrics.
func scrape(t testing.TB, h *Harness) string {
	t.Helper()
	res, err := http.Get("http://" + h.Srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	io.Copy(&b, res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics = %d: %s", res.StatusCode, b.String())
	}
	return b.String()
}
