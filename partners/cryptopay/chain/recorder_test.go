package chain_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// recorder is the tests' Sink: idempotent by Transfer.ID, as the rail's
// must be, keeping only transfers to the addresses it watches. It counts
// how often each transfer arrived as new (must be once) and again (allowed).
type recorder struct {
	mu      sync.Mutex
	watch   map[chain.Address]bool
	held    map[string]chain.Transfer // on the chain as far as the sink knows
	newly   map[string]int            // times delivered while not held
	again   int                       // deliveries of an ID already held
	removed map[string]chain.Transfer // held once, then removed by a reorg
	conf    map[string]uint64         // confirmed, with the tip it was confirmed at
	tip     chain.Header
	batches int
	reorgs  []*chain.Reorg
	fail    error    // returned by the next calls while set
	gaps    []string // batches that skipped blocks: must stay empty
	changed chan struct{}
}

func newRecorder(watch ...chain.Address) *recorder {
	r := &recorder{
		watch:   map[chain.Address]bool{},
		held:    map[string]chain.Transfer{},
		newly:   map[string]int{},
		removed: map[string]chain.Transfer{},
		conf:    map[string]uint64{},
		changed: make(chan struct{}),
	}
	for _, a := range watch {
		r.watch[a] = true
	}
	return r
}

func (r *recorder) addresses(context.Context) ([]chain.Address, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []chain.Address
	for a := range r.watch {
		out = append(out, a)
	}
	return out, nil
}

func (r *recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) Blocks(ctx context.Context, b *chain.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if b.Last.Number < b.First || (r.tip.Hash != (chain.Hash{}) && b.First > r.tip.Number+1) {
		r.gaps = append(r.gaps, fmt.Sprintf("batch %d-%d after tip %d", b.First, b.Last.Number, r.tip.Number))
	}
	for _, t := range b.Transfers {
		if !r.watch[t.To] {
			continue
		}
		if _, ok := r.held[t.ID()]; ok {
			r.again++
			continue
		}
		r.held[t.ID()] = t
		r.newly[t.ID()]++
		delete(r.removed, t.ID())
	}
	for _, t := range b.Confirmed {
		if _, ok := r.held[t.ID()]; ok {
			if _, done := r.conf[t.ID()]; !done {
				r.conf[t.ID()] = b.Last.Number
			}
		}
	}
	r.tip = b.Last
	r.batches++
	r.notify()
	return nil
}

func (r *recorder) Reorg(ctx context.Context, g *chain.Reorg) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	// The ancestor is authoritative: whatever is above it is gone.
	for id, t := range r.held {
		if t.BlockNumber > g.Ancestor.Number {
			delete(r.held, id)
			delete(r.conf, id)
			r.removed[id] = t
		}
	}
	r.tip = chain.Header{Number: g.Ancestor.Number, Hash: g.Ancestor.Hash}
	r.reorgs = append(r.reorgs, g)
	r.notify()
	return nil
}

// wait blocks until cond holds (checked on every change) or fails t
// after the backstop.
func (r *recorder) wait(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.After(backstop)
	for {
		r.mu.Lock()
		ok := cond(r)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("waiting for %s: gave up after %s; tip #%d, held %d, removed %d, reorgs %d", what, backstop, r.tip.Number, len(r.held), len(r.removed), len(r.reorgs))
		}
	}
}

// checkNoGaps fails t when a batch skipped blocks. The caller holds r.mu.
func (r *recorder) checkNoGaps(t *testing.T) {
	t.Helper()
	for _, g := range r.gaps {
		t.Errorf("blocks skipped: %s", g)
	}
}

// byTx returns the held transfer of transaction tx.
func (r *recorder) byTx(tx chain.Hash) (chain.Transfer, bool) {
	for _, t := range r.held {
		if t.TxHash == tx {
			return t, true
		}
	}
	return chain.Transfer{}, false
}

// total returns the sum of held transfers to a, and of those confirmed.
func (r *recorder) total(a chain.Address) (seen, confirmed *big.Int) {
	seen, confirmed = new(big.Int), new(big.Int)
	for id, t := range r.held {
		if t.To != a {
			continue
		}
		seen.Add(seen, t.Value)
		if _, ok := r.conf[id]; ok {
			confirmed.Add(confirmed, t.Value)
		}
	}
	return seen, confirmed
}

// memCursor is a durable cursor kept in memory across watcher restarts.
type memCursor struct {
	mu    sync.Mutex
	b     chain.BlockRef
	ok    bool
	saves int
	fail  error
}

func (c *memCursor) Load(context.Context) (chain.BlockRef, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b, c.ok, nil
}

func (c *memCursor) Save(_ context.Context, b chain.BlockRef) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.b, c.ok = b, true
	c.saves++
	return nil
}

func (c *memCursor) get() chain.BlockRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b
}

// running is a watcher running in the background.
type running struct {
	w      *chain.Watcher
	cancel context.CancelFunc
	done   chan error
}

// run starts a watcher of b's token with cfg's Cursor, Sink and options
// (RPC, Token, ChainID and Logger are filled in).
func run(t *testing.T, b backend, cfg chain.Config) *running {
	t.Helper()
	if cfg.RPC == nil {
		cfg.RPC = chain.NewClient(chain.NewHTTP(chain.HTTPConfig{URL: b.rpcURL(), Timeout: 10 * time.Second}))
	}
	cfg.Token = b.token()
	cfg.ChainID = b.chainID()
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	if cfg.RetryMax == 0 {
		cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	}
	w, err := chain.NewWatcher(cfg)
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the watcher and checks it ended with the context's error.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run() = %v, want context.Canceled", err)
		}
	case <-time.After(backstop):
		t.Fatalf("Run() did not return after cancel")
	}
}

// waitStatus blocks until cond holds for the watcher's status.
func (r *running) waitStatus(t *testing.T, what string, cond func(chain.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(backstop)
	for !cond(r.w.Status()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, r.w.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
