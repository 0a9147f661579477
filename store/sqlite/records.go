package sqlite

import (
	"sync"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// recordCache keeps decoded copies of the records this store committed or
// leased most recently, so that reads of payments in flight — the engine
// reads each several times — skip SQLite and JSON decoding. It is exact
// because this store is its file's only writer (the lock keeps others out):
// every change passes through Commit or ClaimAdvices, which put the new
// version before the committing callers are answered. Reads hand out
// clones, so no caller can change what another reads.
type recordCache struct {
	mu       sync.RWMutex
	cur, old map[string]cachedRecord
}

type cachedRecord struct {
	version int64
	rec     any // *qrswitch.QRCode, *qrswitch.Payment or *qrswitch.Advice, never handed out
}

// recordCacheSize bounds each of the two generations: about the records of
// the payments of the last minute at a few hundred flows per second.
const recordCacheSize = 32768

func newRecordCache() *recordCache {
	return &recordCache{cur: make(map[string]cachedRecord)}
}

func (c *recordCache) get(key string) (any, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if r, ok := c.cur[key]; ok {
		return r.rec, true
	}
	r, ok := c.old[key]
	return r.rec, ok
}

func (c *recordCache) put(key string, version int64, rec any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, version, rec)
}

// putLocked is put with c.mu held.
func (c *recordCache) putLocked(key string, version int64, rec any) {
	if r, ok := c.cur[key]; ok && r.version >= version {
		return
	}
	if r, ok := c.old[key]; ok && r.version >= version {
		return
	}
	if len(c.cur) >= recordCacheSize {
		c.old, c.cur = c.cur, make(map[string]cachedRecord, recordCacheSize)
	}
	c.cur[key] = cachedRecord{version: version, rec: rec}
}

// putCommitted caches the records of a Change just committed, at their new
// versions (the caller's Versions are still the old ones: Commit raises
// them once the writer answers). They go in under one lock, as they were
// committed in one transaction: a reader never sees a payment's new state
// beside its advice's old one.
func (c *recordCache) putCommitted(ch *qrswitch.Change) {
	var q *qrswitch.QRCode
	if ch.QR != nil {
		q = ch.QR.Clone()
		q.Version++
	}
	var p *qrswitch.Payment
	if ch.Payment != nil {
		p = ch.Payment.Clone()
		p.Version++
	}
	as := make([]*qrswitch.Advice, len(ch.Advices))
	for i, a := range ch.Advices {
		as[i] = a.Clone()
		as[i].Version++
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if q != nil {
		c.putLocked("q"+q.TranID, q.Version, q)
	}
	if p != nil {
		c.putLocked("p"+p.Key(), p.Version, p)
	}
	for _, b := range as {
		c.putLocked("a"+b.Key(), b.Version, b)
	}
}

func (c *recordCache) putAdvice(a *qrswitch.Advice) {
	c.put("a"+a.Key(), a.Version, a.Clone())
}

func (c *recordCache) qr(tranID string) (*qrswitch.QRCode, bool) {
	r, ok := c.get("q" + tranID)
	if !ok {
		return nil, false
	}
	return r.(*qrswitch.QRCode).Clone(), true
}

func (c *recordCache) payment(key string) (*qrswitch.Payment, bool) {
	r, ok := c.get("p" + key)
	if !ok {
		return nil, false
	}
	return r.(*qrswitch.Payment).Clone(), true
}

func (c *recordCache) advice(key string) (*qrswitch.Advice, bool) {
	r, ok := c.get("a" + key)
	if !ok {
		return nil, false
	}
	return r.(*qrswitch.Advice).Clone(), true
}
