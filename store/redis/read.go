package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Every read decodes the stored JSON into new records, so what it returns is
// the caller's to keep and change.

// QR returns the QR code with the tranId, or ErrNotFound. A sharded store
// reads it where the tranId hashes to, and otherwise looks in every shard.
func (s *Store) QR(ctx context.Context, tranID string) (*qrswitch.QRCode, error) {
	sh, ok := s.placed.get("qr:" + tranID)
	if !ok {
		sh = s.idShard(tranID)
	}
	vals, err := s.hmgetFound(ctx, sh, opQR, "qr code", "qr:", tranID, qrFields)
	if err != nil {
		return nil, err
	}
	return decodeQR(vals)
}

// Payment returns the payment with the key, or ErrNotFound.
func (s *Store) Payment(ctx context.Context, key string) (*qrswitch.Payment, error) {
	vals, err := s.hmget(ctx, s.paymentShard(key), opPayment, "payment", "pay:", key, paymentFields)
	if err != nil {
		return nil, err
	}
	return decodePayment(vals)
}

// Advice returns the advice with the key, or ErrNotFound. A retailer's
// advice is in its shard; one the switch sent itself is looked for in every
// shard of a sharded store, unless this process knows where it is.
func (s *Store) Advice(ctx context.Context, key string) (*qrswitch.Advice, error) {
	var vals []any
	var err error
	if sh := s.adviceShard(key); sh != nil {
		vals, err = s.hmget(ctx, sh, opAdvice, "advice", "adv:", key, adviceFields)
	} else {
		sh, _ = s.placed.get("adv:" + key)
		vals, err = s.hmgetFound(ctx, sh, opAdvice, "advice", "adv:", key, adviceFields)
	}
	if err != nil {
		return nil, err
	}
	return decodeAdvice(vals)
}

// hmgetFound reads a record from shard sh, or, when it is not there (or sh
// is nil) and the store is sharded, from the shard that holds it.
func (s *Store) hmgetFound(ctx context.Context, sh *shard, o op, record, kind, key string, fields []string) ([]any, error) {
	if sh != nil {
		vals, err := s.hmget(ctx, sh, o, record, kind, key, fields)
		if len(s.shards) == 1 || !errors.Is(err, qrswitch.ErrNotFound) {
			return vals, err
		}
	}
	at, err := s.elsewhere(ctx, o, kind+key, sh)
	switch {
	case err != nil:
		return nil, err
	case at == nil:
		return nil, fmt.Errorf("%s %s: %w", record, key, qrswitch.ErrNotFound)
	}
	return s.hmget(ctx, at, o, record, kind, key, fields)
}

func (s *Store) hmget(ctx context.Context, sh *shard, o op, record, kind, key string, fields []string) ([]any, error) {
	vals, err := s.c.HMGet(withOp(ctx, o), sh.key(kind, key), fields...).Result()
	switch {
	case err != nil:
		return nil, unavailable("reading "+record+" "+key, err)
	case len(vals) == 0 || vals[0] == nil:
		return nil, fmt.Errorf("%s %s: %w", record, key, qrswitch.ErrNotFound)
	}
	return vals, nil
}

// Trace returns the trace of a payment in the order it was appended; an
// unknown payment has an empty trace.
func (s *Store) Trace(ctx context.Context, paymentKey string) ([]qrswitch.TraceEntry, error) {
	ctx = withOp(ctx, opTrace)
	sh, err := s.traceShard(ctx, paymentKey)
	if err != nil {
		return nil, err
	}
	raw, err := s.c.LRange(ctx, sh.key("tr:", paymentKey), 0, -1).Result()
	if err != nil {
		return nil, unavailable("reading trace", err)
	}
	out := make([]qrswitch.TraceEntry, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, fmt.Errorf("reading trace: decoding: %w", err)
		}
	}
	return out, nil
}

// Query limits (see qrswitch.Query and qrswitch.AdviceQuery).
const (
	defaultLimit = 50
	maxLimit     = 500
	// lookupLimit bounds what Lookup takes from each index: an rrn or a
	// request id shared by more payments than this names none in particular.
	lookupLimit = 500
	// walkBudget is how many index entries one walk script looks at before
	// it hands back a cursor.
	walkBudget = 1000
)

func limit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

// A walk pages through one index, the candidate with the fewest entries in
// the score range, and returns the records that pass every filter. See
// walkSrc.
type walk struct {
	rec         string // "pay:" or "adv:"
	newestFirst bool
	from, to    int64    // scores: where the walk starts and where it stops (inclusive)
	cands       []string // keys after the shard's prefix
	fetch       []string
	filters     [][]any
	limit       int
}

func (w *walk) eq(field, value string) {
	if value != "" {
		w.filters = append(w.filters, []any{"eq", field, value})
	}
}

// timeFilter keeps records whose time (fields us, ns) is at or after t
// (kind "tge") or before it ("tlt").
func (w *walk) timeFilter(kind, us, ns string, t time.Time) {
	u, n := micros(t)
	w.filters = append(w.filters, []any{kind, us, ns, itoa(u), itoa(n)})
}

func (s *Store) walk(ctx context.Context, sh *shard, o op, doing string, w walk, each func(vals []any) error) error {
	ctx = withOp(ctx, o)
	cands, from, skip := make([]string, len(w.cands)), w.from, int64(0)
	for i, c := range w.cands {
		cands[i] = sh.key(c)
	}
	found := 0
	for found < w.limit {
		args := []any{sh.prefix, w.rec, flag(w.newestFirst), itoa(from), itoa(w.to), skip, w.limit - found, walkBudget, len(cands)}
		args = append(args, anys(cands)...)
		args = append(args, len(w.fetch))
		args = append(args, anys(w.fetch)...)
		args = append(args, len(w.filters))
		for _, f := range w.filters {
			args = append(args, f...)
		}
		res, err := walkScript.Run(ctx, s.c, sh.route, args...).Slice()
		if err != nil {
			return unavailable(doing, err)
		}
		if len(res) < 4 {
			return fmt.Errorf("%s: unexpected reply %v", doing, res)
		}
		driver, _ := str(res[0])
		cur, err1 := num(res[1])
		next, err2 := num(res[2])
		done, err3 := num(res[3])
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("%s: unexpected cursor %v", doing, res[:4])
		}
		for vals := res[4:]; len(vals) >= len(w.fetch); vals = vals[len(w.fetch):] {
			if err := each(vals[:len(w.fetch)]); err != nil {
				return fmt.Errorf("%s: %w", doing, err)
			}
			found++
		}
		if done == 1 {
			return nil
		}
		cands, from, skip = []string{driver}, cur, next
	}
	return nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// PaymentAdvices returns every advice of a payment, oldest first.
func (s *Store) PaymentAdvices(ctx context.Context, paymentKey string) ([]*qrswitch.Advice, error) {
	out := []*qrswitch.Advice{}
	w := walk{rec: "adv:", from: -maxMicros, to: maxMicros, cands: []string{"a:pay:" + paymentKey},
		fetch: adviceFields, limit: math.MaxInt32}
	sh, err := s.adviceOwnerShard(ctx, nil, paymentKey)
	if err != nil {
		return nil, err
	}
	err = s.walk(ctx, sh, opPaymentAdvices, "reading advices", w, func(vals []any) error {
		a, err := decodeAdvice(vals)
		out = append(out, a)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Lookup returns the payments that id names: a payment key, a payment
// request id of any retailer, a tranId, an rrn, or an advice id of any
// sender. Newest first (by CreatedAt, then key).
func (s *Store) Lookup(ctx context.Context, id string) ([]*qrswitch.Payment, error) {
	out := []*qrswitch.Payment{}
	if id == "" {
		return out, nil
	}
	out, err := gather(s.shards, func(sh *shard) ([]*qrswitch.Payment, error) {
		res, err := lookupScript.Run(withOp(ctx, opLookup), s.c, sh.route, sh.prefix, id, lookupLimit).Slice()
		if err != nil {
			return nil, unavailable("looking up payments", err)
		}
		var ps []*qrswitch.Payment
		for i := 0; i+2 <= len(res); i += 2 {
			p, err := decodePayment(res[i : i+2])
			if err != nil {
				return nil, fmt.Errorf("looking up payments: %w", err)
			}
			ps = append(ps, p)
		}
		return ps, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, newestFirst)
	return out, nil
}

// newestFirst orders payments as Search returns them: by CreatedAt to the
// microsecond (the indexes' score), then by key, both descending.
func newestFirst(a, b *qrswitch.Payment) int {
	au, _ := micros(a.CreatedAt)
	bu, _ := micros(b.CreatedAt)
	if c := cmp.Compare(bu, au); c != 0 {
		return c
	}
	return strings.Compare(b.Key(), a.Key())
}

// gather calls fn for each of shards at once and returns what they all
// found (never nil), or the first error.
func gather[T any](shards []*shard, fn func(sh *shard) ([]T, error)) ([]T, error) {
	parts, errs := make([][]T, len(shards)), make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		if len(shards) == 1 {
			parts[i], errs[i] = fn(sh) // no goroutine for the common case
			break
		}
		wg.Go(func() { parts[i], errs[i] = fn(sh) })
	}
	wg.Wait()
	if err := cmp.Or(errs...); err != nil {
		return nil, err
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]T, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// walkShards runs w in each of shards (at once) and returns what they
// found in the order less gives, up to w.limit: each shard returns its
// first w.limit in that order, so the merge is exact.
func walkShards[T any](s *Store, ctx context.Context, shards []*shard, o op, doing string, w walk,
	decode func([]any) (T, error), less func(a, b T) int) ([]T, error) {
	out, err := gather(shards, func(sh *shard) ([]T, error) {
		var found []T
		err := s.walk(ctx, sh, o, doing, w, func(vals []any) error {
			r, err := decode(vals)
			found = append(found, r)
			return err
		})
		return found, err
	})
	if err != nil {
		return nil, err
	}
	if len(shards) > 1 {
		slices.SortStableFunc(out, less)
		out = out[:min(len(out), w.limit)]
	}
	return out, nil
}

// Search returns payments matching q, newest first. From is inclusive, To
// and Before exclusive; MinAmount and MaxAmount are inclusive and leave out
// payments without a request amount. Payments created in the same
// microsecond come by key, descending, and a page that ends among them is
// continued with BeforeKey exactly where it ended. On a sharded store a
// search for one retailer reads its shard; any other reads every shard.
func (s *Store) Search(ctx context.Context, q qrswitch.Query) ([]*qrswitch.Payment, error) {
	w := walk{rec: "pay:", newestFirst: true, from: maxMicros, to: -maxMicros, fetch: paymentFields, limit: limit(q.Limit)}
	for _, f := range []struct{ field, value string }{
		{"ret", q.RetailerID}, {"req", q.RequestID}, {"part", q.PartnerID}, {"mer", q.MerchantID}, {"ter", q.TerminalID},
		{"st", string(q.State)}, {"out", q.Outcome}, {"tran", q.TranID}, {"rrn", q.Rrn}, {"stan", q.Stan},
	} {
		if f.value != "" {
			w.cands = append(w.cands, "p:"+f.field+":"+f.value)
			w.eq(f.field, f.value)
		}
	}
	if len(w.cands) == 0 {
		w.cands = []string{"pc"}
	}
	if q.MinAmount != 0 || q.MaxAmount != 0 {
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if q.MinAmount != 0 {
			lo = q.MinAmount
		}
		if q.MaxAmount != 0 {
			hi = q.MaxAmount
		}
		w.filters = append(w.filters, []any{"rng", "amt", itoa(lo), itoa(hi)})
	}
	if !q.From.IsZero() {
		w.to, _ = micros(q.From)
		w.timeFilter("tge", "cu", "cr", q.From)
	}
	if !q.To.IsZero() {
		w.from, _ = micros(q.To)
		w.timeFilter("tlt", "cu", "cr", q.To)
	}
	if !q.Before.IsZero() {
		us, _ := micros(q.Before)
		w.from = min(w.from, us)
		if q.BeforeKey != "" {
			w.filters = append(w.filters, []any{"kb", "cu", itoa(us), q.BeforeKey})
		} else {
			w.timeFilter("tlt", "cu", "cr", q.Before)
		}
	}
	shards := s.shards
	if q.RetailerID != "" {
		shards = []*shard{s.group(q.RetailerID)}
	}
	return walkShards(s, ctx, shards, opSearch, "searching payments", w, decodePayment, newestFirst)
}

// ListAdvices returns advices matching q, oldest first (by CreatedAt).
func (s *Store) ListAdvices(ctx context.Context, q qrswitch.AdviceQuery) ([]*qrswitch.Advice, error) {
	w := walk{rec: "adv:", from: -maxMicros, to: maxMicros, fetch: adviceFields, limit: limit(q.Limit)}
	if q.Destination != "" {
		w.cands = append(w.cands, "a:part:"+q.Destination)
		w.eq("part", q.Destination)
	}
	if q.State != "" {
		w.cands = append(w.cands, "a:st:"+string(q.State))
		w.eq("st", string(q.State))
	}
	if q.Leased {
		w.cands = append(w.cands, "a:leased")
		w.filters = append(w.filters, []any{"ne", "lu", zeroScore})
	}
	if len(w.cands) == 0 {
		w.cands = []string{"ac"}
	}
	return walkShards(s, ctx, s.shards, opListAdvices, "listing advices", w, decodeAdvice, func(a, b *qrswitch.Advice) int {
		au, _ := micros(a.CreatedAt)
		bu, _ := micros(b.CreatedAt)
		return cmp.Or(cmp.Compare(au, bu), strings.Compare(a.Key(), b.Key()))
	})
}

// QueueStats reads a partner's queue statistics in one script per shard:
// counts of the queue's sorted sets, their first entries, and the attempts
// of the QueueSample pending advices queued longest. QueuedAt and NextAt
// come back to the microsecond.
func (s *Store) QueueStats(ctx context.Context, partnerID string) (*qrswitch.QueueStats, error) {
	const doing = "reading queue statistics"
	parts, err := gather(s.shards, func(sh *shard) ([]shardStats, error) {
		res, err := statsScript.Run(withOp(ctx, opQueueStats), s.c, sh.route, sh.prefix, partnerID, qrswitch.QueueSample).Slice()
		if err != nil {
			return nil, unavailable(doing, err)
		}
		p, err := parseStats(res)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", doing, err)
		}
		return []shardStats{p}, nil
	})
	if err != nil {
		return nil, err
	}
	st := &qrswitch.QueueStats{Destination: partnerID, Attempts: map[int]int{}}
	var samples []sampled
	for _, p := range parts {
		st.Pending += int(p.counts[0])
		st.Held += int(p.counts[1])
		st.Dead += int(p.counts[2])
		st.Operator += int(p.counts[3])
		st.OldestQueuedAt = earliest(st.OldestQueuedAt, p.oldest)
		st.NextAt = earliest(st.NextAt, p.next)
		samples = append(samples, p.samples...)
	}
	// Each shard sampled its pending advices queued longest: merged by
	// QueuedAt, the first QueueSample are the store's.
	slices.SortStableFunc(samples, func(a, b sampled) int { return cmp.Compare(a.queued, b.queued) })
	for _, x := range samples[:min(len(samples), qrswitch.QueueSample)] {
		st.Attempts[int(x.attempts)]++
		st.Sampled++
	}
	return st, nil
}

// shardStats is one shard's reply to the stats script.
type shardStats struct {
	counts       [4]int64 // pending, held, dead, operator
	oldest, next time.Time
	samples      []sampled
}

// sampled is a pending advice's QueuedAt (µs) and attempts.
type sampled struct{ queued, attempts int64 }

func parseStats(res []any) (shardStats, error) {
	var p shardStats
	if len(res) < 6 || len(res)%2 != 0 {
		return p, fmt.Errorf("unexpected reply %v", res)
	}
	for i := range p.counts {
		n, err := num(res[i])
		if err != nil {
			return p, err
		}
		p.counts[i] = n
	}
	for i, t := range []*time.Time{&p.oldest, &p.next} {
		if v, _ := str(res[4+i]); v != "" {
			us, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return p, fmt.Errorf("score %q: %w", v, err)
			}
			*t = fromMicros(int64(us), 0)
		}
	}
	for i := 6; i+1 < len(res); i += 2 {
		v, _ := str(res[i])
		us, err1 := strconv.ParseFloat(v, 64)
		n, err2 := num(res[i+1])
		if err := errors.Join(err1, err2); err != nil {
			return p, fmt.Errorf("attempts: %w", err)
		}
		p.samples = append(p.samples, sampled{int64(us), n})
	}
	return p, nil
}

// earliest returns the earlier of two times, a zero one counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// QueueControl returns the control of a partner's queue, or ErrNotFound.
func (s *Store) QueueControl(ctx context.Context, partnerID string) (*qrswitch.QueueControl, error) {
	vals, err := s.hmget(ctx, s.home, opControls, "partner control", "ctl:", partnerID, []string{"d", "v"})
	if err != nil {
		return nil, err
	}
	return decodeControl(vals)
}

// QueueControls returns every partner control, by PartnerID.
func (s *Store) QueueControls(ctx context.Context) ([]*qrswitch.QueueControl, error) {
	res, err := controlsScript.Run(withOp(ctx, opControls), s.c, s.home.route, s.home.prefix).Slice()
	if err != nil {
		return nil, unavailable("reading partner controls", err)
	}
	out := make([]*qrswitch.QueueControl, 0, len(res)/2)
	for i := 0; i+2 <= len(res); i += 2 {
		c, err := decodeControl(res[i : i+2])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Orphans returns up to limit payments still AWAITING_SCAN or FORWARDED
// whose HoldUntil is before now, the longest orphaned first.
func (s *Store) Orphans(ctx context.Context, now time.Time, limit int) ([]*qrswitch.Payment, error) {
	if limit <= 0 {
		return []*qrswitch.Payment{}, nil
	}
	to, _ := micros(now)
	w := walk{rec: "pay:", from: -maxMicros, to: to, cands: []string{"held"}, fetch: paymentFields, limit: limit}
	w.timeFilter("tlt", "hu", "hr", now)
	return walkShards(s, ctx, s.shards, opOrphans, "finding orphans", w, decodePayment, func(a, b *qrswitch.Payment) int {
		au, _ := micros(a.HoldUntil)
		bu, _ := micros(b.HoldUntil)
		return cmp.Or(cmp.Compare(au, bu), strings.Compare(a.Key(), b.Key()))
	})
}
