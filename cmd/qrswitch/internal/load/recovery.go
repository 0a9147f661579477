package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// RecoveryReport is what recovery mode measured: how fast queued advices
// drain once the partner is back.
type RecoveryReport struct {
	Advices int `json:"advices"`
	// Down is how long the simulator refused advices while they queued.
	Down time.Duration `json:"downNs"`
	// FirstFinal and AllFinal are measured from the partner's return to the
	// first and the last advice taking effect at the partner.
	FirstFinal time.Duration `json:"firstFinalNs"`
	AllFinal   time.Duration `json:"allFinalNs"`
	// DrainRate is Advices / AllFinal, in advices per second.
	DrainRate float64 `json:"drainRatePerSec"`
	// Deliveries is how many times the switch sent the advices, failed
	// attempts included.
	Deliveries int `json:"deliveries"`
}

func (r *RecoveryReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "recovery: %d advices queued while the partner was down for %s\n", r.Advices, r.Down.Round(time.Millisecond))
	fmt.Fprintf(w, "  after its return: first final in %s, all final in %s = %.0f advices/s drained (%d deliveries in all)\n",
		r.FirstFinal.Round(time.Millisecond), r.AllFinal.Round(time.Millisecond), r.DrainRate, r.Deliveries)
}

// Recovery approves n payments, makes the simulator refuse every advice,
// queues a confirmation for each payment, waits down, lets the simulator
// answer again, and times how long until every confirmation has taken
// effect at the partner.
func Recovery(ctx context.Context, o Options, n int, down time.Duration) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := newRunner(&o)
	defer r.close()
	r.stats = newStats()
	before, err := r.simTotals(ctx)
	if err != nil {
		return nil, err
	}
	payments, err := r.approveMany(ctx, n)
	if err != nil {
		return nil, err
	}
	if err := r.simFault(ctx, `{"operation":"advice","fault":"refuse","count":0}`); err != nil {
		return nil, err
	}
	defer r.simFault(context.WithoutCancel(ctx), "")
	var accepted atomic.Int64
	var next atomic.Int64
	r.each(ctx, make([]string, len(payments)), func(_ *pos, _ string) {
		pay := payments[next.Add(1)-1]
		t := time.Now()
		a := post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/payments/confirmations", pay.pos.auth, adviceBody(pay.id, ""))
		r.stats.steps[StepConfirm].record(time.Since(t))
		if a.err == nil && a.status == http.StatusAccepted {
			accepted.Add(1)
		} else {
			r.stats.fail(a.what(StepConfirm))
		}
	})
	if int(accepted.Load()) != len(payments) {
		return nil, fmt.Errorf("load: only %d of %d confirmations were accepted: %v", accepted.Load(), len(payments), r.stats.errors)
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "recovery: %d confirmations queued; partner down for %s\n", len(payments), down)
	}
	time.Sleep(down)
	if err := r.simFault(ctx, ""); err != nil {
		return nil, err
	}
	back := time.Now()
	rep := &RecoveryReport{Advices: len(payments), Down: down}
	want := before.Captured + len(payments)
	deadline := back.Add(5 * time.Minute)
	for {
		t, err := r.simTotals(ctx)
		if err != nil {
			return nil, err
		}
		if rep.FirstFinal == 0 && t.Captured > before.Captured {
			rep.FirstFinal = time.Since(back)
		}
		if t.Captured >= want {
			rep.AllFinal = time.Since(back)
			rep.Deliveries = t.AdviceDeliveries - before.AdviceDeliveries
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("load: %d of %d advices final 5 minutes after the partner's return", t.Captured-before.Captured, len(payments))
		}
		time.Sleep(5 * time.Millisecond)
	}
	rep.DrainRate = float64(rep.Advices) / rep.AllFinal.Seconds()
	out := &Report{Mode: "recovery", Started: back, Options: runConfig(&o), Recovery: rep,
		Errors: r.stats.errors, ErrorCount: r.stats.errs.Load(), Steps: map[string]Latency{StepConfirm: r.stats.steps[StepConfirm].summary()}}
	return out, nil
}

// approved is a payment the partner approved, with the terminal (and so the
// retailer) that made it.
type approved struct {
	pos *pos
	id  string
}

// approveMany runs n flows up to the approval.
func (r *runner) approveMany(ctx context.Context, n int) ([]approved, error) {
	var mu sync.Mutex
	var out []approved
	r.each(ctx, make([]string, n), func(p *pos, _ string) {
		if id, ok := r.approve(ctx, p); ok {
			mu.Lock()
			out = append(out, approved{p, id})
			mu.Unlock()
		}
	})
	if len(out) != n {
		return nil, fmt.Errorf("load: only %d of %d payments were approved: %v", len(out), n, r.stats.errors)
	}
	return out, nil
}

// approve runs a flow up to the partner's approval.
func (r *runner) approve(ctx context.Context, p *pos) (string, bool) {
	a := post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/qrCodes", p.auth, r.qrBody(p))
	var qr struct {
		TranID string `json:"tranId"`
		QrCode string `json:"qrCode"`
	}
	if a.err != nil || a.status != http.StatusCreated || json.Unmarshal(a.body, &qr) != nil {
		r.stats.fail(a.what(StepCreateQR))
		return "", false
	}
	id := uuid()
	paid := make(chan answer, 1)
	go func() {
		paid <- post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/payments", p.auth, r.payBody(p, id, qr.TranID, r.amount(false)))
	}()
	if sa := post(ctx, r.sim.next(), r.o.SimURL+"/sim/v1/scan", "", fmt.Appendf(nil, `{"qrCode":%q}`, qr.QrCode)); sa.err != nil || sa.status != http.StatusAccepted {
		r.stats.fail(sa.what(StepScan) + " " + string(sa.body))
	}
	if pa := <-paid; pa.err != nil || pa.status != http.StatusCreated {
		r.stats.fail(pa.what(StepPay))
		return "", false
	}
	return id, true
}

// each calls fn for every item, Concurrency at a time, each with a terminal.
func (r *runner) each(ctx context.Context, items []string, fn func(p *pos, item string)) {
	var wg sync.WaitGroup
	work := make(chan int)
	for range r.o.Concurrency {
		wg.Go(func() {
			for i := range work {
				fn(&r.pos[i%len(r.pos)], items[i])
			}
		})
	}
	for i := range items {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
}

type simTotals struct {
	Captured         int `json:"captured"`
	AdviceDeliveries int `json:"adviceDeliveries"`
}

func (r *runner) simTotals(ctx context.Context) (simTotals, error) {
	var out struct{ Totals simTotals }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.o.SimURL+"/sim/v1/ledger?view=totals", nil)
	if err != nil {
		return out.Totals, err
	}
	resp, err := r.sim.next().Do(req)
	if err != nil {
		return out.Totals, fmt.Errorf("reading the simulator's totals: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out.Totals, fmt.Errorf("reading the simulator's totals: %w", err)
	}
	return out.Totals, nil
}

// simFault sets a simulator fault, or clears them all when fault is "".
func (r *runner) simFault(ctx context.Context, fault string) error {
	method, body := http.MethodPost, fault
	if fault == "" {
		method = http.MethodDelete
	}
	req, err := http.NewRequestWithContext(ctx, method, r.o.SimURL+"/sim/v1/faults", stringsReader(body))
	if err != nil {
		return err
	}
	resp, err := r.sim.next().Do(req)
	if err != nil {
		return fmt.Errorf("setting a simulator fault: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("setting a simulator fault: HTTP %d", resp.StatusCode)
	}
	return nil
}
