package load

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// Run drives complete flows as o says and reports what it measured.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := newRunner(&o)
	defer r.close()
	var base *Report
	if o.Baseline {
		var err error
		if base, err = r.run(ctx, "direct", r.directFlow); err != nil {
			return nil, err
		}
	}
	rep, err := r.run(ctx, "flows", r.flow)
	if err != nil {
		return nil, err
	}
	if rep.SwitchAdded, rep.SwitchAddedFromTool, err = r.switchAdded(ctx); err != nil {
		return nil, err
	}
	if base != nil {
		rep.Baseline = base
		if base.FlowsPerSec > 0 {
			ratio := rep.FlowsPerSec / base.FlowsPerSec
			rep.Ratio = &ratio
		}
	}
	return rep, nil
}

// runner holds what every flow shares.
type runner struct {
	o       *Options
	sw, sim *clients
	pos     []pos
	rnd     *lockedRand

	measureFrom time.Time
	stats       *stats
}

// pos is one terminal of one retailer, with its request fragments ready.
type pos struct {
	auth       string
	originator []byte
}

type stats struct {
	steps                     map[string]*histogram
	flows, approved, declined atomic.Int64
	voided, errs              atomic.Int64
	inflight                  atomic.Int64
	errMu                     sync.Mutex
	errors                    map[string]int64
	addedMu                   sync.Mutex
	added                     map[string]answeredScan // request id → its scan and answer
}

// answeredScan is what the tool saw of one payment's critical path: when it
// asked the customer app to scan, and when the POS had its answer.
type answeredScan struct {
	tranID              string
	scanAsked, answered time.Time
}

func newStats() *stats {
	s := &stats{steps: map[string]*histogram{}, errors: map[string]int64{}, added: map[string]answeredScan{}}
	for _, k := range []string{StepCreateQR, StepPay, StepScan, StepConfirm, StepReverse, StepFlow} {
		s.steps[k] = newHistogram()
	}
	return s
}

// errorCounts copies the error counts.
func (s *stats) errorCounts() map[string]int64 {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return maps.Clone(s.errors)
}

func (s *stats) fail(what string) {
	s.errs.Add(1)
	s.errMu.Lock()
	s.errors[what]++
	s.errMu.Unlock()
}

type lockedRand struct {
	mu sync.Mutex
	r  *mrand.Rand
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func newRunner(o *Options) *runner {
	// Held payment requests wait for their scan: the client timeout must
	// outlast the switch's scan wait and partner timeout.
	r := &runner{
		o:   o,
		sw:  newClients(o, 3*time.Minute),
		sim: newClients(o, 3*time.Minute),
		rnd: &lockedRand{r: mrand.New(mrand.NewPCG(uint64(o.Seed), 2))},
	}
	for i, ret := range o.Retailers {
		for t := range o.Terminals {
			orig := fmt.Sprintf(`{"institution":{"id":%q,"name":"Load Retailer %d"},"terminalId":"T%07d","merchant":{"merchantType":"5411","merchantId":"M%014d","merchantName":{"name":"Load Shop %d","city":"Cape Town","region":"WC","country":"ZA"}}}`,
				ret.InstitutionID, i+1, t+1, i+1, i+1)
			r.pos = append(r.pos, pos{
				auth:       "Basic " + base64.StdEncoding.EncodeToString([]byte(ret.Username+":"+ret.Password)),
				originator: []byte(orig),
			})
		}
	}
	return r
}

func (r *runner) close() {
	r.sw.close()
	r.sim.close()
}

// run schedules flows (open or closed loop) for Warmup+Duration and
// collects the report. Flows that start during the warm-up are not counted.
func (r *runner) run(ctx context.Context, mode string, flow func(ctx context.Context, due time.Time)) (*Report, error) {
	o := r.o
	r.stats = newStats()
	start := time.Now()
	r.measureFrom = start.Add(o.Warmup)
	end := r.measureFrom.Add(o.Duration)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progressDone := r.progress(ctx, mode)

	var cpuFrom float64
	var procFrom map[string]float64
	cpuSampled := make(chan struct{})
	go func() {
		defer close(cpuSampled)
		if mode != "flows" {
			return
		}
		time.Sleep(time.Until(r.measureFrom))
		cpuFrom = r.switchCPU(ctx)
		procFrom = processCPU(o.Processes)
	}()
	var wg sync.WaitGroup
	if o.Rate > 0 {
		sem := make(chan struct{}, o.Concurrency)
		interval := time.Duration(float64(time.Second) / o.Rate)
	schedule:
		for i := int64(0); ; i++ {
			due := start.Add(time.Duration(i) * interval)
			if !due.Before(end) {
				break
			}
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					break schedule
				case <-time.After(d):
				}
			}
			select {
			case <-ctx.Done():
				break schedule
			case sem <- struct{}{}:
			}
			wg.Go(func() {
				defer func() { <-sem }()
				flow(ctx, due)
			})
		}
	} else {
		for range o.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(end) {
					flow(ctx, time.Now())
				}
			})
		}
	}
	wg.Wait()
	<-cpuSampled
	// The measured flows are those due in the window; they are all over
	// now. Throughput is over the time they took to finish, not over the
	// window: a switch that falls behind an open-loop rate shows it here.
	measured := time.Since(r.measureFrom)
	var cpuTo float64
	if cpuFrom > 0 {
		cpuTo = r.switchCPU(ctx)
	}
	procTo := processCPU(o.Processes)
	cancel()
	<-progressDone
	rep := &Report{
		Mode: mode, Started: start, Measured: measured, Options: runConfig(o),
		Flows: r.stats.flows.Load(), Approved: r.stats.approved.Load(), Declined: r.stats.declined.Load(),
		Voided: r.stats.voided.Load(), ErrorCount: r.stats.errs.Load(), Errors: r.stats.errors,
		Steps: map[string]Latency{},
	}
	rep.FlowsPerSec = float64(rep.Flows) / measured.Seconds()
	if cpuFrom > 0 && cpuTo > cpuFrom && rep.Flows > 0 {
		rep.SwitchCPUPerFlow = (cpuTo - cpuFrom) * 1e6 / float64(rep.Flows)
	}
	for name, from := range procFrom {
		if to, ok := procTo[name]; ok && rep.Flows > 0 {
			if rep.ProcessCPUPerFlow == nil {
				rep.ProcessCPUPerFlow = map[string]float64{}
			}
			rep.ProcessCPUPerFlow[name] = (to - from) * 1e6 / float64(rep.Flows)
		}
	}
	for k, h := range r.stats.steps {
		rep.Steps[k] = h.summary()
	}
	return rep, nil
}

// processCPU reads the CPU seconds (user + system) of each process from
// /proc/PID/stat; a process that cannot be read is left out.
func processCPU(pids map[string]int) map[string]float64 {
	out := map[string]float64{}
	for name, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command (which is in parentheses and may hold
		// spaces): state is field 3, utime 14 and stime 15.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ut, err1 := strconv.ParseFloat(f[11], 64)
		st, err2 := strconv.ParseFloat(f[12], 64)
		if err1 == nil && err2 == nil {
			out[name] = (ut + st) / clockTicks
		}
	}
	return out
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// switchCPU reads the switch's CPU seconds from its metrics; 0 when they
// cannot be read (an admin listener elsewhere).
func (r *runner) switchCPU(ctx context.Context) float64 {
	m, err := r.metrics(ctx, "process_cpu_seconds_total")
	if err != nil {
		return 0
	}
	return m["process_cpu_seconds_total"]
}

// progress prints a line a second until ctx ends.
func (r *runner) progress(ctx context.Context, mode string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if r.o.Progress == nil {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				n := r.stats.flows.Load()
				phase := "measuring"
				if now.Before(r.measureFrom) {
					phase = "warming up"
				}
				fmt.Fprintf(r.o.Progress, "%s %s: %5d flows/s  %d flows  %d errors  %d in flight  flow p99 %.1f ms\n",
					mode, phase, n-last, n, r.stats.errs.Load(), r.stats.inflight.Load(), r.stats.steps[StepFlow].summary().P99)
				last = n
			}
		}
	}()
	return done
}

// answer is an HTTP answer read whole.
type answer struct {
	status int
	body   []byte
	err    error
}

func (a answer) what(step string) string {
	if a.err != nil {
		msg := a.err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return step + " transport: " + msg
	}
	var d struct {
		ErrorType string `json:"errorType"`
	}
	json.Unmarshal(a.body, &d)
	return fmt.Sprintf("%s %d %s", step, a.status, d.ErrorType)
}

func post(ctx context.Context, c *http.Client, url, auth string, body []byte) answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b, err: err}
}

// uuid is a fresh message id.
func uuid() string { return wire.NewID() }

func timestamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// amount picks a request amount whose last two digits make the simulator
// approve (00–49) or decline (51).
func (r *runner) amount(decline bool) int64 {
	base := int64(1000+r.rnd.IntN(9000)) * 100
	if decline {
		return base + 51
	}
	return base + int64(r.rnd.IntN(50))
}

func (r *runner) qrBody(p *pos) []byte {
	return fmt.Appendf(nil, `{"id":%q,"time":%q,"originator":%s,"client":{"id":"load","name":"qrswitch load"}}`, uuid(), timestamp(), p.originator)
}

func (r *runner) payBody(p *pos, id, tranID string, amount int64) []byte {
	return fmt.Appendf(nil, `{"id":%q,"time":%q,"originator":%s,"client":{"id":"load","name":"qrswitch load"},"thirdPartyIdentifiers":[],"amounts":{"requestAmount":{"amount":%d,"currency":"710"}},"tranId":%q}`,
		id, timestamp(), p.originator, amount, tranID)
}

func adviceBody(requestID, reason string) []byte {
	if reason == "" {
		return fmt.Appendf(nil, `{"id":%q,"requestId":%q,"time":%q,"thirdPartyIdentifiers":[]}`, uuid(), requestID, timestamp())
	}
	return fmt.Appendf(nil, `{"id":%q,"requestId":%q,"time":%q,"thirdPartyIdentifiers":[],"reversalReason":%q}`, uuid(), requestID, timestamp(), reason)
}

// flow runs one complete payment through the switch: QR code, payment
// request, scan, answer, then a confirmation or a void.
func (r *runner) flow(ctx context.Context, due time.Time) {
	s := r.stats
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	measured := !due.Before(r.measureFrom)
	record := func(step string, d time.Duration) {
		if measured {
			s.steps[step].record(d)
		}
	}
	failed := func(what string) {
		if measured {
			s.fail(what)
		}
	}
	p := &r.pos[r.rnd.IntN(len(r.pos))]
	roll := r.rnd.Float64()
	decline := roll < r.o.DeclineShare
	void := !decline && roll < r.o.DeclineShare+r.o.VoidShare

	t := time.Now()
	a := post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/qrCodes", p.auth, r.qrBody(p))
	record(StepCreateQR, time.Since(t))
	if a.err != nil || a.status != http.StatusCreated {
		failed(a.what(StepCreateQR))
		return
	}
	var qr struct {
		TranID string `json:"tranId"`
		QrCode string `json:"qrCode"`
	}
	if err := json.Unmarshal(a.body, &qr); err != nil || qr.TranID == "" {
		failed("createQrCode malformed answer")
		return
	}

	payID := uuid()
	payStart := time.Now()
	paid := make(chan answer, 1)
	go func() {
		paid <- post(ctx, r.sw.next(), r.o.SwitchURL+"/qr/v1/payments", p.auth, r.payBody(p, payID, qr.TranID, r.amount(decline)))
	}()
	scanSent := time.Now()
	sa := post(ctx, r.sim.next(), r.o.SimURL+"/sim/v1/scan", "", fmt.Appendf(nil, `{"qrCode":%q}`, qr.QrCode))
	record(StepScan, time.Since(scanSent))
	if sa.err != nil || sa.status != http.StatusAccepted {
		failed(sa.what(StepScan))
	}
	pa := <-paid
	answered := time.Now()
	record(StepPay, answered.Sub(payStart))
	switch {
	case decline && pa.status == http.StatusBadRequest && strings.Contains(string(pa.body), "DECLINED_BY_PARTNER"):
		if measured {
			s.declined.Add(1)
			s.flows.Add(1)
			s.keepAdded(payID, answeredScan{qr.TranID, scanSent, answered})
		}
		record(StepFlow, time.Since(due))
		return
	case pa.err != nil || pa.status != http.StatusCreated:
		failed(pa.what(StepPay))
		return
	}
	if measured {
		s.keepAdded(payID, answeredScan{qr.TranID, scanSent, answered})
	}

	step, path, reason := StepConfirm, "/qr/v1/payments/confirmations", ""
	if void {
		step, path, reason = StepReverse, "/qr/v1/payments/reversals", "CANCELLED"
	}
	t = time.Now()
	aa := post(ctx, r.sw.next(), r.o.SwitchURL+path, p.auth, adviceBody(payID, reason))
	record(step, time.Since(t))
	if aa.err != nil || aa.status != http.StatusAccepted {
		failed(aa.what(step))
		return
	}
	if measured {
		s.flows.Add(1)
		if void {
			s.voided.Add(1)
		} else {
			s.approved.Add(1)
		}
	}
	record(StepFlow, time.Since(due))
}

func (s *stats) keepAdded(id string, a answeredScan) {
	s.addedMu.Lock()
	s.added[id] = a
	s.addedMu.Unlock()
}

// switchAdded measures, per payment, from the scan leaving the customer app
// (the simulator's ledger: when it sent the ScanNotification) until the POS
// had its answer, less the time the partner spent on the payment (the
// ledger's payment entry). It also returns the same from when the tool
// asked the simulator to scan, which adds the tool's request to the
// simulator and the simulator's own handling before it sends; the figure
// before 2026-12-04 was that one. The first mixes the simulator's clock
// with the tool's: with the simulator on another host their offset enters
// it, and only the second stands.
func (r *runner) switchAdded(ctx context.Context) (added, fromTool *Latency, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.o.SimURL+"/sim/v1/ledger", nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := r.sim.next().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the simulator's ledger: %w", err)
	}
	defer resp.Body.Close()
	var ledger struct {
		Payments []struct {
			ID         string    `json:"id"`
			ReceivedAt time.Time `json:"receivedAt"`
			AnsweredAt time.Time `json:"answeredAt"`
		} `json:"payments"`
		Scans []struct {
			TranID string    `json:"tranId"`
			SentAt time.Time `json:"sentAt"`
		} `json:"scans"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ledger); err != nil {
		return nil, nil, fmt.Errorf("reading the simulator's ledger: %w", err)
	}
	sent := make(map[string]time.Time, len(ledger.Scans))
	for _, s := range ledger.Scans {
		if t, ok := sent[s.TranID]; !ok || s.SentAt.Before(t) {
			sent[s.TranID] = s.SentAt
		}
	}
	h, ht := newHistogram(), newHistogram()
	for _, p := range ledger.Payments {
		a, ok := r.stats.added[p.ID]
		if !ok || p.AnsweredAt.IsZero() {
			continue
		}
		partner := p.AnsweredAt.Sub(p.ReceivedAt)
		ht.record(max(0, a.answered.Sub(a.scanAsked)-partner))
		if at, ok := sent[a.tranID]; ok {
			h.record(max(0, a.answered.Sub(at)-partner))
		}
	}
	l, lt := h.summary(), ht.summary()
	return &l, &lt, nil
}
