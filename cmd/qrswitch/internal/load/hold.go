package load

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HoldReport is what hold mode measured.
type HoldReport struct {
	Requests int `json:"requests"`
	// Held is the switch's count of held requests when all were open.
	Held float64 `json:"held"`
	// RSSBytes is the switch's resident memory then (its metrics).
	RSSBytes float64 `json:"rssBytes"`
	// Opened is how long it took to get every request held.
	Opened time.Duration `json:"openedNs"`
	// SteadyRSSBytes is the switch's resident memory after the requests
	// stayed held for the linger time (0 without one): the first reading
	// includes the garbage of opening them.
	SteadyRSSBytes float64       `json:"steadyRssBytes,omitempty"`
	Linger         time.Duration `json:"lingerNs,omitempty"`
}

func (h *HoldReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "hold: %d payment requests held open (switch counts %.0f) within %s; switch RSS %.1f MB\n",
		h.Requests, h.Held, h.Opened.Round(time.Millisecond), h.RSSBytes/1e6)
	if h.SteadyRSSBytes > 0 {
		fmt.Fprintf(w, "  after %s still held: switch RSS %.1f MB\n", h.Linger, h.SteadyRSSBytes/1e6)
	}
}

// Hold opens n payment requests that wait for scans, reads the switch's
// memory from its metrics once all are held, keeps them held for linger,
// then ends them with reversals.
func Hold(ctx context.Context, o Options, n int, linger time.Duration) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := newRunner(&o)
	defer r.close()
	r.stats = newStats()
	type code struct {
		p      *pos
		tranID string
	}
	var mu sync.Mutex
	var codes []code
	r.each(ctx, make([]string, n), func(p *pos, _ string) {
		a := post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/qrCodes", p.auth, r.qrBody(p))
		var qr struct {
			TranID string `json:"tranId"`
		}
		if a.err != nil || a.status != http.StatusCreated || json.Unmarshal(a.body, &qr) != nil {
			r.stats.fail(a.what(StepCreateQR))
			return
		}
		mu.Lock()
		codes = append(codes, code{p, qr.TranID})
		mu.Unlock()
	})
	if len(codes) != n {
		return nil, fmt.Errorf("load: only %d of %d QR codes were issued: %v", len(codes), n, r.stats.errors)
	}
	start := time.Now()
	type held struct {
		p  *pos
		id string
	}
	reqs := make([]held, n)
	var wg sync.WaitGroup
	var ended atomic.Int64
	for i, c := range codes {
		id := uuid()
		reqs[i] = held{c.p, id}
		wg.Go(func() {
			defer ended.Add(1)
			a := post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/payments", c.p.auth, r.payBody(c.p, id, c.tranID, r.amount(false)))
			if a.err != nil || a.status != http.StatusBadRequest {
				r.stats.fail(a.what(StepPay))
			}
		})
	}
	rep := &HoldReport{Requests: n}
	for {
		m, err := r.metrics(ctx, "qrswitch_requests_held", "process_resident_memory_bytes")
		if err != nil {
			return nil, err
		}
		if m["qrswitch_requests_held"] >= float64(n) {
			rep.Opened = time.Since(start)
			rep.Held, rep.RSSBytes = m["qrswitch_requests_held"], m["process_resident_memory_bytes"]
			break
		}
		if time.Since(start) > 2*time.Minute || ended.Load() > 0 {
			return nil, fmt.Errorf("load: the switch holds %.0f of %d requests (%d answered early: %v)",
				m["qrswitch_requests_held"], n, ended.Load(), r.stats.errorCounts())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "hold: %d requests held; ending them with reversals in %s\n", n, linger)
	}
	if linger > 0 {
		time.Sleep(linger) // time to look at the switch (profiles) while it holds them
		m, err := r.metrics(ctx, "process_resident_memory_bytes")
		if err != nil {
			return nil, err
		}
		rep.SteadyRSSBytes, rep.Linger = m["process_resident_memory_bytes"], linger
	}
	items := make([]string, n)
	var next atomic.Int64
	r.each(ctx, items, func(_ *pos, _ string) {
		h := reqs[next.Add(1)-1]
		a := post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/payments/reversals", h.p.auth, adviceBody(h.id, "CANCELLED"))
		if a.err != nil || a.status != http.StatusAccepted {
			r.stats.fail(a.what(StepReverse))
		}
	})
	wg.Wait()
	return &Report{Mode: "hold", Started: start, Options: runConfig(&o), Hold: rep,
		Errors: r.stats.errors, ErrorCount: r.stats.errs.Load(), Steps: map[string]Latency{}}, nil
}

// metrics scrapes the switch's admin /metrics for the named (unlabelled)
// series.
func (r *runner) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.o.AdminURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping the switch's metrics: %w", err)
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
