// Package qrswitch is the switch's engine: it issues QR codes, holds payment
// requests until their scan arrives, links scans to them by tranId, forwards
// payments to the partner that scanned through its rail, applies each outcome
// to the payment state machine, queues timeout reversals, and runs
// store-and-forward (SAF) for every confirmation and reversal until a final
// outcome.
//
// The engine speaks Go, not HTTP: surfaces (retailers, partners/scanapi,
// support) decode and authenticate requests and render what the engine
// returns. Every decision is committed to the Store before it is answered,
// with optimistic concurrency (read, decide, Commit, and on ErrConflict read
// and decide again), so many goroutines — and, with a shared store, many
// switch processes — can act on one payment without losing an update.
package qrswitch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/logctx"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// Options configure an Engine. Durations document their defaults.
type Options struct {
	Store    Store
	Partners []*partners.Partner
	Logger   zerolog.Logger
	// Node names this process as the owner of the requests it holds and the
	// advices it leases. Default: a random id per start.
	Node string
	// Now is the clock. Default time.Now in UTC.
	Now func() time.Time

	// ScanWait is how long a payment request waits for its scan. Default 60 s.
	ScanWait time.Duration
	// EarlyScanGrace is how long a scan that beat its payment request is
	// held for the request. Default 5 s.
	EarlyScanGrace time.Duration
	// QRTTL is a QR code's life when the request gives no expiry. Default 5 m.
	QRTTL time.Duration
	// LateWindow is how long after a partner's timeout the switch still
	// listens, only to record a late answer in the trace. Default 30 s.
	LateWindow time.Duration
	// ProviderGUID is the Electrum merchant account template's provider id
	// put in every QR code. Default qr.ElectrumProvider.
	ProviderGUID string

	SAF SAFOptions

	// Notifier, when set, carries wake-ups between switch processes sharing
	// one store (a scan on one replica wakes the request held on another).
	Notifier Notifier
	// Recheck is how often a held request re-reads the store in case a
	// wake-up was lost between processes. 0 disables it (one process).
	Recheck time.Duration
	// SoleOwner says no other process shares the store, so every payment
	// still held at start-up was orphaned by an earlier crash and is
	// recovered at once rather than after its hold expires.
	SoleOwner bool

	// Observer, when set, is told of upstream exchanges, scan links, store
	// calls and operator actions, for metrics. Default: nothing is told.
	Observer Observer
	// ControlRefresh is how often the partner controls (paused queues) are
	// read again from the store, so that an operator's pause on one
	// replica holds on every other even if its wake-up was lost. Default 2 s.
	ControlRefresh time.Duration
}

// SAFOptions configure store-and-forward.
type SAFOptions struct {
	// InitialInterval is the first retry delay. Default 1 s.
	InitialInterval time.Duration
	// MaxInterval caps the retry delay. Default 60 s.
	MaxInterval time.Duration
	// GiveUpAfter is the age after which an advice without a final outcome
	// is dead-lettered. Default 72 h.
	GiveUpAfter time.Duration
	// Workers bounds the advices sent at once to one partner. Default 32.
	Workers int
	// Poll is how often each partner's queue is checked when nothing woke
	// it. Default 250 ms.
	Poll time.Duration
	// LeaseMargin is added to a partner's timeout and the late window to
	// make an advice's lease: long enough for one send and its
	// bookkeeping, short enough that the advices of a worker that died
	// move on quickly (another replica takes them when it ends).
	// Default 15 s.
	LeaseMargin time.Duration
}

// Notifier carries wake-up keys between processes sharing a store.
type Notifier interface {
	// Notify publishes key to every listening process, this one included.
	Notify(ctx context.Context, key string) error
	// Listen calls fn for every key published until ctx ends.
	Listen(ctx context.Context, fn func(key string)) error
}

// Retailer is the authenticated retailer a request came from.
type Retailer struct {
	ID            string
	InstitutionID string // when set, messages' originator.institution.id must match
}

// Engine is the switch. Create it with New, start its background work with
// Run, and stop it by cancelling Run's context.
type Engine struct {
	store    Store
	partners map[string]*partners.Partner
	log      zerolog.Logger
	obs      Observer
	node     string
	now      func() time.Time
	opts     Options
	maxHold  time.Duration // longest partner timeout, for hold deadlines

	waitMu  sync.Mutex
	waiters map[string]*waitSet

	safWake map[string]chan struct{} // per partner
	senders map[string]*sender       // per partner
	// controlWake asks the control loop to read the partner controls now.
	controlWake chan struct{}

	draining atomic.Bool // refuse new QR codes and payment requests: the process is stopping

	sends sync.WaitGroup  // SAF sends in flight; a clean stop waits for them
	late  sync.WaitGroup  // listeners for late answers; a stop cuts them short
	base  context.Context // ends when Run ends; bounds upstream calls
	stop  context.CancelFunc
}

// New checks opts, fills defaults and returns an engine.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("qrswitch: Options.Store is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.ScanWait, 60*time.Second)
	def(&opts.EarlyScanGrace, 5*time.Second)
	def(&opts.QRTTL, 5*time.Minute)
	def(&opts.LateWindow, 30*time.Second)
	def(&opts.SAF.InitialInterval, time.Second)
	def(&opts.SAF.MaxInterval, 60*time.Second)
	def(&opts.SAF.GiveUpAfter, 72*time.Hour)
	def(&opts.SAF.Poll, 250*time.Millisecond)
	def(&opts.SAF.LeaseMargin, 15*time.Second)
	def(&opts.ControlRefresh, 2*time.Second)
	if opts.SAF.Workers <= 0 {
		opts.SAF.Workers = 32
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC() }
	}
	if opts.Node == "" {
		opts.Node = wire.NewID()[:8]
	}
	if opts.ProviderGUID == "" {
		opts.ProviderGUID = defaultProvider
	}
	e := &Engine{
		store:       opts.Store,
		partners:    make(map[string]*partners.Partner, len(opts.Partners)),
		log:         opts.Logger,
		obs:         noObserver{},
		node:        opts.Node,
		now:         opts.Now,
		opts:        opts,
		waiters:     make(map[string]*waitSet),
		safWake:     make(map[string]chan struct{}),
		senders:     make(map[string]*sender),
		controlWake: make(chan struct{}, 1),
	}
	if opts.Observer != nil {
		e.obs = opts.Observer
		e.store = &observedStore{Store: opts.Store, obs: opts.Observer}
	}
	for _, p := range opts.Partners {
		if p == nil || p.ID == "" || p.Rail == nil {
			return nil, errors.New("qrswitch: every partner needs an id and a rail")
		}
		if _, dup := e.partners[p.ID]; dup {
			return nil, fmt.Errorf("qrswitch: partner %s given twice", p.ID)
		}
		if p.Timeout <= 0 {
			p.Timeout = partners.DefaultTimeout
		}
		e.partners[p.ID] = p
		e.safWake[p.ID] = make(chan struct{}, 1)
		e.senders[p.ID] = &sender{slots: make(chan struct{}, opts.SAF.Workers)}
		e.maxHold = max(e.maxHold, p.Timeout)
	}
	e.base, e.stop = context.WithCancel(context.Background())
	return e, nil
}

// Node returns the name this process uses as owner of held requests and leases.
func (e *Engine) Node() string { return e.node }

// Partner returns the partner with the id.
func (e *Engine) Partner(id string) (*partners.Partner, bool) {
	p, ok := e.partners[id]
	return p, ok
}

// Run starts the background work — SAF workers, recovery of orphaned
// payments, cross-process wake-ups — and blocks until ctx ends. It then
// waits for sends in flight to finish (each is bounded by its partner's
// timeout) so no advice is left half-sent by a clean shutdown.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if e.opts.SoleOwner {
		if err := e.recoverOrphans(ctx, true); err != nil {
			e.log.Error().Err(err).Msg("recovering payments orphaned by an earlier stop")
		}
		if err := e.releaseLeases(ctx); err != nil {
			e.log.Error().Err(err).Msg("releasing advice leases of an earlier process")
		}
	}
	// Paused queues must be known before their loops claim anything.
	if err := e.refreshControls(ctx); err != nil {
		e.log.Error().Err(err).Msg("reading partner controls; retrying in the background")
	}
	wg.Go(func() { e.controlLoop(ctx) })
	wg.Go(func() { e.recoveryLoop(ctx) })
	for id := range e.partners {
		wg.Go(func() { e.safLoop(ctx, id) })
	}
	if e.opts.Notifier != nil {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := e.opts.Notifier.Listen(ctx, e.wakeLocal)
				if ctx.Err() == nil {
					e.log.Warn().Err(err).Msg("wake-up channel lost; listening again")
					sleep(ctx, time.Second)
				}
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	e.sends.Wait()
	e.stop()
	e.late.Wait()
	return nil
}

// Failure is an answer that is not a success: an HTTP status and the
// ErrorDetail to send, plus a private cause for the logs.
type Failure struct {
	Status int
	Detail *wire.ErrorDetail
	Cause  error
}

func (f *Failure) Error() string {
	s := fmt.Sprintf("%d %s: %s", f.Status, f.Detail.ErrorType, f.Detail.ErrorMessage)
	if f.Cause != nil {
		s += ": " + f.Cause.Error()
	}
	return s
}

func (f *Failure) Unwrap() error { return f.Cause }

func fail(status int, errorType, msg, originalID, tranID string) *Failure {
	return &Failure{Status: status, Detail: wire.NewErrorDetail(errorType, msg, originalID, tranID)}
}

// formatFailure turns a validation error into 400 FORMAT_ERROR naming the field.
func formatFailure(err error, originalID string) *Failure {
	f := fail(400, wire.FormatError, "Invalid request", originalID, "")
	var fe *wire.FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		f.Detail.ErrorMessage = wire.ShortMessage("Invalid field " + fe.Field)
	}
	f.Detail.DetailMessage = wire.Detail(err.Error())
	return f
}

// storeFailure is the answer when the store failed: 503, never a pretend
// success.
func storeFailure(err error, originalID, tranID string) *Failure {
	f := fail(503, wire.UpstreamUnavailable, "Switch storage unavailable", originalID, tranID)
	f.Cause = err
	return f
}

// maxRetries bounds optimistic-concurrency retries of one decision. Each
// retry means another writer changed the record in between, which can only
// happen a few times per payment; running out is a bug or a storm, and is
// answered as a store failure.
const maxRetries = 32

var errContention = errors.New("too many concurrent changes")

// --- wake-ups -------------------------------------------------------------

type waitSet struct{ chans map[chan struct{}]struct{} }

// watch registers interest in key; the returned channel receives when wake
// is called for key. Call the cancel function when done.
func (e *Engine) watch(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	e.waitMu.Lock()
	set := e.waiters[key]
	if set == nil {
		set = &waitSet{chans: make(map[chan struct{}]struct{}, 1)}
		e.waiters[key] = set
	}
	set.chans[ch] = struct{}{}
	e.waitMu.Unlock()
	return ch, func() {
		e.waitMu.Lock()
		delete(set.chans, ch)
		if len(set.chans) == 0 && e.waiters[key] == set {
			delete(e.waiters, key)
		}
		e.waitMu.Unlock()
	}
}

// wake tells every watcher of key, here and (through the Notifier) in other
// processes, to read the store again.
func (e *Engine) wake(ctx context.Context, key string) {
	e.wakeLocal(key)
	if e.opts.Notifier != nil {
		if err := e.opts.Notifier.Notify(ctx, key); err != nil {
			// Watchers elsewhere fall back to their periodic re-check.
			e.log.Warn().Err(err).Str("key", key).Msg("publishing wake-up")
		}
	}
}

func (e *Engine) wakeLocal(key string) {
	if key == controlsKey {
		select {
		case e.controlWake <- struct{}{}:
		default:
		}
		return
	}
	e.waitMu.Lock()
	set := e.waiters[key]
	if set == nil {
		e.waitMu.Unlock()
		return
	}
	for ch := range set.chans {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	e.waitMu.Unlock()
}

// Drain makes the engine refuse new QR codes and payment requests (503, so
// the POS tries elsewhere or again) while everything already under way —
// held requests, their scans, advices — goes on. A stopping process drains,
// waits for Held to reach 0, then stops.
func (e *Engine) Drain() { e.draining.Store(true) }

// Draining reports whether Drain was called.
func (e *Engine) Draining() bool { return e.draining.Load() }

func drainFailure(originalID string) *Failure {
	f := fail(503, wire.UpstreamUnavailable, "Switch shutting down", originalID, "")
	f.Detail.DetailMessage = wire.Detail("this switch process is stopping; send the request again (another replica takes it)")
	return f
}

// Held reports how many payment requests and early scans this process is
// holding open right now.
func (e *Engine) Held() int {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	return len(e.waiters)
}

// Waiting reports how many payment requests this process is holding open
// right now (for their scan, or for their partner's answer): Held without
// the early scans.
func (e *Engine) Waiting() int {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	n := 0
	for key := range e.waiters {
		if !strings.HasPrefix(key, "scan/") {
			n++
		}
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// --- upstream calls -------------------------------------------------------

// call runs one upstream exchange with the partner's timeout. The exchange
// itself may run LateWindow longer: if it answers after the timeout, the
// answer is recorded in the trace as late and ignored — the outcome was
// already decided as unknown when the timeout passed.
func (e *Engine) call(p *partners.Partner, op outcome.Operation, traceKey, messageID string, do func(context.Context) *partners.Answer) *partners.Answer {
	ctx, cancel := context.WithTimeout(e.base, p.Timeout+e.opts.LateWindow)
	answers := make(chan *partners.Answer, 1)
	go func() {
		defer cancel()
		answers <- do(ctx)
	}()
	timer := time.NewTimer(p.Timeout)
	defer timer.Stop()
	select {
	case a := <-answers:
		if a.Latency <= p.Timeout {
			e.obs.Exchange(p.ID, op, a.Outcome, a.Latency)
			return a
		}
		// The rail answered after the timeout (the timer lost a race by a
		// hair): still late.
		e.recordLate(p, op, traceKey, messageID, a)
		e.obs.Exchange(p.ID, op, outcome.Unknown, p.Timeout)
		return timedOut(p, a)
	case <-timer.C:
		e.late.Go(func() {
			if a := <-answers; a.Status != 0 {
				e.recordLate(p, op, traceKey, messageID, a)
			}
		})
		e.obs.Exchange(p.ID, op, outcome.Unknown, p.Timeout)
		return timedOut(p, nil)
	}
}

// errTimeout is the cause of an unknown outcome after a partner's timeout.
var errTimeout = errors.New("no answer within the partner's timeout")

func timedOut(p *partners.Partner, a *partners.Answer) *partners.Answer {
	t := &partners.Answer{Outcome: outcome.Unknown, Err: fmt.Errorf("%w (%s)", errTimeout, p.Timeout), Latency: p.Timeout}
	if a != nil {
		t.Sent = a.Sent
	}
	return t
}

func (e *Engine) recordLate(p *partners.Partner, op outcome.Operation, traceKey, messageID string, a *partners.Answer) {
	entry := answerEntry(e.now(), p, op, messageID, a)
	entry.Outcome = ""
	entry.Note = fmt.Sprintf("late response ignored: arrived after %s, timeout %s", a.Latency.Round(time.Millisecond), p.Timeout)
	if err := e.store.Commit(e.base, &Change{Trace: []TraceEntry{entry}, TraceKey: traceKey}); err != nil {
		e.log.Error().Err(err).Str("payment", traceKey).Msg("recording a late answer")
	}
	e.obs.LateAnswer(p.ID, op)
	e.log.Warn().Str("payment", traceKey).Str("partner", p.ID).Str("operation", op.String()).
		Int("status", a.Status).Dur("latency", a.Latency).Msg("late response ignored")
}

// logger is the request's logger (with its request id and tranId) when ctx
// carries one, and the engine's otherwise.
func (e *Engine) logger(ctx context.Context) *zerolog.Logger {
	return logctx.Logger(ctx, &e.log)
}
