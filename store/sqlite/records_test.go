package sqlite

import (
	"sync"
	"testing"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// TestRecordCacheChangeIsAtomic: the records of one committed Change
// appear to readers together. A payment and its advice committed at
// version n in one Change: a reader that sees the payment at n must then
// see the advice at n or later (a reader once saw a payment REVERSED beside
// its reversal advice still leased).
func TestRecordCacheChangeIsAtomic(t *testing.T) {
	c := newRecordCache()
	p := &qrswitch.Payment{RetailerID: "shop", RequestID: "r1"}
	a := &qrswitch.Advice{Sender: "shop", ID: "a1", PaymentKey: p.Key()}
	const commits = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := range int64(commits) {
			p.Version, a.Version = n, n
			c.putCommitted(&qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}})
		}
	}()
	reads, done := 0, false
	for !done {
		gp, ok := c.payment(p.Key())
		if !ok {
			continue
		}
		ga, ok := c.advice(a.Key())
		if !ok || ga.Version < gp.Version {
			t.Fatalf("read payment at version %d, then advice at %v (found %v): want the advice at %d or later", gp.Version, ga, ok, gp.Version)
		}
		reads++
		done = gp.Version == commits
	}
	wg.Wait()
	if reads == 0 {
		t.Fatal("no read saw a commit")
	}
}
