package load

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
	Mean  float64 `json:"meanMs"`
}

// histogram records latencies from 1 µs to 5 minutes at 3 significant
// digits; safe for concurrent use.
type histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHistogram() *histogram {
	return &histogram{h: hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)}
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	h.mu.Lock()
	h.h.RecordValue(min(us, h.h.HighestTrackableValue()))
	h.mu.Unlock()
}

func (h *histogram) summary() Latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.h.TotalCount(),
		P50:   ms(h.h.ValueAtQuantile(50)),
		P90:   ms(h.h.ValueAtQuantile(90)),
		P99:   ms(h.h.ValueAtQuantile(99)),
		P999:  ms(h.h.ValueAtQuantile(99.9)),
		Max:   ms(h.h.Max()),
		Mean:  h.h.Mean() / 1000,
	}
}

// Steps of a flow, in order.
const (
	StepCreateQR = "createQrCode"
	StepPay      = "pay"
	StepScan     = "scan"
	StepConfirm  = "confirmPayment"
	StepReverse  = "reversePayment"
	StepFlow     = "flow"
	StepAdded    = "switchAdded"
	// StepAddedFromTool is switchAdded counted from the tool's request to
	// the customer app instead of the app's ScanNotification.
	StepAddedFromTool = "switchAdded+app"
)

// Report is the outcome of a run, as printed and as written with --out.
type Report struct {
	Mode    string    `json:"mode"`
	Started time.Time `json:"started"`
	// Measured runs from the end of the warm-up until the last flow due in
	// the measured window has ended; FlowsPerSec is Flows over it.
	Measured    time.Duration      `json:"measuredNs"`
	Flows       int64              `json:"flows"`
	FlowsPerSec float64            `json:"flowsPerSec"`
	Approved    int64              `json:"approved"`
	Declined    int64              `json:"declined"`
	Voided      int64              `json:"voided"`
	Errors      map[string]int64   `json:"errors"`
	ErrorCount  int64              `json:"errorCount"`
	Steps       map[string]Latency `json:"steps"`
	// SwitchAdded is, per approved or declined payment, the time from the
	// scan leaving the customer app until the POS had its answer, minus the
	// time the partner spent on the payment (from the simulator's ledger):
	// everything the switch adds on the payment's critical path.
	SwitchAdded *Latency `json:"switchAdded,omitempty"`
	// SwitchAddedFromTool is the same counted from when the tool asked the
	// customer app (the simulator) to scan: it adds that request and the
	// app's handling before it sends. (Reports before 2026-12-04 called
	// this switchAdded.)
	SwitchAddedFromTool *Latency `json:"switchAddedFromTool,omitempty"`
	// SwitchCPUPerFlow is the CPU time the switch process spent per
	// measured flow (its process_cpu_seconds_total), in microseconds: a
	// figure that stays meaningful when other processes share the cores.
	SwitchCPUPerFlow float64 `json:"switchCpuPerFlowUs,omitempty"`
	// ProcessCPUPerFlow is the same for the other processes named by
	// Options.Processes (a redis-server, the simulator).
	ProcessCPUPerFlow map[string]float64 `json:"processCpuPerFlowUs,omitempty"`
	Options           RunConfig          `json:"options"`

	Baseline *Report  `json:"baseline,omitempty"`
	Ratio    *float64 `json:"throughputRatio,omitempty"`

	Recovery *RecoveryReport `json:"recovery,omitempty"`
	Hold     *HoldReport     `json:"hold,omitempty"`
}

// RunConfig records the options that shape the figures.
type RunConfig struct {
	Rate         float64       `json:"rate"`
	Concurrency  int           `json:"concurrency"`
	Duration     time.Duration `json:"durationNs"`
	Warmup       time.Duration `json:"warmupNs"`
	Retailers    int           `json:"retailers"`
	Terminals    int           `json:"terminals"`
	VoidShare    float64       `json:"voidShare"`
	DeclineShare float64       `json:"declineShare"`
	HTTP2        bool          `json:"http2"`
	Connections  int           `json:"connections"`
}

func runConfig(o *Options) RunConfig {
	return RunConfig{Rate: o.Rate, Concurrency: o.Concurrency, Duration: o.Duration, Warmup: o.Warmup,
		Retailers: len(o.Retailers), Terminals: o.Terminals, VoidShare: o.VoidShare, DeclineShare: o.DeclineShare,
		HTTP2: o.HTTP2, Connections: o.Connections}
}

// WriteText prints the report for a person.
func (r *Report) WriteText(w io.Writer) {
	switch {
	case r.Recovery != nil:
		r.Recovery.writeText(w)
		r.writeErrors(w)
		return
	case r.Hold != nil:
		r.Hold.writeText(w)
		r.writeErrors(w)
		return
	}
	fmt.Fprintf(w, "mode %s: %d flows in %s = %.0f flows/s (approved %d, declined %d, voided %d), %d errors\n",
		r.Mode, r.Flows, r.Measured.Round(time.Millisecond), r.FlowsPerSec, r.Approved, r.Declined, r.Voided, r.ErrorCount)
	if r.Options.Rate > 0 {
		fmt.Fprintf(w, "  open loop at %.0f flows/s, at most %d in flight", r.Options.Rate, r.Options.Concurrency)
	} else {
		fmt.Fprintf(w, "  closed loop, %d flows in flight", r.Options.Concurrency)
	}
	fmt.Fprintf(w, "; %d retailers × %d terminals; http2=%v\n", r.Options.Retailers, r.Options.Terminals, r.Options.HTTP2)
	r.writeErrors(w)
	fmt.Fprintf(w, "  %-16s %8s %9s %9s %9s %9s %9s\n", "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max")
	row := func(name string, l Latency) {
		fmt.Fprintf(w, "  %-16s %8d %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, l.Count, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	for _, s := range []string{StepCreateQR, StepPay, StepScan, StepConfirm, StepReverse, StepFlow} {
		if l, ok := r.Steps[s]; ok && l.Count > 0 {
			row(s, l)
		}
	}
	if r.SwitchAdded != nil {
		row(StepAdded, *r.SwitchAdded)
	}
	if r.SwitchAddedFromTool != nil {
		row(StepAddedFromTool, *r.SwitchAddedFromTool)
	}
	if r.SwitchCPUPerFlow > 0 {
		fmt.Fprintf(w, "  switch CPU per flow: %.0f µs\n", r.SwitchCPUPerFlow)
	}
	for _, name := range slices.Sorted(maps.Keys(r.ProcessCPUPerFlow)) {
		fmt.Fprintf(w, "  %s CPU per flow: %.0f µs\n", name, r.ProcessCPUPerFlow[name])
	}
	if r.Baseline != nil {
		fmt.Fprintln(w, strings.Repeat("-", 78))
		r.Baseline.WriteText(w)
		if r.Ratio != nil {
			fmt.Fprintf(w, "throughput through the switch = %.1f %% of the direct path\n", *r.Ratio*100)
		}
	}
}

func (r *Report) writeErrors(w io.Writer) {
	if len(r.Errors) == 0 {
		return
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "  errors:")
	for _, k := range keys {
		fmt.Fprintf(w, "    %6d  %s\n", r.Errors[k], k)
	}
}
