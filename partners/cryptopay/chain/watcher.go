package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Cursor stores the last block a Watcher fully processed. The rail keeps
// it in the same store as what its Sink wrote, so the two survive a crash
// together.
type Cursor interface {
	// Load returns the saved block; ok is false when none was ever saved.
	Load(ctx context.Context) (b BlockRef, ok bool, err error)
	// Save replaces the saved block.
	Save(ctx context.Context, b BlockRef) error
}

// Sink receives what the Watcher learns, synchronously, from one
// goroutine, in chain order. See the package documentation for the
// delivery contract. A returned error makes the Watcher retry later from
// the same place; the cursor does not move past what the Sink refused.
type Sink interface {
	// Blocks reports that the blocks First..Last.Number joined the chain
	// the Watcher follows.
	Blocks(ctx context.Context, b *Batch) error
	// Reorg reports that the blocks above r.Ancestor left the chain.
	Reorg(ctx context.Context, r *Reorg) error
}

// Batch is a run of newly processed blocks.
type Batch struct {
	// First is the number of the first block of the run; Last is the
	// header of its last block, the Watcher's new tip.
	First uint64
	Last  Header
	// Transfers are the token's transfers in the run's blocks (to the
	// watched recipients, when Config.Recipients is set), in chain order.
	Transfers []Transfer
	// Confirmed are the transfers, delivered in this batch or before, that
	// have reached Config.Confirmations with Last.
	Confirmed []Transfer
}

// Reorg reports blocks that left the chain.
type Reorg struct {
	// Ancestor is the newest processed block still on the chain: the new
	// tip, from which the Watcher goes on.
	Ancestor BlockRef
	// OldTip is the tip before the reorganisation.
	OldTip BlockRef
	// Removed are the transfers this Watcher delivered from blocks above
	// Ancestor, in chain order. It can miss transfers delivered before the
	// Watcher started; Ancestor is authoritative.
	Removed []Transfer
}

// Defaults of Config.
const (
	DefaultPollInterval   = 2 * time.Second
	DefaultResyncInterval = 30 * time.Second
	DefaultReorgWindow    = 64
	DefaultRetryMin       = 250 * time.Millisecond
	DefaultRetryMax       = 30 * time.Second
)

// Config sets up a Watcher.
type Config struct {
	// RPC makes the Watcher's calls (headers and logs). Required.
	RPC *Client
	// WS is the node's WebSocket endpoint for newHeads and logs
	// subscriptions; an empty WS.URL means polling only. Either way every
	// block is read through RPC: the subscriptions only say when to look.
	WS WSConfig
	// ChainID, when not 0, is the chain id the node must report; Run fails
	// at start otherwise (a node of another chain would credit payments
	// that never happened here).
	ChainID uint64
	// Token is the ERC-20 contract whose transfers are watched. Required.
	Token Address
	// Confirmations is how many blocks, the transfer's own included, make
	// a transfer confirmed. Default 1 (confirmed when mined).
	Confirmations uint64
	// Recipients, when set, returns the addresses whose incoming transfers
	// matter (the open payments); the node is asked only for those, and
	// nothing at all while the list is empty. Addresses must be added
	// before anyone can pay them: blocks already processed are not read
	// again for a new address. It is called for every block or range read,
	// after the block's header was read: an address stored before it is
	// called is asked for in every block mined after the address was
	// stored, so an address published only once stored is never missed
	// (another replica's included, when it reads a shared store). An error
	// fails the step, which is retried. Nil: every transfer of the token.
	Recipients func(ctx context.Context) ([]Address, error)
	// Cursor and Sink: see their types. Required.
	Cursor Cursor
	Sink   Sink
	// StartBlock is the first block read when the Cursor has none saved.
	// Default 0: start at the node's head (blocks before it are not read).
	StartBlock uint64
	// ReorgWindow is how many recent blocks are read one by one and
	// remembered to find where a reorganisation forked; blocks deeper than
	// that below the head are treated as final. Default
	// DefaultReorgWindow (64), raised to Confirmations if lower.
	ReorgWindow uint64
	// MaxRange bounds the blocks of one eth_getLogs range call when
	// catching up. Default DefaultMaxRange (2000).
	MaxRange uint64
	// PollInterval is how often the head is polled without a WebSocket
	// subscription. Default DefaultPollInterval (2 s).
	PollInterval time.Duration
	// ResyncInterval is how often the head is polled while subscribed, in
	// case a notification was lost. Default DefaultResyncInterval (30 s).
	ResyncInterval time.Duration
	// RetryMin and RetryMax bound the exponential back-off after a failed
	// call or a lost WebSocket. Defaults DefaultRetryMin (250 ms) and
	// DefaultRetryMax (30 s).
	RetryMin time.Duration
	RetryMax time.Duration
	// Logger receives connection changes, reorganisations and retried
	// errors. Default: nothing logged.
	Logger zerolog.Logger
}

// ErrChainID is returned by Run when the node serves another chain than
// Config.ChainID.
var ErrChainID = errors.New("chain: node serves another chain")

// Status is a snapshot of a Watcher for health checks and tests.
type Status struct {
	// Started is set once the Watcher has loaded its cursor.
	Started bool
	// Tip is the last block processed.
	Tip BlockRef
	// Subscribed reports whether the WebSocket subscriptions are up;
	// Connections counts the times they came up.
	Subscribed  bool
	Connections uint64
	// Reorgs counts the reorganisations handled; RemovedLogs the removed
	// logs the subscription announced.
	Reorgs      uint64
	RemovedLogs uint64
	// Errors counts failed attempts; LastError is the last one.
	Errors    uint64
	LastError string
}

// Watcher follows one ERC-20 token's transfers on one chain; see the
// package documentation. Run it once; Status is safe to call meanwhile.
type Watcher struct {
	cfg    Config
	window uint64
	log    zerolog.Logger

	// Owned by Run's goroutine.
	recent  []memBlock // oldest first; the last is the tip
	held    []Transfer // delivered transfers of the last window blocks
	unsaved bool       // the tip moved but the cursor save failed

	wake chan struct{} // capacity 1: "look at the head now"

	mu       sync.Mutex
	status   Status
	suspects []BlockRef // blocks of removed logs, to check

	subscribed atomic.Bool
}

// memBlock is a processed block the Watcher remembers.
type memBlock struct {
	ref    BlockRef
	parent Hash
}

// NewWatcher checks c and returns a Watcher.
func NewWatcher(c Config) (*Watcher, error) {
	if c.RPC == nil || c.Cursor == nil || c.Sink == nil {
		return nil, errors.New("chain: Watcher needs RPC, Cursor and Sink")
	}
	if c.Token.IsZero() {
		return nil, errors.New("chain: Watcher needs a token address")
	}
	if c.Confirmations == 0 {
		c.Confirmations = 1
	}
	if c.ReorgWindow == 0 {
		c.ReorgWindow = DefaultReorgWindow
	}
	if c.MaxRange == 0 {
		c.MaxRange = DefaultMaxRange
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	return &Watcher{
		cfg:    c,
		window: max(c.ReorgWindow, c.Confirmations),
		log:    c.Logger.With().Str("token", c.Token.String()).Logger(),
		wake:   make(chan struct{}, 1),
	}, nil
}

// Status returns a snapshot of the Watcher's state.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Subscribed = w.subscribed.Load()
	return s
}

// Run follows the chain until ctx is done, then returns ctx's error. It
// returns earlier only with an error retrying cannot fix (ErrChainID).
// Failed calls are retried with back-off.
func (w *Watcher) Run(ctx context.Context) error {
	retry := w.cfg.RetryMin
	for {
		err := w.start(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, ErrChainID) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		w.failed(err)
		if !sleep(ctx, retry) {
			return ctx.Err()
		}
		retry = min(2*retry, w.cfg.RetryMax)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	if w.cfg.WS.URL != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.follow(ctx)
		}()
	}

	retry = w.cfg.RetryMin
	timer := time.NewTimer(w.cfg.PollInterval)
	defer timer.Stop()
	for {
		wait := w.cfg.PollInterval
		if w.subscribed.Load() {
			wait = w.cfg.ResyncInterval
		}
		if err := w.catchUp(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.failed(err)
			wait = retry
			retry = min(2*retry, w.cfg.RetryMax)
		} else {
			retry = w.cfg.RetryMin
		}
		timer.Reset(wait) // since Go 1.23 no stale tick survives a Reset
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// failed records and logs an error that will be retried.
func (w *Watcher) failed(err error) {
	w.log.Warn().Err(err).Msg("chain watcher: retrying")
	w.mu.Lock()
	w.status.Errors++
	w.status.LastError = err.Error()
	w.mu.Unlock()
}

// kick asks the main loop to look at the head now.
func (w *Watcher) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// start checks the chain id, loads the cursor and remembers the blocks
// whose transfers are still waiting for confirmations.
func (w *Watcher) start(ctx context.Context) error {
	rpc := w.cfg.RPC
	if w.cfg.ChainID != 0 {
		id, err := rpc.ChainID(ctx)
		if err != nil {
			return fmt.Errorf("checking chain id: %w", err)
		}
		if id != w.cfg.ChainID {
			return fmt.Errorf("%w: node says %d, configured %d", ErrChainID, id, w.cfg.ChainID)
		}
	}
	c, ok, err := w.cfg.Cursor.Load(ctx)
	if err != nil {
		return fmt.Errorf("loading cursor: %w", err)
	}
	if !ok {
		var h Header
		if w.cfg.StartBlock == 0 {
			h, err = rpc.LatestHeader(ctx)
		} else {
			h, err = rpc.HeaderByNumber(ctx, w.cfg.StartBlock-1)
		}
		if err != nil {
			return fmt.Errorf("reading start block: %w", err)
		}
		if err := w.cfg.Cursor.Save(ctx, h.Ref()); err != nil {
			return fmt.Errorf("saving cursor: %w", err)
		}
		w.recent = []memBlock{{ref: h.Ref(), parent: h.ParentHash}}
		w.held = nil
		w.setTip(h.Ref(), true)
		return nil
	}
	w.recent = []memBlock{{ref: c}}
	w.held = nil
	if err := w.reload(ctx, c); err != nil {
		return err
	}
	w.setTip(c, true)
	return nil
}

// reload remembers the blocks below cursor c whose transfers the Sink
// already has but that are not confirmed yet, reading their transfers
// again without delivering them. When c left the chain while the Watcher
// was away, nothing is reloaded: the first catch-up finds the fork.
func (w *Watcher) reload(ctx context.Context, c BlockRef) error {
	rpc := w.cfg.RPC
	h, err := rpc.HeaderByNumber(ctx, c.Number)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading cursor block: %w", err)
	}
	if h.Hash != c.Hash {
		return nil
	}
	blocks := []Header{h}
	for n := c.Number; n > 0 && uint64(len(blocks)) < w.cfg.Confirmations-1; n-- {
		p, err := rpc.HeaderByNumber(ctx, n-1)
		if err != nil {
			return fmt.Errorf("reading block %d: %w", n-1, err)
		}
		if p.Hash != blocks[0].ParentHash {
			return fmt.Errorf("block %d changed while reloading", n-1)
		}
		blocks = append([]Header{p}, blocks...)
	}
	var held []Transfer
	for _, b := range blocks {
		ts, err := w.blockTransfers(ctx, b)
		if err != nil {
			return err
		}
		held = append(held, ts...)
	}
	w.recent = w.recent[:0]
	for _, b := range blocks {
		w.recent = append(w.recent, memBlock{ref: b.Ref(), parent: b.ParentHash})
	}
	w.held = held
	return nil
}

// tip returns the last processed block.
func (w *Watcher) tip() BlockRef {
	return w.recent[len(w.recent)-1].ref
}

func (w *Watcher) setTip(tip BlockRef, started bool) {
	w.mu.Lock()
	w.status.Tip = tip
	w.status.Started = w.status.Started || started
	w.mu.Unlock()
}

// catchUp processes blocks until the tip is the node's head.
func (w *Watcher) catchUp(ctx context.Context) error {
	if w.unsaved {
		w.save(ctx)
	}
	if err := w.checkSuspects(ctx); err != nil {
		return err
	}
	for {
		more, err := w.step(ctx)
		if err != nil || !more {
			return err
		}
	}
}

// step makes one move towards the head: a reorganisation, a range of
// deep blocks, or one block of the window. more reports whether to call
// it again.
func (w *Watcher) step(ctx context.Context) (more bool, err error) {
	rpc := w.cfg.RPC
	head, err := rpc.LatestHeader(ctx)
	if err != nil {
		return false, fmt.Errorf("reading head: %w", err)
	}
	tip := w.tip()
	switch {
	case head.Number < tip.Number || (head.Number == tip.Number && head.Hash != tip.Hash):
		return true, w.rewind(ctx)
	case head.Number == tip.Number:
		return false, nil
	}

	if head.Number > w.window && tip.Number < head.Number-w.window {
		return true, w.deep(ctx, head.Number-w.window)
	}

	next := head
	if head.Number != tip.Number+1 {
		if next, err = rpc.HeaderByNumber(ctx, tip.Number+1); err != nil {
			if errors.Is(err, ErrNotFound) {
				return true, nil // the head moved back meanwhile
			}
			return false, fmt.Errorf("reading block %d: %w", tip.Number+1, err)
		}
	}
	if next.ParentHash != tip.Hash {
		return true, w.rewind(ctx)
	}
	transfers, err := w.blockTransfers(ctx, next)
	if err != nil {
		return false, err
	}
	return next.Number < head.Number, w.deliver(ctx, tip.Number+1, next, transfers, memBlock{ref: next.Ref(), parent: next.ParentHash})
}

// deep processes the blocks after the tip up to end, which are deeper than
// the reorg window, by block ranges.
func (w *Watcher) deep(ctx context.Context, end uint64) error {
	rpc := w.cfg.RPC
	tip := w.tip()
	// The tip itself is recent; make sure the range starts on the chain.
	h, err := rpc.HeaderByNumber(ctx, tip.Number)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("checking tip: %w", err)
	}
	if err != nil || h.Hash != tip.Hash {
		return w.rewind(ctx)
	}
	to := min(end, tip.Number+w.cfg.MaxRange)
	last, err := rpc.HeaderByNumber(ctx, to)
	if err != nil {
		return fmt.Errorf("reading block %d: %w", to, err)
	}
	var transfers []Transfer
	recipients, ok, err := w.recipients(ctx)
	if err != nil {
		return err
	}
	if ok {
		transfers, err = rpc.Transfers(ctx, TransferQuery{
			Token: w.cfg.Token, FromBlock: tip.Number + 1, ToBlock: last.Number, To: recipients, MaxRange: w.cfg.MaxRange,
		})
		if err != nil {
			return err
		}
	}
	return w.deliver(ctx, tip.Number+1, last, transfers, memBlock{ref: last.Ref(), parent: last.ParentHash})
}

// recipients returns the addresses to ask for; ok is false when there are
// none to watch.
func (w *Watcher) recipients(ctx context.Context) (to []Address, ok bool, err error) {
	if w.cfg.Recipients == nil {
		return nil, true, nil
	}
	if to, err = w.cfg.Recipients(ctx); err != nil {
		return nil, false, fmt.Errorf("listing recipients: %w", err)
	}
	return to, len(to) > 0, nil
}

// blockTransfers reads the transfers of block b by its hash.
func (w *Watcher) blockTransfers(ctx context.Context, b Header) ([]Transfer, error) {
	to, ok, err := w.recipients(ctx)
	if err != nil || !ok {
		return nil, err
	}
	hash := b.Hash
	ts, err := w.cfg.RPC.Transfers(ctx, TransferQuery{Token: w.cfg.Token, BlockHash: &hash, To: to})
	if err != nil {
		return nil, fmt.Errorf("reading transfers of block %s: %w", b.Ref(), err)
	}
	for _, t := range ts {
		if t.BlockHash != b.Hash || t.BlockNumber != b.Number {
			return nil, fmt.Errorf("%w: block %s answered with a log of block #%d (%s)", ErrMalformed, b.Ref(), t.BlockNumber, t.BlockHash)
		}
	}
	return ts, nil
}

// deliver hands a run of blocks to the Sink and, once it took them, moves
// the tip and saves the cursor.
func (w *Watcher) deliver(ctx context.Context, first uint64, last Header, transfers []Transfer, mem memBlock) error {
	n := w.cfg.Confirmations
	prev := w.tip().Number
	held := append(w.held[:len(w.held):len(w.held)], transfers...)
	var confirmed []Transfer
	for _, t := range held {
		// Confirmed with last, and not already with prev: prev-n+1 < b ≤ last-n+1.
		if t.BlockNumber+n <= last.Number+1 && t.BlockNumber+n > prev+1 {
			confirmed = append(confirmed, t)
		}
	}
	b := &Batch{First: first, Last: last, Transfers: transfers, Confirmed: confirmed}
	if err := w.cfg.Sink.Blocks(ctx, b); err != nil {
		return fmt.Errorf("sink taking blocks %d-%d: %w", first, last.Number, err)
	}

	w.recent = append(w.recent, mem)
	floor := uint64(0)
	if last.Number > w.window {
		floor = last.Number - w.window
	}
	drop := 0
	for drop < len(w.recent)-1 && w.recent[drop].ref.Number <= floor {
		drop++
	}
	w.recent = append(w.recent[:0:0], w.recent[drop:]...)
	w.held = w.held[:0:0]
	for _, t := range held {
		if t.BlockNumber > floor {
			w.held = append(w.held, t)
		}
	}
	w.setTip(last.Ref(), false)
	w.save(ctx)
	return nil
}

// save stores the tip in the cursor. A failure is counted and logged, and
// the save tried again before the next step; the Watcher goes on
// delivering meanwhile (the Sink is idempotent, so what it delivers past
// an unsaved cursor only comes again after a restart).
func (w *Watcher) save(ctx context.Context) {
	if err := w.cfg.Cursor.Save(ctx, w.tip()); err != nil {
		w.unsaved = true
		w.failed(fmt.Errorf("saving cursor: %w", err))
		return
	}
	w.unsaved = false
}

// rewind finds the newest remembered block still on the chain, tells the
// Sink that everything above it left, and makes it the tip.
func (w *Watcher) rewind(ctx context.Context) error {
	rpc := w.cfg.RPC
	oldTip := w.tip()
	keep := -1
	var ancestor BlockRef
	for i := len(w.recent) - 1; i >= 0; i-- {
		h, err := rpc.HeaderByNumber(ctx, w.recent[i].ref.Number)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("finding fork: %w", err)
		}
		if h.Hash == w.recent[i].ref.Hash {
			keep, ancestor = i, h.Ref()
			break
		}
	}
	mem := []memBlock(nil)
	if keep >= 0 {
		mem = append(mem, w.recent[:keep+1]...)
	} else {
		// Deeper than memory: go back a whole window below the oldest
		// remembered block and let the Sink drop everything above.
		n := uint64(0)
		if oldest := w.recent[0].ref.Number; oldest > w.window {
			n = oldest - w.window
		}
		h, err := rpc.HeaderByNumber(ctx, n)
		if err != nil {
			return fmt.Errorf("reading block %d below the fork: %w", n, err)
		}
		ancestor = h.Ref()
		mem = []memBlock{{ref: ancestor, parent: h.ParentHash}}
	}
	var removed, held []Transfer
	for _, t := range w.held {
		if t.BlockNumber > ancestor.Number {
			removed = append(removed, t)
		} else {
			held = append(held, t)
		}
	}
	w.log.Warn().Stringer("old_tip", oldTip).Stringer("ancestor", ancestor).Int("removed", len(removed)).Msg("chain watcher: reorganisation")
	if err := w.cfg.Sink.Reorg(ctx, &Reorg{Ancestor: ancestor, OldTip: oldTip, Removed: removed}); err != nil {
		return fmt.Errorf("sink taking reorganisation to %s: %w", ancestor, err)
	}
	w.recent, w.held = mem, held
	w.mu.Lock()
	w.status.Reorgs++
	w.status.Tip = ancestor
	w.mu.Unlock()
	w.save(ctx)
	return nil
}

// checkSuspects rewinds when a block a removed log named is one the
// Watcher processed and the chain no longer has.
func (w *Watcher) checkSuspects(ctx context.Context) error {
	w.mu.Lock()
	suspects := w.suspects
	w.suspects = nil
	w.mu.Unlock()
	for _, s := range suspects {
		known := false
		for _, m := range w.recent {
			known = known || m.ref == s
		}
		if !known {
			continue
		}
		h, err := w.cfg.RPC.HeaderByNumber(ctx, s.Number)
		if err != nil && !errors.Is(err, ErrNotFound) {
			w.mu.Lock()
			w.suspects = append(w.suspects, suspects...)
			w.mu.Unlock()
			return fmt.Errorf("checking block %s of a removed log: %w", s, err)
		}
		if err != nil || h.Hash != s.Hash {
			return w.rewind(ctx)
		}
	}
	return nil
}

// follow keeps the WebSocket subscriptions up until ctx is done, waking
// the main loop on every notification and after every (re)connection.
func (w *Watcher) follow(ctx context.Context) {
	retry := w.cfg.RetryMin
	for ctx.Err() == nil {
		up, err := w.subscribe(ctx)
		if ctx.Err() != nil {
			return
		}
		if up {
			retry = w.cfg.RetryMin
		}
		w.log.Warn().Err(err).Msg("chain watcher: subscription lost")
		w.failed(fmt.Errorf("subscription: %w", err))
		if !sleep(ctx, retry) {
			return
		}
		retry = min(2*retry, w.cfg.RetryMax)
	}
}

// subscribe dials, subscribes and relays notifications until the
// connection ends. up reports whether the subscriptions came up.
func (w *Watcher) subscribe(ctx context.Context) (up bool, err error) {
	conn, err := DialWS(ctx, w.cfg.WS)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	heads, err := conn.Subscribe(ctx, "newHeads")
	if err != nil {
		return false, err
	}
	logs, err := conn.Subscribe(ctx, "logs", FilterQuery{Addresses: []Address{w.cfg.Token}, Topics: [][]Hash{{TransferTopic}}}.subscription())
	if err != nil {
		return false, err
	}
	w.subscribed.Store(true)
	defer w.subscribed.Store(false)
	w.mu.Lock()
	w.status.Connections++
	w.mu.Unlock()
	w.log.Info().Str("url", w.cfg.WS.URL).Msg("chain watcher: subscribed")
	w.kick() // catch up on what happened while not subscribed
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case _, ok := <-heads.Notifications():
			if !ok {
				return true, conn.Err()
			}
			w.kick()
		case raw, ok := <-logs.Notifications():
			if !ok {
				return true, conn.Err()
			}
			var l Log
			if err := json.Unmarshal(raw, &l); err != nil {
				w.log.Warn().Err(err).Msg("chain watcher: undecodable log notification")
			} else if l.Removed {
				w.mu.Lock()
				w.status.RemovedLogs++
				if len(w.suspects) < int(w.window) {
					w.suspects = append(w.suspects, BlockRef{Number: l.BlockNumber, Hash: l.BlockHash})
				}
				w.mu.Unlock()
			}
			w.kick()
		}
	}
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
