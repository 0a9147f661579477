// Package qrswitch is the switch's engine: it issues QR codes (with the
// offers of the pull rails on them), holds payment requests until their scan
// arrives or a pull rail reports the money, links scans to them by tranId,
// forwards payments to the partner that scanned through its rail, applies
// each outcome to the payment state machine, queues timeout reversals, and
// runs store-and-forward (SAF) for every advice — confirmations, reversals,
// refunds, rails' notifications, web shops' postbacks — until a final
// outcome.
//
// The engine speaks Go, not HTTP: surfaces (retailers, support, the rails'
// own surfaces) decode and authenticate requests and render what the engine
// returns. Rails reach it only through partners.Host, which it implements
// (host.go). Every decision is committed to the Store before it is answered,
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
	// Destinations are advice queues that are not partners: retailers'
	// endpoints (web shops' postbacks).
	Destinations []Destination
	// Offers names, by retailer id, the partners whose pull rails offer on
	// the retailer's QR codes; a retailer not in it gets every pull rail.
	Offers map[string][]string
	Logger zerolog.Logger
	// Node names this process as the owner of the requests it holds and the
	// advices it leases. Default: a random id per start.
	Node string
	// Now is the clock. Default time.Now in UTC.
	Now func() time.Time

	// ScanWait is how long a payment request waits for its scan. Default 40 s.
	ScanWait time.Duration
	// RetailerTimeout is how long a POS waits for its answer (the
	// interface's 60 s unless agreed otherwise). A payment request is
	// answered within it: a partner reached late in the scan wait gets what
	// is left of it (less answerMargin), not its whole timeout. Default 60 s.
	RetailerTimeout time.Duration
	// EarlyScanGrace is how long a scan that beat its payment request is
	// held for the request; 0 declines such a scan at once, as the
	// interface does. The configuration's default is 5 s.
	EarlyScanGrace time.Duration
	// QRTTL is a QR code's life when the request gives no expiry. Default 5 m.
	QRTTL time.Duration
	// LateWindow is how long after a partner's timeout the switch still
	// listens, only to record a late answer in the trace. Default 30 s.
	LateWindow time.Duration
	// ProviderGUID is the Electrum merchant account template's provider id
	// put in every QR code a push rail can be scanned on. Default
	// qr.ElectrumProvider.
	ProviderGUID string
	// AdviceDeadline is how long an approved payment waits for the
	// retailer's confirmation or reversal; then it becomes UNSETTLED, a
	// final state support staff see, and the store's retention applies.
	// Default 168 h.
	AdviceDeadline time.Duration

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
	// StorePause is how long a write the store failed (not a conflict)
	// waits before it is tried again. Default 100 ms.
	StorePause time.Duration
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

// Destination is an advice queue that is not a partner.
type Destination struct {
	// ID is the queue's id: RetailerDestination(retailer id).
	ID   string
	Name string
	// Timeout bounds one delivery. Default 30 s.
	Timeout   time.Duration
	Deliverer partners.Deliverer
}

// Engine is the switch. Create it with New, start its background work with
// Run, and stop it by cancelling Run's context.
type Engine struct {
	store    Store
	tranIDs  TranIDSource // the store's, when it places QR codes by tranId
	partners map[string]*partners.Partner
	queues   map[string]*queue // per destination: every partner, and the others
	// partnerIDs are the partners in configuration order, and scannable
	// says whether any is a push rail (then every code carries the
	// Electrum template for their apps to scan).
	partnerIDs []string
	scannable  bool
	log        zerolog.Logger
	obs        Observer
	node       string
	now        func() time.Time
	opts       Options

	waitMu  sync.Mutex
	waiters map[string]*waitSet

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
	def(&opts.ScanWait, 40*time.Second)
	def(&opts.RetailerTimeout, 60*time.Second)
	def(&opts.AdviceDeadline, 168*time.Hour)
	def(&opts.QRTTL, 5*time.Minute)
	def(&opts.LateWindow, 30*time.Second)
	def(&opts.SAF.InitialInterval, time.Second)
	def(&opts.SAF.MaxInterval, 60*time.Second)
	def(&opts.SAF.GiveUpAfter, 72*time.Hour)
	def(&opts.SAF.Poll, 250*time.Millisecond)
	def(&opts.SAF.LeaseMargin, 15*time.Second)
	def(&opts.ControlRefresh, 2*time.Second)
	def(&opts.StorePause, 100*time.Millisecond)
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
		queues:      make(map[string]*queue),
		waiters:     make(map[string]*waitSet),
		controlWake: make(chan struct{}, 1),
	}
	// Asked of the store itself: the observed wrapper below hides it.
	e.tranIDs, _ = opts.Store.(TranIDSource)
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
		e.partnerIDs = append(e.partnerIDs, p.ID)
		if _, pull := p.Rail.(partners.Offerer); !pull {
			e.scannable = true
		}
		e.queues[p.ID] = e.newQueue(p.ID, p.Name, p.Timeout, p, nil)
	}
	for _, d := range opts.Destinations {
		if d.ID == "" || d.Deliverer == nil {
			return nil, errors.New("qrswitch: every destination needs an id and a deliverer")
		}
		if _, dup := e.queues[d.ID]; dup {
			return nil, fmt.Errorf("qrswitch: destination %s given twice", d.ID)
		}
		if d.Timeout <= 0 {
			d.Timeout = 30 * time.Second
		}
		e.queues[d.ID] = e.newQueue(d.ID, d.Name, d.Timeout, nil, d.Deliverer)
	}
	e.base, e.stop = context.WithCancel(context.Background())
	return e, nil
}

// Node returns the name this process uses as owner of held requests and leases.
func (e *Engine) Node() string { return e.node }

// HasQueue reports whether the engine has an advice queue of that
// destination (a partner, or a retailer's endpoint).
func (e *Engine) HasQueue(destination string) bool {
	_, ok := e.queues[destination]
	return ok
}

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
	for _, q := range e.queues {
		wg.Go(func() { e.safLoop(ctx, q) })
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

func fail(status int, errorType, msg, originalID, tranID string) *wire.Failure {
	return wire.Fail(status, errorType, msg, originalID, tranID)
}

// storeFailure is the answer when the store failed: 503, never a pretend
// success.
func storeFailure(err error, originalID, tranID string) *wire.Failure {
	f := fail(503, wire.UpstreamUnavailable, "Switch storage unavailable", originalID, tranID)
	f.Cause = err
	return f
}

// adviceStoreFailure is the answer to an advice the switch could not
// store: 500, unknown in the interface, so that the POS repeats the advice
// with the same id. (A 503 would be final: a POS that follows the
// interface stops repeating it, and the partner never captures or releases
// the funds.)
func adviceStoreFailure(err error, originalID, tranID string) *wire.Failure {
	f := fail(500, wire.GeneralError, "Switch storage unavailable", originalID, tranID)
	f.Detail.DetailMessage = wire.Detail("the advice was not stored: send it again with the same id")
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

func drainFailure(originalID string) *wire.Failure {
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

// call runs one exchange with a destination, within timeout. The exchange
// itself may run LateWindow longer: if it answers after the timeout, the
// answer is recorded in the trace as late and ignored — the outcome was
// already decided as unknown when the timeout passed. ended is closed when
// the exchange is over, answered in time or not: from then on nothing it
// carried can still reach the destination.
func (e *Engine) call(q *queue, op string, timeout time.Duration, traceKey, messageID string, do func(context.Context) *partners.Answer) (a *partners.Answer, ended <-chan struct{}) {
	ctx, cancel := context.WithTimeout(e.base, timeout+e.opts.LateWindow)
	answers := make(chan *partners.Answer, 1)
	done := make(chan struct{})
	go func() {
		defer cancel()
		answers <- do(ctx)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-answers:
		close(done)
		if a.Latency <= timeout {
			e.obs.Exchange(q.id, op, a.Outcome, a.Latency)
			return a, done
		}
		// The rail answered after the timeout (the timer lost a race by a
		// hair): still late.
		e.recordLate(q, op, timeout, traceKey, messageID, a)
		e.obs.Exchange(q.id, op, outcome.Unknown, timeout)
		return timedOut(timeout, a), done
	case <-timer.C:
		e.late.Go(func() {
			defer close(done)
			if a := <-answers; a.Answered() {
				e.recordLate(q, op, timeout, traceKey, messageID, a)
			}
		})
		e.obs.Exchange(q.id, op, outcome.Unknown, timeout)
		return timedOut(timeout, nil), done
	}
}

// errTimeout is the cause of an unknown outcome after a partner's timeout.
var errTimeout = errors.New("no answer within the partner's timeout")

func timedOut(timeout time.Duration, a *partners.Answer) *partners.Answer {
	t := &partners.Answer{Outcome: outcome.Unknown, Err: fmt.Errorf("%w (%s)", errTimeout, timeout), Latency: timeout}
	if a != nil {
		t.Sent = a.Sent
	}
	return t
}

func (e *Engine) recordLate(q *queue, op string, timeout time.Duration, traceKey, messageID string, a *partners.Answer) {
	entry := answerEntry(e.now(), q.id, op, messageID, a)
	entry.Outcome = ""
	entry.Note = fmt.Sprintf("late response ignored: arrived after %s, timeout %s", a.Latency.Round(time.Millisecond), timeout)
	if err := e.store.Commit(e.base, &Change{Trace: []TraceEntry{entry}, TraceKey: traceKey}); err != nil {
		e.log.Error().Err(err).Str("payment", traceKey).Msg("recording a late answer")
	}
	e.obs.LateAnswer(q.id, op)
	e.log.Warn().Str("payment", traceKey).Str("destination", q.id).Str("operation", op).
		Str("code", a.Code).Dur("latency", a.Latency).Msg("late response ignored")
}

// logger is the request's logger (with its request id and tranId) when ctx
// carries one, and the engine's otherwise.
func (e *Engine) logger(ctx context.Context) *zerolog.Logger {
	return logctx.Logger(ctx, &e.log)
}
