package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Every read decodes the stored JSON into new records, so what it returns is
// the caller's to keep and change.

// QR returns the QR code with the tranId, or ErrNotFound.
func (s *Store) QR(ctx context.Context, tranID string) (*qrswitch.QRCode, error) {
	vals, err := s.hmget(ctx, opQR, "qr code", "qr:", tranID, qrFields)
	if err != nil {
		return nil, err
	}
	return decodeQR(vals)
}

// Payment returns the payment with the key, or ErrNotFound.
func (s *Store) Payment(ctx context.Context, key string) (*qrswitch.Payment, error) {
	vals, err := s.hmget(ctx, opPayment, "payment", "pay:", key, paymentFields)
	if err != nil {
		return nil, err
	}
	return decodePayment(vals)
}

// Advice returns the advice with the key, or ErrNotFound.
func (s *Store) Advice(ctx context.Context, key string) (*qrswitch.Advice, error) {
	vals, err := s.hmget(ctx, opAdvice, "advice", "adv:", key, adviceFields)
	if err != nil {
		return nil, err
	}
	return decodeAdvice(vals)
}

func (s *Store) hmget(ctx context.Context, o op, record, kind, key string, fields []string) ([]any, error) {
	vals, err := s.c.HMGet(withOp(ctx, o), s.key(kind, key), fields...).Result()
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
	raw, err := s.c.LRange(withOp(ctx, opTrace), s.key("tr:", paymentKey), 0, -1).Result()
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
	cands       []string // full keys
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

func (s *Store) walk(ctx context.Context, o op, doing string, w walk, each func(vals []any) error) error {
	ctx = withOp(ctx, o)
	cands, from, skip := w.cands, w.from, int64(0)
	found := 0
	for found < w.limit {
		args := []any{s.prefix, w.rec, flag(w.newestFirst), itoa(from), itoa(w.to), skip, w.limit - found, walkBudget, len(cands)}
		args = append(args, anys(cands)...)
		args = append(args, len(w.fetch))
		args = append(args, anys(w.fetch)...)
		args = append(args, len(w.filters))
		for _, f := range w.filters {
			args = append(args, f...)
		}
		res, err := walkScript.Run(ctx, s.c, s.route, args...).Slice()
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
	w := walk{rec: "adv:", from: -maxMicros, to: maxMicros, cands: []string{s.key("a:pay:", paymentKey)},
		fetch: adviceFields, limit: math.MaxInt32}
	err := s.walk(ctx, opPaymentAdvices, "reading advices", w, func(vals []any) error {
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
	res, err := lookupScript.Run(withOp(ctx, opLookup), s.c, s.route, s.prefix, id, lookupLimit).Slice()
	if err != nil {
		return nil, unavailable("looking up payments", err)
	}
	for i := 0; i+2 <= len(res); i += 2 {
		p, err := decodePayment(res[i : i+2])
		if err != nil {
			return nil, fmt.Errorf("looking up payments: %w", err)
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b *qrswitch.Payment) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.Key(), a.Key())
	})
	return out, nil
}

// Search returns payments matching q, newest first. From is inclusive, To
// and Before exclusive; MinAmount and MaxAmount are inclusive and leave out
// payments without a request amount. Payments created in the same
// microsecond come by key, descending, and a page that ends among them is
// continued with BeforeKey exactly where it ended.
func (s *Store) Search(ctx context.Context, q qrswitch.Query) ([]*qrswitch.Payment, error) {
	w := walk{rec: "pay:", newestFirst: true, from: maxMicros, to: -maxMicros, fetch: paymentFields, limit: limit(q.Limit)}
	for _, f := range []struct{ field, value string }{
		{"ret", q.RetailerID}, {"req", q.RequestID}, {"part", q.PartnerID}, {"mer", q.MerchantID}, {"ter", q.TerminalID},
		{"st", string(q.State)}, {"out", q.Outcome}, {"tran", q.TranID}, {"rrn", q.Rrn}, {"stan", q.Stan},
	} {
		if f.value != "" {
			w.cands = append(w.cands, s.key("p:", f.field, ":", f.value))
			w.eq(f.field, f.value)
		}
	}
	if len(w.cands) == 0 {
		w.cands = []string{s.key("pc")}
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
	out := []*qrswitch.Payment{}
	err := s.walk(ctx, opSearch, "searching payments", w, func(vals []any) error {
		p, err := decodePayment(vals)
		out = append(out, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListAdvices returns advices matching q, oldest first (by CreatedAt).
func (s *Store) ListAdvices(ctx context.Context, q qrswitch.AdviceQuery) ([]*qrswitch.Advice, error) {
	w := walk{rec: "adv:", from: -maxMicros, to: maxMicros, fetch: adviceFields, limit: limit(q.Limit)}
	if q.Destination != "" {
		w.cands = append(w.cands, s.key("a:part:", q.Destination))
		w.eq("part", q.Destination)
	}
	if q.State != "" {
		w.cands = append(w.cands, s.key("a:st:", string(q.State)))
		w.eq("st", string(q.State))
	}
	if q.Leased {
		w.cands = append(w.cands, s.key("a:leased"))
		w.filters = append(w.filters, []any{"ne", "lu", zeroScore})
	}
	if len(w.cands) == 0 {
		w.cands = []string{s.key("ac")}
	}
	out := []*qrswitch.Advice{}
	err := s.walk(ctx, opListAdvices, "listing advices", w, func(vals []any) error {
		a, err := decodeAdvice(vals)
		out = append(out, a)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QueueStats reads a partner's queue statistics in one script: counts of
// the queue's sorted sets, their first entries, and the attempts of the
// QueueSample pending advices queued longest. QueuedAt and NextAt come back
// to the microsecond.
func (s *Store) QueueStats(ctx context.Context, partnerID string) (*qrswitch.QueueStats, error) {
	const doing = "reading queue statistics"
	res, err := statsScript.Run(withOp(ctx, opQueueStats), s.c, s.route, s.prefix, partnerID, qrswitch.QueueSample).Slice()
	if err != nil {
		return nil, unavailable(doing, err)
	}
	if len(res) < 6 {
		return nil, fmt.Errorf("%s: unexpected reply %v", doing, res)
	}
	st := &qrswitch.QueueStats{Destination: partnerID, Attempts: map[int]int{}}
	var counts [4]int64
	for i := range counts {
		if counts[i], err = num(res[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", doing, err)
		}
	}
	st.Pending, st.Held, st.Dead, st.Operator = int(counts[0]), int(counts[1]), int(counts[2]), int(counts[3])
	for i, t := range []*time.Time{&st.OldestQueuedAt, &st.NextAt} {
		if v, _ := str(res[4+i]); v != "" {
			us, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: score %q: %w", doing, v, err)
			}
			*t = fromMicros(int64(us), 0)
		}
	}
	for _, v := range res[6:] {
		n, err := num(v)
		if err != nil {
			return nil, fmt.Errorf("%s: attempts: %w", doing, err)
		}
		st.Attempts[int(n)]++
		st.Sampled++
	}
	return st, nil
}

// QueueControl returns the control of a partner's queue, or ErrNotFound.
func (s *Store) QueueControl(ctx context.Context, partnerID string) (*qrswitch.QueueControl, error) {
	vals, err := s.hmget(ctx, opControls, "partner control", "ctl:", partnerID, []string{"d", "v"})
	if err != nil {
		return nil, err
	}
	return decodeControl(vals)
}

// QueueControls returns every partner control, by PartnerID.
func (s *Store) QueueControls(ctx context.Context) ([]*qrswitch.QueueControl, error) {
	res, err := controlsScript.Run(withOp(ctx, opControls), s.c, s.route, s.prefix).Slice()
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
	out := []*qrswitch.Payment{}
	if limit <= 0 {
		return out, nil
	}
	to, _ := micros(now)
	w := walk{rec: "pay:", from: -maxMicros, to: to, cands: []string{s.key("held")}, fetch: paymentFields, limit: limit}
	w.timeFilter("tlt", "hu", "hr", now)
	err := s.walk(ctx, opOrphans, "finding orphans", w, func(vals []any) error {
		p, err := decodePayment(vals)
		out = append(out, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
