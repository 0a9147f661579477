package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Shards (Redis Cluster, shards=N above 1; see the package comment).
//
// A shard is one hash slot holding a whole copy of the key layout under its
// own prefix ("{qrs.7}:"), and every script runs in one shard, as it runs
// in the one slot of an unsharded store. A retailer's QR codes, payments,
// their advices and traces, and the rails' records created with them
// (partners.Record.Retailer), are in the shard of the retailer's id (its
// text up to the first '/', the separator of payment keys), so every
// Commit the engine makes stays one script. The home slot (the unsharded
// prefix, "{qrs}:") holds what is not a retailer's: partner controls and
// their audit trails, rails' records of no retailer, the shard count and
// the wake-up channel.
//
// Records are found by what their keys name: a payment key and an advice
// key sent by a retailer name the retailer. A tranId names no retailer, so
// the engine asks for tranIds the store can place (NewTranID: a random id
// whose hash falls in the retailer's shard); a QR code is read first in the
// shard its tranId hashes to, which is always right for such an id, and
// otherwise looked for in every shard. An advice the switch sent itself
// (sender "switch") is found the same way, in every shard, and its shard
// remembered. Searches, lookups, claims, orphans, queue statistics and the
// janitor visit every shard.

// shard is one slot of the store: its key prefix, and the key every script
// is sent with (the prefix: its hash tag places the script).
type shard struct {
	prefix string
	route  []string
}

func newShard(prefix string) *shard { return &shard{prefix: prefix, route: []string{prefix}} }

func (sh *shard) key(parts ...string) string { return sh.prefix + strings.Join(parts, "") }

// shardPrefix returns the prefix of shard i of a cluster prefix, whose
// first hash tag it extends: "{qrs}:" becomes "{qrs.i}:".
func shardPrefix(home string, i int) string {
	open := strings.IndexByte(home, '{')
	end := open + strings.IndexByte(home[open:], '}')
	return home[:end] + "." + strconv.Itoa(i) + home[end:]
}

// MaxShards bounds shards=N: every shard costs each fan-out (a search, a
// claim, the janitor) a script.
const MaxShards = 1024

// hash32 is 32-bit FNV-1a (hash/fnv's, without its allocation: NewTranID
// hashes about N candidates).
func hash32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// group returns the shard of a retailer's records.
func (s *Store) group(retailerID string) *shard {
	if len(s.shards) == 1 {
		return s.shards[0]
	}
	ret, _, _ := strings.Cut(retailerID, "/")
	return s.shards[hash32(ret)%uint32(len(s.shards))]
}

// paymentShard returns the shard of the payment key RETAILER/REQUESTID.
func (s *Store) paymentShard(key string) *shard { return s.group(key) }

// idShard returns the shard an id (a tranId) hashes to: where NewTranID's
// ids are.
func (s *Store) idShard(id string) *shard {
	return s.shards[hash32(id)%uint32(len(s.shards))]
}

// NewTranID returns a random tranId (32 hex digits, as the engine's) that
// hashes to the shard of the retailer's records, so that reading its QR
// code takes one round trip. It varies the last four digits of one random
// id: with N shards about N tries, each a hash of 32 bytes.
func (s *Store) NewTranID(retailerID string) string {
	id := []byte(strings.ReplaceAll(wire.NewID(), "-", ""))
	if len(s.shards) == 1 {
		return string(id)
	}
	want := s.group(retailerID)
	const hexdigits = "0123456789abcdef"
	for n := 0; n < 1<<16; n++ {
		for j := range 4 {
			id[len(id)-1-j] = hexdigits[(n>>(4*j))&0xf]
		}
		if s.idShard(string(id)) == want {
			return string(id)
		}
	}
	return string(id) // not reached with MaxShards shards; the id is still unique
}

// adviceShard returns the shard of an advice key SENDER/ID when the sender
// is a retailer, or nil for the switch's own advices (found by looking).
func (s *Store) adviceShard(key string) *shard {
	sender, _, _ := strings.Cut(key, "/")
	if len(s.shards) > 1 && sender == qrswitch.SwitchSender {
		return nil
	}
	return s.group(sender)
}

// traceShard returns the shard of a trace key: a payment's, a QR code's
// ("qr/TRANID", with its code), or a partner's audit trail (home).
func (s *Store) traceShard(ctx context.Context, key string) (*shard, error) {
	if len(s.shards) == 1 {
		return s.shards[0], nil
	}
	switch kind, rest, _ := strings.Cut(key, "/"); kind {
	case "partner":
		return s.home, nil
	case "qr":
		return s.qrShard(ctx, rest)
	}
	return s.paymentShard(key), nil
}

// adviceOwnerShard returns the shard of what an advice belongs to (its
// PaymentKey): a payment's, or for an advice issued with a QR code (key
// "qr/TRANID": a rail's notification to the customer's provider, made
// with the code's offer) the code's — its retailer's shard when the code
// is in the same Change, else the shard holding it.
func (s *Store) adviceOwnerShard(ctx context.Context, c *qrswitch.Change, key string) (*shard, error) {
	if tran, ok := strings.CutPrefix(key, "qr/"); ok && len(s.shards) > 1 {
		if c != nil && c.QR != nil && c.QR.TranID == tran {
			return s.group(c.QR.RetailerID), nil
		}
		return s.qrShard(ctx, tran)
	}
	return s.paymentShard(key), nil
}

// qrShard returns the shard holding the QR code with the tranId: the one
// the id hashes to if the code is there, else the one holding it, else (no
// such code) the one it hashes to.
func (s *Store) qrShard(ctx context.Context, tranID string) (*shard, error) {
	if sh, ok := s.placed.get("qr:" + tranID); ok {
		return sh, nil
	}
	first := s.idShard(tranID)
	n, err := s.c.Exists(withOp(ctx, opQR), first.key("qr:", tranID)).Result()
	if err != nil || n == 1 {
		return first, wrapUnavailable("finding qr code "+tranID, err)
	}
	sh, err := s.elsewhere(ctx, opQR, "qr:"+tranID, first)
	if err != nil || sh == nil {
		return first, err
	}
	return sh, nil
}

// elsewhere returns the shard other than except in which the record key
// (kind:KEY) exists, or nil, looking in all of them in one pipeline. A
// found place is remembered: records never move between shards.
func (s *Store) elsewhere(ctx context.Context, o op, rec string, except *shard) (*shard, error) {
	ctx = withOp(ctx, o)
	cmds := make([]*redis.IntCmd, len(s.shards))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sh := range s.shards {
			if sh != except {
				cmds[i] = p.Exists(ctx, sh.key(rec))
			}
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("finding "+rec, err)
	}
	for i, c := range cmds {
		if c != nil && c.Val() == 1 {
			s.placed.put(rec, s.shards[i])
			return s.shards[i], nil
		}
	}
	return nil, nil
}

// wrapUnavailable is unavailable, or nil for no error.
func wrapUnavailable(doing string, err error) error {
	if err == nil {
		return nil
	}
	return unavailable(doing, err)
}

// placement remembers the shard of records whose key does not name it (a
// bounded map, emptied when full: a forgotten place costs one search).
type placement struct {
	mu sync.Mutex
	m  map[string]*shard
}

const placementMax = 1 << 16

func (p *placement) get(k string) (*shard, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sh, ok := p.m[k]
	return sh, ok
}

func (p *placement) put(k string, sh *shard) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= placementMax {
		p.m = make(map[string]*shard)
	}
	p.m[k] = sh
}

// recordShard returns the shard of a rail's record: its retailer's, or
// the home slot for one created with no retailer's records.
func (s *Store) recordShard(r *partners.Record) *shard {
	if r.Retailer == "" || len(s.shards) == 1 {
		return s.home
	}
	return s.group(r.Retailer)
}

// changeShard returns the shard a Change is committed in, and refuses one
// whose parts are in different shards (ErrSharded): a rail's records or a
// partner control with a retailer's records, or two retailers' records.
func (s *Store) changeShard(ctx context.Context, c *qrswitch.Change, traceKey string) (*shard, error) {
	if len(s.shards) == 1 {
		return s.shards[0], nil
	}
	// Each part names its shard; the names are only spelt out to refuse.
	type part struct {
		sh        *shard
		what, key string
	}
	var at *part
	var err error
	pick := func(sh *shard, what, key string) {
		switch {
		case err != nil:
		case at == nil:
			at = &part{sh, what, key}
		case sh != at.sh:
			err = fmt.Errorf("committing: the change spans shards of the store (shards=%d): %s %s and %s %s: %w",
				len(s.shards), at.what, at.key, what, key, qrswitch.ErrSharded)
		}
	}
	if c.QR != nil {
		pick(s.group(c.QR.RetailerID), "qr code", c.QR.TranID)
	}
	if c.Payment != nil {
		pick(s.paymentShard(c.Payment.Key()), "payment", c.Payment.Key())
	}
	for _, a := range c.Advices {
		sh, ferr := s.adviceOwnerShard(ctx, c, a.PaymentKey)
		if ferr != nil {
			return nil, ferr
		}
		pick(sh, "advice", a.Key())
		if sh := s.adviceShard(a.Key()); sh != nil {
			// Read by its key alone, it is looked for in its sender's
			// shard only (an advice id is usually new: looking in every
			// shard for it would cost each advice a fan-out).
			pick(sh, "advice sender", a.Sender)
		}
	}
	if c.Control != nil {
		pick(s.home, "partner control", c.Control.Destination)
	}
	for _, r := range c.Records {
		pick(s.recordShard(r), "record", recordKey(r))
	}
	if len(c.Trace) > 0 && err == nil {
		var sh *shard
		if tran, ok := strings.CutPrefix(traceKey, "qr/"); ok && c.QR != nil && c.QR.TranID == tran {
			sh = s.group(c.QR.RetailerID)
		} else if sh, err = s.traceShard(ctx, traceKey); err != nil {
			return nil, err
		}
		pick(sh, "trace", traceKey)
	}
	switch {
	case err != nil:
		return nil, err
	case at == nil: // nothing to write (Commit does not ask)
		return s.home, nil
	}
	return at.sh, nil
}

// checkShards records the shard count of a cluster store in its home slot
// the first time it is opened, and refuses to open it with another count:
// moving records between shards is a migration, not a setting.
func (s *Store) checkShards(ctx context.Context) error {
	if s.cluster == nil {
		return nil
	}
	ctx = withOp(ctx, opPing)
	k := s.home.key("shards")
	n := strconv.Itoa(len(s.shards))
	v, err := s.c.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		if len(s.shards) > 1 {
			// A store written before shards has no count, and its records
			// are in the home slot, where a sharded store would not see them.
			old, err := s.c.Exists(ctx, s.home.key("pc"), s.home.key("ac")).Result()
			if err != nil {
				return unavailable("reading the store's shard count", err)
			}
			if old > 0 {
				return fmt.Errorf("store url: shards=%s, but the store under this prefix was written unsharded (moving records between shards is a migration)", n)
			}
		}
		if err := s.c.SetNX(ctx, k, n, 0).Err(); err != nil {
			return unavailable("recording the store's shard count", err)
		}
		v, err = s.c.Get(ctx, k).Result() // another process may have been first
	}
	if err != nil {
		return unavailable("reading the store's shard count", err)
	}
	if v != n {
		return fmt.Errorf("store url: shards=%s, but the store under this prefix has %s shards (moving records between shards is a migration)", n, v)
	}
	return nil
}

// ShardPrefix returns the key prefix of the shard holding a retailer's
// records (the store's prefix when it is unsharded): its hash tag names the
// slot, and so the master, that serves the retailer.
func (s *Store) ShardPrefix(retailerID string) string { return s.group(retailerID).prefix }
