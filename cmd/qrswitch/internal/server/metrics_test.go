package server

import (
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// families parses a /metrics answer.
func families(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// series reports whether the family has a series whose labels include
// want, and returns the label names the family's series use.
func series(f *dto.MetricFamily, want map[string]string) (bool, []string) {
	names := map[string]bool{}
	found := false
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
			names[l.GetName()] = true
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
			}
		}
		found = found || match
	}
	return found, slices.Sorted(maps.Keys(names))
}

// TestMetricsNamesAndLabels runs payments of every outcome, an advice, a
// late answer, an early scan, a refused duplicate and an operator action,
// then scrapes /metrics and checks each series the issue asks for, with
// exactly its labels, and that no label carries an id of a payment.
func TestMetricsNamesAndLabels(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	var ids []string
	approved := h.approvedPayment(t, 1001)
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(approved.ID)); r.status != 202 {
		t.Fatalf("confirmation = %d", r.status)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", approved.ID), "CONFIRMED")
	declined, _ := h.payAs(t, shop1, 1051, nil)
	unknown, _ := h.payAs(t, shop1, 1064, nil)
	h.waitState(t, qrswitch.PaymentKey("shop-1", unknown.ID), "REVERSED")
	late, _ := h.payAs(t, shop1, 1070, nil) // answered after the timeout
	ids = append(ids, approved.ID, approved.TranID, declined.ID, declined.TranID, unknown.ID, unknown.TranID, late.ID)

	// An early scan: the customer scans before the POS sends its request.
	tranID, payload := h.createQR(t)
	scanned := h.scanAsync(payload)
	eventually(t, "early scan held", func() bool {
		q, err := h.Srv.Store().QR(t.Context(), tranID)
		return err == nil && q.HeldScan != nil
	})
	early := payRequest("1234", tranID, 1002)
	if r := h.Post(t, "/qr/v1/payments", ShopUser, ShopPass, early); r.status != 201 {
		t.Fatalf("payment after an early scan = %d %s", r.status, r.body)
	}
	<-scanned
	// A request id used twice: the store refuses the second create.
	other, _ := h.createQR(t)
	dup := payRequest("1234", other, 1003)
	dup.ID = early.ID
	if r := h.Post(t, "/qr/v1/payments", ShopUser, ShopPass, dup); r.status != 400 {
		t.Fatalf("duplicate request id = %d, want 400", r.status)
	}
	ids = append(ids, tranID, early.ID, other)
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-b/pause", reason("drill")); r.status != 200 {
		t.Fatalf("pause = %d", r.status)
	}
	eventually(t, "late answer recorded", func() bool {
		return strings.Contains(scrape(t, h), "qrswitch_partner_late_answers_total")
	})

	body := scrape(t, h)
	fams := families(t, body)
	for _, tc := range []struct {
		name   string
		labels []string // every label of the family, sorted
		want   []map[string]string
	}{
		{"qrswitch_http_request_duration_seconds", []string{"method", "route", "status"}, []map[string]string{
			{"route": "/qr/v1/payments", "method": "POST", "status": "201"},
			{"route": "/qr/v1/payments", "method": "POST", "status": "400"},
			{"route": "/support/v1/saf/:partner/pause", "method": "POST", "status": "200"},
		}},
		{"qrswitch_partner_outcomes_total", []string{"operation", "outcome", "partner"}, []map[string]string{
			{"partner": "wallet-a", "operation": "pay", "outcome": "successful"},
			{"partner": "wallet-a", "operation": "pay", "outcome": "failed"},
			{"partner": "wallet-a", "operation": "pay", "outcome": "unknown"},
			{"partner": "wallet-a", "operation": "confirmPayment", "outcome": "successful"},
			{"partner": "wallet-a", "operation": "reversePayment", "outcome": "successful"},
		}},
		{"qrswitch_partner_latency_seconds", []string{"operation", "partner"}, []map[string]string{
			{"partner": "wallet-a", "operation": "pay"}, {"partner": "wallet-a", "operation": "confirmPayment"},
		}},
		{"qrswitch_partner_late_answers_total", []string{"operation", "partner"}, []map[string]string{{"partner": "wallet-a", "operation": "pay"}}},
		{"qrswitch_scan_link_delay_seconds", []string{"order"}, []map[string]string{{"order": "request_first"}, {"order": "scan_first"}}},
		{"qrswitch_store_operation_duration_seconds", []string{"operation"}, []map[string]string{
			{"operation": "Commit"}, {"operation": "Payment"}, {"operation": "ClaimAdvices"}, {"operation": "QueueStats"},
		}},
		{"qrswitch_store_errors_total", []string{"error", "operation"}, []map[string]string{{"operation": "Commit", "error": "duplicate"}}},
		{"qrswitch_requests_held", nil, []map[string]string{{}}},
		{"qrswitch_payment_requests_waiting", nil, []map[string]string{{}}},
		{"qrswitch_saf_pending", []string{"partner"}, []map[string]string{{"partner": "wallet-a"}, {"partner": "wallet-b"}}},
		{"qrswitch_saf_held", []string{"partner"}, []map[string]string{{"partner": "wallet-a"}}},
		{"qrswitch_saf_dead_letters", []string{"partner"}, []map[string]string{{"partner": "wallet-a"}}},
		{"qrswitch_saf_oldest_age_seconds", []string{"partner"}, []map[string]string{{"partner": "wallet-a"}}},
		{"qrswitch_saf_pending_by_attempts", []string{"attempts", "partner"}, []map[string]string{
			{"partner": "wallet-a", "attempts": "0"}, {"partner": "wallet-a", "attempts": "3-5"}, {"partner": "wallet-a", "attempts": "21+"},
		}},
		{"qrswitch_saf_paused", []string{"partner"}, []map[string]string{{"partner": "wallet-b"}}},
		{"qrswitch_saf_sending", []string{"partner"}, []map[string]string{{"partner": "wallet-a"}}},
		{"qrswitch_operator_actions_total", []string{"action"}, []map[string]string{{"action": "pausePartner"}}},
	} {
		f, ok := fams[tc.name]
		if !ok {
			t.Errorf("/metrics lacks %s", tc.name)
			continue
		}
		for _, want := range tc.want {
			found, names := series(f, want)
			if !found {
				t.Errorf("%s has no series with %v", tc.name, want)
			}
			if !slices.Equal(names, tc.labels) && !(len(names) == 0 && len(tc.labels) == 0) {
				t.Errorf("%s labels = %v, want %v", tc.name, names, tc.labels)
			}
		}
	}
	if f := fams["qrswitch_saf_paused"]; f != nil {
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == "wallet-b" && m.GetGauge().GetValue() != 1 {
				t.Errorf("qrswitch_saf_paused{partner=wallet-b} = %v, want 1", m.GetGauge().GetValue())
			}
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		if !strings.HasPrefix(name, "qrswitch_") {
			t.Errorf("series %s lacks the qrswitch_ prefix", name)
		}
	}
	for _, id := range ids {
		if strings.Contains(body, id) {
			t.Errorf("/metrics carries the id %s of a payment", id)
		}
	}
}

// TestSAFMetricsFollowTheQueue: the queue gauges show a paused partner's
// backlog and its age, and drop back once it is sent.
func TestSAFMetricsFollowTheQueue(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	req := h.approvedPayment(t, 1110)
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/pause", reason("drill")); r.status != 200 {
		t.Fatalf("pause = %d", r.status)
	}
	h.confirmAdvice(t, req)
	time.Sleep(1100 * time.Millisecond)
	gauge := func(body, name string) float64 {
		for _, m := range families(t, body)[name].GetMetric() {
			if m.GetLabel()[0].GetValue() == "wallet-a" {
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("%s{partner=wallet-a} missing", name)
		return 0
	}
	body := scrape(t, h)
	if p, age := gauge(body, "qrswitch_saf_pending"), gauge(body, "qrswitch_saf_oldest_age_seconds"); p != 1 || age < 1 {
		t.Errorf("while paused: pending %v, oldest age %v s; want 1 and at least 1 s", p, age)
	}
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/resume", reason("drill over")); r.status != 200 {
		t.Fatalf("resume = %d", r.status)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	// The figures are cached for up to 5 s.
	deadline := time.Now().Add(settle)
	for {
		body := scrape(t, h)
		if gauge(body, "qrswitch_saf_pending") == 0 && gauge(body, "qrswitch_saf_oldest_age_seconds") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue gauges did not drop after the backlog was sent")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// counter returns the value of the switch's counter name with exactly the
// labels given (0 when it has no such series yet).
func (h *Harness) counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	res, err := http.Get("http://" + h.Srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	for _, m := range families(t, string(body))[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if maps.Equal(have, labels) {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
