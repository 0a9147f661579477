package httpapi

import (
	"container/list"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// throttle slows password guessing without letting a guesser lock anyone
// out. It counts failed attempts per (source, username) pair and per source
// across usernames; past a number of free failures, each further failure
// locks the pair (or the source) for twice as long as the last, up to a
// cap. Nothing is counted per username alone: that is what let anyone who
// reaches the port lock a shop's tills out with ten wrong passwords. A
// source is an IPv4 address or an IPv6 /64 (one host usually holds a whole
// /64, so counting single IPv6 addresses would give it 2^64 sources).
//
// An attempt that needs bcrypt is counted as a failure before the hash is
// compared and forgiven when the password proves right, so parallel
// guesses cannot all slip in before the first one is counted. The table is
// a bounded LRU: a flood of distinct sources or usernames evicts the least
// recently seen entries instead of growing memory.
type throttle struct {
	free, sourceFree int           // failures before the first lock
	base, maxDelay   time.Duration // first lock, and the cap
	forget           time.Duration // failures are forgotten this long after the last failure or lock
	size             int

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     list.List // of *tally, most recently seen first
}

type tally struct {
	key      string
	failures int
	last     time.Time // the last failure
	until    time.Time // locked until
}

func newThrottle(free, sourceFree int, base, maxDelay, forget time.Duration, size int) *throttle {
	return &throttle{free: free, sourceFree: sourceFree, base: base, maxDelay: maxDelay, forget: forget, size: size,
		entries: make(map[string]*list.Element)}
}

// keys returns the table keys of a source and of a (source, username) pair.
// The username is hashed so that an entry's size does not depend on what a
// client sends.
func keys(username, remote string) (source, pair string) {
	source = "s" + sourceOf(remote)
	h := sha256.Sum256([]byte(username))
	return source, "p" + source[1:] + "\x00" + string(h[:16])
}

// sourceOf maps a client address to the source it is counted under.
func sourceOf(remote string) string {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return remote
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// attempt is called before a password is compared with bcrypt. When the
// pair or the source is locked it returns how long the client must wait and
// counts nothing; otherwise it counts a failure, which proved forgives.
func (t *throttle) attempt(source, pair string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if wait := t.waitLocked(source, pair, now); wait > 0 {
		return wait
	}
	t.fail(t.get(source, now), t.sourceFree, now)
	t.fail(t.get(pair, now), t.free, now)
	return 0
}

// wait returns how long the pair or the source is locked, or 0.
func (t *throttle) wait(source, pair string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waitLocked(source, pair, now)
}

func (t *throttle) waitLocked(source, pair string, now time.Time) time.Duration {
	var wait time.Duration
	for _, k := range [2]string{source, pair} {
		if e, ok := t.entries[k]; ok {
			t.lru.MoveToFront(e)
			wait = max(wait, e.Value.(*tally).until.Sub(now))
		}
	}
	return wait
}

// proved records a password that proved right: the pair starts afresh, and
// when attempt counted it (counted), the source's failure is forgiven.
func (t *throttle) proved(source, pair string, counted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[pair]; ok {
		t.lru.Remove(e)
		delete(t.entries, pair)
	}
	if e, ok := t.entries[source]; ok && counted {
		s := e.Value.(*tally)
		s.failures = max(s.failures-1, 0)
		if s.failures < t.sourceFree {
			s.until = time.Time{}
		} else {
			s.until = s.last.Add(t.delay(s.failures, t.sourceFree))
		}
	}
}

// get returns the entry for key, made fresh when missing or forgotten,
// evicting the least recently seen entry when the table is full.
func (t *throttle) get(key string, now time.Time) *tally {
	if e, ok := t.entries[key]; ok {
		t.lru.MoveToFront(e)
		c := e.Value.(*tally)
		if now.Sub(later(c.last, c.until)) >= t.forget {
			*c = tally{key: key}
		}
		return c
	}
	if len(t.entries) >= t.size {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.entries, old.Value.(*tally).key)
	}
	c := &tally{key: key}
	t.entries[key] = t.lru.PushFront(c)
	return c
}

// fail counts a failure on c and locks it once free failures are spent.
func (t *throttle) fail(c *tally, free int, now time.Time) {
	c.failures++
	c.last = now
	if c.failures >= free {
		c.until = now.Add(t.delay(c.failures, free))
	}
}

// delay is the lock after the n-th failure: base, doubled for every failure
// past the free ones, at most maxDelay.
func (t *throttle) delay(n, free int) time.Duration {
	d := t.base
	for i := free; i < n && d < t.maxDelay; i++ {
		d *= 2
	}
	return min(d, t.maxDelay)
}

// len returns the number of entries in the table.
func (t *throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
