package chain_test

import (
	"context"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chainsim"
	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
)

// accountXPub is the extended public key payment addresses come from in
// these tests (BIP-32 test vector 2, m/0).
const accountXPub = "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH"

// nextIndex hands out derivation indexes, so no two tests (sharing a
// ganache) pay the same address.
var nextIndex atomic.Uint32

// freshAddress derives the next payment address from accountXPub.
func freshAddress(t *testing.T) chain.Address {
	t.Helper()
	k, err := hdkey.Parse(accountXPub)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Address(nextIndex.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// quiet makes a watcher rely on its subscription alone: a poll would come
// only after the test's backstop.
const quiet = time.Hour

func wsConfig(b backend, cur chain.Cursor, sink chain.Sink) chain.Config {
	return chain.Config{
		WS:             chain.WSConfig{URL: b.wsURL()},
		Cursor:         cur,
		Sink:           sink,
		PollInterval:   quiet,
		ResyncInterval: quiet,
	}
}

func TestWatcherFullPayment(t *testing.T) {
	for name, mk := range backends(t, false) {
		for _, mode := range []string{"subscribed", "polling"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				b := mk(t)
				to := freshAddress(t)
				rec, cur := newRecorder(to), &memCursor{}
				cfg := wsConfig(b, cur, rec)
				if mode == "polling" {
					cfg.WS = chain.WSConfig{}
					cfg.PollInterval = 20 * time.Millisecond
				}
				w := run(t, b, cfg)
				w.waitStatus(t, "start", func(s chain.Status) bool { return s.Started && (mode == "polling" || s.Subscribed) })

				tx := b.pay(t, 1, to, 5_000_000)
				rec.wait(t, "the payment confirmed", func(r *recorder) bool {
					_, c := r.total(to)
					return c.Int64() == 5_000_000
				})
				rec.mu.Lock()
				defer rec.mu.Unlock()
				got, ok := rec.byTx(tx)
				if !ok || got.Value.Int64() != 5_000_000 || got.To != to || got.Token != b.token() {
					t.Errorf("transfer of tx %s = %+v, %t, want 5000000 to %s of token %s", tx, got, ok, to, b.token())
				}
				head := b.head(t)
				if got.BlockNumber > head.Number || rec.tip.Number < got.BlockNumber {
					t.Errorf("transfer in block %d, sink tip %d, head %d", got.BlockNumber, rec.tip.Number, head.Number)
				}
				if rec.newly[got.ID()] != 1 {
					t.Errorf("transfer delivered as new %d times, want 1", rec.newly[got.ID()])
				}
				if cur.get().Number < got.BlockNumber {
					t.Errorf("cursor at %d, want at least the transfer's block %d", cur.get().Number, got.BlockNumber)
				}
			})
		}
	}
}

func TestWatcherPartialThenComplete(t *testing.T) {
	for name, mk := range backends(t, false) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			to := freshAddress(t)
			rec := newRecorder(to)
			w := run(t, b, wsConfig(b, &memCursor{}, rec))
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })
			const due = 10_000_000

			b.pay(t, 1, to, 4_000_000)
			rec.wait(t, "the partial payment", func(r *recorder) bool { s, _ := r.total(to); return s.Sign() > 0 })
			rec.mu.Lock()
			seen, _ := rec.total(to)
			rec.mu.Unlock()
			if seen.Int64() != 4_000_000 || seen.Int64() >= due {
				t.Errorf("after the first transfer seen %s, want 4000000 (partial)", seen)
			}

			b.pay(t, 2, to, 6_000_000)
			rec.wait(t, "the completed payment", func(r *recorder) bool { _, c := r.total(to); return c.Int64() >= due })
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if seen, conf := rec.total(to); seen.Int64() != due || conf.Int64() != due || len(rec.held) != 2 {
				t.Errorf("after both transfers seen %s, confirmed %s in %d transfers, want %d in 2", seen, conf, len(rec.held), due)
			}
			rec.checkNoGaps(t)
		})
	}
}

func TestWatcherOverpayment(t *testing.T) {
	for name, mk := range backends(t, false) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			to := freshAddress(t)
			rec := newRecorder(to)
			w := run(t, b, wsConfig(b, &memCursor{}, rec))
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })
			const due = 3_000_000
			b.pay(t, 3, to, 3_500_001)
			rec.wait(t, "the payment", func(r *recorder) bool { _, c := r.total(to); return c.Sign() > 0 })
			rec.mu.Lock()
			defer rec.mu.Unlock()
			_, conf := rec.total(to)
			over := new(big.Int).Sub(conf, big.NewInt(due))
			if over.Int64() != 500_001 {
				t.Errorf("overpaid by %s, want 500001", over)
			}
		})
	}
}

func TestWatcherTwoTransfersInOneBlock(t *testing.T) {
	for name, mk := range backends(t, true) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			a1, a2 := freshAddress(t), freshAddress(t)
			rec := newRecorder(a1, a2)
			w := run(t, b, wsConfig(b, &memCursor{}, rec))
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })

			txs := b.payTogether(t, []payment{{a1, 1_000_000}, {a2, 2_000_000}, {a1, 3_000_000}})
			rec.wait(t, "three transfers", func(r *recorder) bool { return len(r.held) == 3 })
			rec.mu.Lock()
			defer rec.mu.Unlock()
			var ts []chain.Transfer
			for _, tx := range txs {
				tr, ok := rec.byTx(tx)
				if !ok {
					t.Fatalf("transaction %s not delivered", tx)
				}
				ts = append(ts, tr)
			}
			if ts[0].BlockHash != ts[1].BlockHash || ts[1].BlockHash != ts[2].BlockHash {
				t.Errorf("blocks %d, %d, %d, want one block", ts[0].BlockNumber, ts[1].BlockNumber, ts[2].BlockNumber)
			}
			if ts[0].Index == ts[1].Index || ts[1].Index == ts[2].Index || ts[0].ID() == ts[2].ID() {
				t.Errorf("log indexes %d, %d, %d, want distinct", ts[0].Index, ts[1].Index, ts[2].Index)
			}
			s1, _ := rec.total(a1)
			s2, _ := rec.total(a2)
			if s1.Int64() != 4_000_000 || s2.Int64() != 2_000_000 {
				t.Errorf("totals %s and %s, want 4000000 and 2000000", s1, s2)
			}
		})
	}
}

func TestWatcherConfirmations(t *testing.T) {
	for name, mk := range backends(t, false) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			to := freshAddress(t)
			rec := newRecorder(to)
			cfg := wsConfig(b, &memCursor{}, rec)
			cfg.Confirmations = 3
			w := run(t, b, cfg)
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })

			tx := b.pay(t, 1, to, 1_000_000)
			rec.wait(t, "the transfer seen", func(r *recorder) bool { _, ok := r.byTx(tx); return ok })
			rec.mu.Lock()
			tr, _ := rec.byTx(tx)
			rec.mu.Unlock()
			for extra := uint64(1); extra <= 2; extra++ {
				rec.mu.Lock()
				_, confirmed := rec.conf[tr.ID()]
				rec.mu.Unlock()
				if confirmed {
					t.Fatalf("confirmed with %d confirmations, want 3", extra)
				}
				b.mine(t, 1)
				rec.wait(t, "the next block", func(r *recorder) bool { return r.tip.Number >= tr.BlockNumber+extra })
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			at, ok := rec.conf[tr.ID()]
			if !ok || at != tr.BlockNumber+2 {
				t.Errorf("confirmed %t at tip %d, want at %d (3 confirmations)", ok, at, tr.BlockNumber+2)
			}
		})
	}
}

func TestWatcherReorg(t *testing.T) {
	for name, mk := range backends(t, true) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			to := freshAddress(t)
			rec := newRecorder(to)
			cfg := wsConfig(b, &memCursor{}, rec)
			cfg.Confirmations = 2
			w := run(t, b, cfg)
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })

			rollback := b.checkpoint(t)
			first := b.pay(t, 1, to, 5_000_000)
			rec.wait(t, "the first transfer", func(r *recorder) bool { _, ok := r.byTx(first); return ok })
			rec.mu.Lock()
			gone, _ := rec.byTx(first)
			rec.mu.Unlock()

			rollback(t)
			second := b.pay(t, 2, to, 3_000_000)
			rec.wait(t, "the second transfer", func(r *recorder) bool { _, ok := r.byTx(second); return ok })
			b.mine(t, 1)
			rec.wait(t, "the second transfer confirmed", func(r *recorder) bool { _, c := r.total(to); return c.Sign() > 0 })

			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.reorgs) == 0 {
				t.Fatalf("no reorganisation reported")
			}
			g := rec.reorgs[0]
			if g.Ancestor.Number >= gone.BlockNumber || g.OldTip.Number < gone.BlockNumber {
				t.Errorf("reorg from %s to %s, want across block %d", g.OldTip, g.Ancestor, gone.BlockNumber)
			}
			listed := false
			for _, r := range g.Removed {
				listed = listed || r.ID() == gone.ID()
			}
			if !listed {
				t.Errorf("Reorg.Removed = %v, want the first transfer %s", g.Removed, gone.ID())
			}
			if _, ok := rec.removed[gone.ID()]; !ok {
				t.Errorf("first transfer not removed")
			}
			if _, ok := rec.byTx(first); ok {
				t.Errorf("first transfer still held after the reorganisation")
			}
			seen, conf := rec.total(to)
			if seen.Int64() != 3_000_000 || conf.Int64() != 3_000_000 {
				t.Errorf("after the reorganisation seen %s, confirmed %s, want only the second transfer's 3000000", seen, conf)
			}
			if s := w.w.Status(); s.Reorgs == 0 {
				t.Errorf("Status().Reorgs = 0, want at least 1")
			}
		})
	}
}

// TestWatcherReorgRemovedLogs replaces blocks on chainsim as a real node
// reorganises (a longer chain, the transaction mined again): the
// subscription announces removed logs, the old log is reported removed
// and the same transaction arrives again under a new ID.
func TestWatcherReorgRemovedLogs(t *testing.T) {
	b := newSim(t, chainsim.Config{})
	to := freshAddress(t)
	rec := newRecorder(to)
	cfg := wsConfig(b, &memCursor{}, rec)
	cfg.Confirmations = 3
	w := run(t, b, cfg)
	w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })

	tx := b.pay(t, 0, to, 7_000_000)
	b.mine(t, 1)
	rec.wait(t, "the transfer", func(r *recorder) bool { _, ok := r.byTx(tx); return ok && r.tip.Number == b.head(t).Number })
	rec.mu.Lock()
	old, _ := rec.byTx(tx)
	rec.mu.Unlock()

	if _, n, err := b.sim.Reorg(2, 3, true); err != nil || n != 1 {
		t.Fatalf("Reorg(2, 3, reinclude) = %d removed logs, %v, want 1", n, err)
	}
	rec.wait(t, "the transfer again", func(r *recorder) bool {
		n, ok := r.byTx(tx)
		return ok && n.BlockHash != old.BlockHash
	})
	w.waitStatus(t, "the removed log", func(s chain.Status) bool { return s.RemovedLogs == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	again, _ := rec.byTx(tx)
	if again.ID() == old.ID() || again.TxHash != old.TxHash {
		t.Errorf("mined again as %s, want the same transaction under a new ID than %s", again.ID(), old.ID())
	}
	if _, ok := rec.removed[old.ID()]; !ok || len(rec.reorgs) != 1 || len(rec.reorgs[0].Removed) != 1 || rec.reorgs[0].Removed[0].ID() != old.ID() {
		t.Errorf("reorgs %+v, want one removing %s", rec.reorgs, old.ID())
	}
}

// TestWatcherRestart kills the watcher several times while transfers keep
// arriving: every transfer is delivered, each as new exactly once, and the
// confirmations all come.
func TestWatcherRestart(t *testing.T) {
	for name, mk := range backends(t, false) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			const payments = 20
			addrs := []chain.Address{freshAddress(t), freshAddress(t), freshAddress(t), freshAddress(t)}
			rec, cur := newRecorder(addrs...), &memCursor{}
			start := func() *running {
				cfg := wsConfig(b, cur, rec)
				cfg.Confirmations = 2
				return run(t, b, cfg)
			}
			w := start()
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })

			sent := make(chan chain.Hash, payments)
			go func() {
				defer close(sent)
				for i := 0; i < payments; i++ {
					sent <- b.pay(t, 1+i%3, addrs[i%len(addrs)], int64(1000+i))
				}
			}()
			var txs []chain.Hash
			for tx := range sent {
				txs = append(txs, tx)
				if len(txs)%5 == 0 && len(txs) < payments {
					// Kill it as soon as it has delivered the newest transfer,
					// before the next arrives: sometimes mid-block.
					w.stop(t)
					w = start()
				}
			}
			// One more block confirms the last transfer.
			b.mine(t, 1)
			rec.wait(t, "every transfer confirmed", func(r *recorder) bool { return len(r.conf) == payments })

			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.held) != payments {
				t.Errorf("%d transfers held, want %d", len(rec.held), payments)
			}
			for _, tx := range txs {
				tr, ok := rec.byTx(tx)
				if !ok {
					t.Errorf("transaction %s missed", tx)
					continue
				}
				if rec.newly[tr.ID()] != 1 {
					t.Errorf("transfer %s delivered as new %d times, want once", tr.ID(), rec.newly[tr.ID()])
				}
			}
			t.Logf("%d batches, %d repeated deliveries", rec.batches, rec.again)
			rec.checkNoGaps(t)
		})
	}
}

// TestWatcherCrashBeforeCursorSave proves delivery is at least once: the
// sink took a transfer, the cursor could not be saved, the watcher died;
// the next one delivers the transfer again, under the same ID.
func TestWatcherCrashBeforeCursorSave(t *testing.T) {
	for name, mk := range backends(t, false) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			to := freshAddress(t)
			rec, cur := newRecorder(to), &memCursor{}
			w := run(t, b, wsConfig(b, cur, rec))
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })
			saved := cur.get()

			cur.mu.Lock()
			cur.fail = errors.New("disk full")
			cur.mu.Unlock()
			tx := b.pay(t, 1, to, 42)
			rec.wait(t, "the transfer", func(r *recorder) bool { _, ok := r.byTx(tx); return ok })
			w.stop(t)
			if got := cur.get(); got != saved {
				t.Fatalf("cursor moved to %s while failing", got)
			}

			cur.mu.Lock()
			cur.fail = nil
			cur.mu.Unlock()
			w = run(t, b, wsConfig(b, cur, rec))
			rec.wait(t, "the transfer again", func(r *recorder) bool { return r.again >= 1 })
			rec.mu.Lock()
			defer rec.mu.Unlock()
			tr, _ := rec.byTx(tx)
			if rec.newly[tr.ID()] != 1 || len(rec.held) != 1 {
				t.Errorf("transfer new %d times, %d held, want once and 1", rec.newly[tr.ID()], len(rec.held))
			}
		})
	}
}

// TestWatcherWebSocketDisconnect cuts the WebSocket while transfers are
// made: after the reconnection the watcher catches up by eth_getLogs (it
// is not polling).
func TestWatcherWebSocketDisconnect(t *testing.T) {
	for name, mk := range backends(t, false) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			to := freshAddress(t)
			rec := newRecorder(to)
			host := b.wsURL()[len("ws://"):]
			p := newProxy(t, host)
			cfg := wsConfig(b, &memCursor{}, rec)
			cfg.WS.URL = "ws://" + p.addr()
			w := run(t, b, cfg)
			w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })

			first := b.pay(t, 1, to, 1)
			rec.wait(t, "the first transfer", func(r *recorder) bool { _, ok := r.byTx(first); return ok })

			p.cutOff()
			w.waitStatus(t, "the subscription lost", func(s chain.Status) bool { return !s.Subscribed })
			missed := []chain.Hash{b.pay(t, 2, to, 2), b.pay(t, 3, to, 3)}
			b.mine(t, 2)
			// A wake-up queued before the cut can still read these blocks
			// (the watcher is not polling, but it may have been woken just
			// before): what must hold is that the reconnection catches up.

			p.restore()
			w.waitStatus(t, "the reconnection", func(s chain.Status) bool { return s.Connections >= 2 })
			rec.wait(t, "the missed transfers", func(r *recorder) bool {
				_, a := r.byTx(missed[0])
				_, b := r.byTx(missed[1])
				return a && b
			})
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.checkNoGaps(t)
		})
	}
}

// TestWatcherDeepCatchUp starts far behind the head: the old blocks are
// read by ranges (split further when the node refuses a range), the recent
// ones block by block, and nothing is missed.
func TestWatcherDeepCatchUp(t *testing.T) {
	b := newSim(t, chainsim.Config{MaxLogRange: 7})
	to, other := freshAddress(t), freshAddress(t)
	start := b.head(t).Number + 1
	var txs []chain.Hash
	for i := 0; i < 12; i++ {
		txs = append(txs, b.pay(t, 0, to, int64(i+1)))
		b.pay(t, 0, other, 1)
		b.mine(t, 5)
	}
	rec := newRecorder(to)
	cfg := chain.Config{Cursor: &memCursor{}, Sink: rec, StartBlock: start, ReorgWindow: 8, MaxRange: 20, PollInterval: quiet, ResyncInterval: quiet,
		Recipients: rec.addresses}
	run(t, b, cfg)
	rec.wait(t, "the head", func(r *recorder) bool { return r.tip.Number == b.head(t).Number })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.held) != len(txs) {
		t.Errorf("%d transfers held, want %d", len(rec.held), len(txs))
	}
	for _, tx := range txs {
		if _, ok := rec.byTx(tx); !ok {
			t.Errorf("transfer %s missed", tx)
		}
	}
	if len(rec.conf) != len(txs) {
		t.Errorf("%d confirmed, want %d", len(rec.conf), len(txs))
	}
	if rec.batches >= int(b.head(t).Number-start) {
		t.Errorf("%d batches for %d blocks, want ranges for the deep ones", rec.batches, b.head(t).Number-start)
	}
	rec.checkNoGaps(t)
}

// TestWatcherSinkFailure: while the sink refuses, the cursor stays; once
// it accepts, everything arrives.
func TestWatcherSinkFailure(t *testing.T) {
	b := newSim(t, chainsim.Config{})
	to := freshAddress(t)
	rec, cur := newRecorder(to), &memCursor{}
	cfg := wsConfig(b, cur, rec)
	w := run(t, b, cfg)
	w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })
	before := cur.get()
	rec.mu.Lock()
	rec.fail = errors.New("database down")
	rec.mu.Unlock()
	tx := b.pay(t, 0, to, 9)
	w.waitStatus(t, "a failed delivery", func(s chain.Status) bool { return s.Errors > 0 })
	if got := cur.get(); got != before {
		t.Errorf("cursor moved from %s to %s while the sink failed", before, got)
	}
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	b.mine(t, 1)
	rec.wait(t, "the transfer", func(r *recorder) bool { _, ok := r.byTx(tx); return ok })
}

func TestWatcherChainIDMismatch(t *testing.T) {
	b := newSim(t, chainsim.Config{ChainID: 5})
	w, err := chain.NewWatcher(chain.Config{
		RPC:     chain.NewClient(chain.NewHTTP(chain.HTTPConfig{URL: b.rpcURL()})),
		ChainID: 1, Token: b.token(), Cursor: &memCursor{}, Sink: newRecorder(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if err := w.Run(ctx); !errors.Is(err, chain.ErrChainID) {
		t.Errorf("Run() = %v, want ErrChainID", err)
	}
}

// TestWatcherRestartAfterReorgWhileAway: the cursor's block left the chain
// while no watcher ran; the next one rolls the sink back and goes on.
func TestWatcherRestartAfterReorgWhileAway(t *testing.T) {
	b := newSim(t, chainsim.Config{})
	to := freshAddress(t)
	rec, cur := newRecorder(to), &memCursor{}
	w := run(t, b, wsConfig(b, cur, rec))
	w.waitStatus(t, "subscription", func(s chain.Status) bool { return s.Subscribed })
	tx := b.pay(t, 0, to, 11)
	rec.wait(t, "the transfer", func(r *recorder) bool { _, ok := r.byTx(tx); return ok })
	w.stop(t)

	if _, _, err := b.sim.Reorg(1, 2, false); err != nil {
		t.Fatal(err)
	}
	run(t, b, wsConfig(b, cur, rec))
	rec.wait(t, "the rollback", func(r *recorder) bool { return len(r.reorgs) == 1 && r.tip.Number == b.head(t).Number })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if _, ok := rec.byTx(tx); ok {
		t.Errorf("transfer of the removed block still held")
	}
	if rec.reorgs[0].Ancestor.Number >= b.head(t).Number-1 {
		t.Errorf("rolled back to %s, want below the fork", rec.reorgs[0].Ancestor)
	}
	_ = context.Background
}
