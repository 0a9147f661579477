package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// TestClusterFailover: the master serving the store's slot is killed while
// payments are committed with WaitReplicas 1. Every commit either succeeds
// or fails with ErrUnavailable (never a duplicate or conflict of its own
// write); the same store carries on against the promoted replica without
// being reopened, once that has a replica of its own (the old master
// rejoining), and a store waiting for no replica at once; every payment
// acknowledged is there afterwards.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	s := openOn(t, c.URL(), newPrefix(), Options{WaitReplicas: 1, WaitTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	victim, err := c.MasterOf(ctx, s.Prefix())
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var acked []string
	failed := 0
	// commit reports whether the store acknowledged payment i.
	commit := func(i int) bool {
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("tran-%d", i), t0)
		err := s.Commit(ctx, &qrswitch.Change{Payment: p})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			acked = append(acked, p.Key())
		case errors.Is(err, qrswitch.ErrUnavailable):
			failed++
		default:
			t.Errorf("Commit(%s) error = %v, want nil or ErrUnavailable", p.Key(), err)
		}
		return err == nil
	}
	next := 0
	for ; next < 50; next++ { // before the failover
		commit(next)
	}
	if len(acked) != 50 {
		t.Fatalf("%d of 50 commits acknowledged before the failover", len(acked))
	}

	// A second store on the same keys, whose client would re-read the slot
	// map by itself only after an hour.
	plain := openOn(t, c.URL(), s.Prefix(), Options{clusterReload: time.Hour})
	if err := plain.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	victim.Kill()
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		c.WaitOK() // the replica took over
		// A store that waits for no replica commits at once, though it
		// knew the slot map from before the failover: it reads it again
		// when the dead master does not answer.
		for i := 0; ctx.Err() == nil; i++ {
			p := payment(fmt.Sprintf("plain-%d", i), fmt.Sprintf("tran-plain-%d", i), t0)
			if err := plain.Commit(ctx, &qrswitch.Change{Payment: p}); err == nil {
				mu.Lock()
				acked = append(acked, p.Key())
				mu.Unlock()
				break
			}
			sleep(ctx, 10*time.Millisecond)
		}
		// With WaitReplicas 1 the new master acknowledges nothing until it
		// has a replica: the old master, back with its nodes.conf, rejoins
		// as one.
		victim.Restart()
		c.WaitOK()
	}()
	// Writers keep committing through the failover until the store has
	// acknowledged 50 payments whose commit started after the cluster said
	// it was ok again. A refused commit is tried again after a pause, as a
	// POS would.
	var wg sync.WaitGroup
	after := 0
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				done := after >= 50
				mu.Unlock()
				if done {
					return
				}
				isAfter := false
				select {
				case <-settled:
					isAfter = true
				default:
				}
				if !commit(i) {
					sleep(ctx, 10*time.Millisecond)
				} else if isAfter {
					mu.Lock()
					after++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the store did not carry on after the failover: %d acknowledged after it, %d refused", after, failed)
	}
	if now, err := c.MasterOf(ctx, s.Prefix()); err != nil || now == victim {
		t.Fatalf("the slot's master after the failover: %v, %v; want the promoted replica", now, err)
	}
	for _, key := range acked {
		if _, err := s.Payment(ctx, key); err != nil {
			t.Errorf("acknowledged payment %s after the failover: %v", key, err)
		}
	}
	t.Logf("%d payments acknowledged (%d after the failover), %d refused while the slot had no master", len(acked), after, failed)
}

// TestClusterManualFailover: after an operator's CLUSTER FAILOVER the old
// master answers MOVED; a read or a commit is refused before it runs, so the
// store re-reads the slot map and sends it again: it succeeds, once.
func TestClusterManualFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	s := openOn(t, c.URL(), newPrefix(), Options{clusterReload: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := payment("pay-1", "tran-1", t0)
	mustCommit(t, s, "before the failover", &qrswitch.Change{Payment: p})
	master, err := c.MasterOf(ctx, s.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	var replica *redistest.Server
	for _, n := range c.Nodes {
		if role, port, _, err := c.Role(ctx, n); err == nil && role == "slave" && port == master.Port {
			replica = n
		}
	}
	if replica == nil {
		t.Fatalf("no replica of %s", master.Addr())
	}
	c.Failover(replica)
	if now, err := c.MasterOf(ctx, s.Prefix()); err != nil || now != replica {
		t.Fatalf("the slot's master after CLUSTER FAILOVER = %v, %v; want %s", now, err, replica.Addr())
	}
	// A read is refused with MOVED too, and sent again to the new master.
	if got, err := s.Payment(ctx, p.Key()); err != nil || got.Version != 1 {
		t.Fatalf("Payment after the failover, through the old master's MOVED = %+v, %v; want version 1", got, err)
	}
	p.State = outcome.Forwarded
	mustCommit(t, s, "after the failover, through the old master's MOVED", &qrswitch.Change{Payment: p})
	if got, err := s.Payment(ctx, p.Key()); err != nil || got.Version != 2 || got.State != outcome.Forwarded {
		t.Errorf("Payment after the failover = %+v, %v; want version 2, FORWARDED", got, err)
	}
}

// TestClusterMoveSlot: the store's slot is moved to another master, key by
// key, while payments are committed and read. The scripts are sent with the
// prefix as their key, which no record ever is, so while the slot is
// migrating Redis answers ASK before running any of them: nothing runs on
// a node holding part of the slot, commits are refused whole
// (ErrUnavailable), and once the slot has its new owner the store follows
// the MOVED by itself. Every acknowledged payment is there afterwards, in
// its indexes.
func TestClusterMoveSlot(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	s := openOn(t, c.URL(), newPrefix(), Options{WaitReplicas: 1, WaitTimeout: 5 * time.Second, clusterReload: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var acked []*qrswitch.Payment
	refused := 0
	commit := func(ctx context.Context, i int) {
		t.Helper()
		p := payment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("tran-%d", i), t0.Add(time.Duration(i)*time.Second))
		switch err := s.Commit(ctx, &qrswitch.Change{Payment: p}); {
		case err == nil:
			acked = append(acked, p)
		case errors.Is(err, qrswitch.ErrUnavailable):
			refused++
		default:
			t.Errorf("Commit(%s) error = %v, want nil or ErrUnavailable", p.Key(), err)
		}
	}
	next := 0
	for ; next < 20; next++ {
		commit(ctx, next)
	}
	from, err := c.MasterOf(ctx, s.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	var to *redistest.Server
	for _, n := range c.Nodes {
		if role, _, _, err := c.Role(ctx, n); err == nil && role == "master" && n != from {
			to = n
		}
	}
	steps := 0
	c.MoveSlot(ctx, s.Prefix(), to, func() {
		steps++
		// A commit refused with ASK is sent again for a while (runCommit),
		// in case the move ends; this one gives up sooner.
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		commit(short, next)
		cancel()
		next++
		if _, err := s.Payment(ctx, acked[0].Key()); err != nil && !errors.Is(err, qrswitch.ErrUnavailable) {
			t.Errorf("Payment(%s) while the slot moves = %v, want it or ErrUnavailable", acked[0].Key(), err)
		}
	})
	if steps < 3 {
		t.Fatalf("the slot moved in %d steps; the test wants the store at work while it is half moved", steps)
	}
	if now, err := c.MasterOf(ctx, s.Prefix()); err != nil || now != to {
		t.Fatalf("the slot's master after the move = %v, %v; want %s", now, err, to.Addr())
	}
	for end := next + 20; next < end; next++ {
		commit(ctx, next)
	}
	if refused > steps {
		t.Errorf("%d commits refused, more than the %d made while the slot moved", refused, steps)
	}
	first := acked[0]
	first.State = outcome.Forwarded
	mustCommit(t, s, "an update after the move", &qrswitch.Change{Payment: first})
	found, err := s.Search(ctx, qrswitch.Query{RetailerID: "shop-1", Limit: 500})
	if err != nil || len(found) != len(acked) {
		t.Fatalf("Search after the move = %d payments, %v; want the %d acknowledged", len(found), err, len(acked))
	}
	for _, p := range acked {
		if got, err := s.Payment(ctx, p.Key()); err != nil || got.Version != p.Version {
			t.Errorf("Payment(%s) after the move = %+v, %v; want version %d", p.Key(), got, err, p.Version)
		}
	}
	t.Logf("slot moved in %d steps: %d payments acknowledged, %d refused while it moved", steps, len(acked), refused)
}
