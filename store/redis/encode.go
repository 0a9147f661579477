package redisstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Times that scripts compare and indexes order are split into two numbers
// that a sorted-set score and a Lua number hold exactly: whole microseconds
// since the Unix epoch (a double holds integers up to 2^53, which covers the
// years 1684 to 2255) and the nanoseconds within that microsecond. Scores
// are the microseconds; comparisons use both, so they are exact to the
// nanosecond. The zero time, and anything outside the range, clamps to its
// ends: a zero HoldUntil, NextAt or LeaseUntil sorts before every real time.
const (
	maxMicros = 1 << 53
	zeroScore = "-9007199254740992" // -maxMicros, as the scripts read it
)

func micros(t time.Time) (us, ns int64) {
	if t.IsZero() {
		return -maxMicros, 0
	}
	us = t.UnixMicro()
	switch {
	case us <= -maxMicros:
		return -maxMicros, 0
	case us >= maxMicros:
		return maxMicros, 0
	}
	return us, int64(t.Nanosecond() % 1000)
}

// fromMicros is the inverse of micros, in UTC as the engine stores times.
func fromMicros(us, ns int64) time.Time {
	if us <= -maxMicros {
		return time.Time{}
	}
	return time.UnixMicro(us).Add(time.Duration(ns)).UTC()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// timeArgs appends t as its two script fields.
func timeArgs(args []any, t time.Time) []any {
	us, ns := micros(t)
	return append(args, itoa(us), itoa(ns))
}

// A record is stored as a hash: d is the record as JSON, v its version, and
// the other fields copies of what indexes and scripts read (see the package
// comment). The JSON carries the version the write gives it, as in every
// backend, but a read takes the version (and an advice's lease, which
// ClaimAdvices sets without rewriting the JSON) from the hash fields.

// encodeChange builds the commit script's arguments (after the prefix,
// retention and keep), or returns nil when c writes nothing. records reports
// whether it writes a record, not only a trace.
func encodeChange(c *qrswitch.Change) (args []any, records bool, err error) {
	if c == nil {
		return nil, false, nil
	}
	nq, np := 0, 0
	if c.QR != nil {
		nq = 1
	}
	if c.Payment != nil {
		np = 1
	}
	for i, a := range c.Advices {
		for _, b := range c.Advices[:i] {
			if a.Key() == b.Key() {
				return nil, false, fmt.Errorf("committing: advice %s appears twice in one Change", a.Key())
			}
		}
	}
	traceKey := c.TraceKey
	if len(c.Trace) > 0 && traceKey == "" {
		if c.Payment == nil {
			return nil, false, errors.New("committing a trace: no TraceKey and no Payment to take it from")
		}
		traceKey = c.Payment.Key()
	}
	nc := 0
	if c.Control != nil {
		nc = 1
	}
	for i, r := range c.Records {
		if err := qrswitch.CheckRecord(r); err != nil {
			return nil, false, err
		}
		for _, o := range c.Records[:i] {
			if recordKey(r) == recordKey(o) {
				return nil, false, fmt.Errorf("committing: record %s appears twice in one Change", recordKey(r))
			}
		}
	}
	records = nq+np+len(c.Advices)+nc+len(c.Records) > 0
	if !records && len(c.Trace) == 0 {
		return nil, false, nil
	}
	args = make([]any, 0, 7+8*nq+21*np+18*len(c.Advices)+4*nc+12*len(c.Records)+len(c.Trace))
	args = append(args, nq, np, len(c.Advices), nc, len(c.Trace), len(c.Records), traceKey)
	if q := c.QR; q != nil {
		next := *q
		next.Version++
		d, err := marshal(&next)
		if err != nil {
			return nil, false, err
		}
		args = append(args, q.TranID, itoa(q.Version), itoa(next.Version), d, q.RetailerID, q.RequestID,
			q.PaymentKey, itoa(q.ExpiresAt.UnixMilli()))
	}
	if p := c.Payment; p != nil {
		next := *p
		next.Version++
		d, err := marshal(&next)
		if err != nil {
			return nil, false, err
		}
		var rrn, stan, merchant, terminal, amount string
		if req := p.Request; req != nil {
			rrn, stan = req.Rrn, req.Stan
			if o := req.Originator; o != nil {
				merchant, terminal = o.Merchant.MerchantID, o.TerminalID
			}
			if a := req.Amounts; a != nil && a.RequestAmount != nil {
				amount = itoa(a.RequestAmount.Amount)
			}
		}
		args = append(args, p.Key(), itoa(p.Version), itoa(next.Version), d, flag(p.State.Final()), flag(held(p)),
			p.RetailerID, p.RequestID, p.TranID, rrn, stan, p.PartnerID(), merchant, terminal, string(p.State), amount)
		args = timeArgs(args, p.CreatedAt)
		args = timeArgs(args, p.HoldUntil)
		args = append(args, p.LegOutcome())
	}
	for _, a := range c.Advices {
		next := *a
		next.Version++
		d, err := marshal(&next)
		if err != nil {
			return nil, false, err
		}
		args = append(args, a.Key(), itoa(a.Version), itoa(next.Version), d, a.ID, a.PaymentKey, a.Destination, string(a.State))
		args = timeArgs(args, a.CreatedAt)
		args = timeArgs(args, a.NextAt)
		args = append(args, a.LeaseOwner)
		args = timeArgs(args, a.LeaseUntil)
		args = timeArgs(args, a.QueuedAt)
		args = append(args, itoa(int64(a.Attempts)))
	}
	if ctl := c.Control; ctl != nil {
		next := *ctl
		next.Version++
		d, err := marshal(&next)
		if err != nil {
			return nil, false, err
		}
		args = append(args, ctl.Destination, itoa(ctl.Version), itoa(next.Version), d)
	}
	for _, r := range c.Records {
		next := *r
		next.Version++
		d, err := marshal(&next)
		if err != nil {
			return nil, false, err
		}
		due := "0"
		if !r.DueAt.IsZero() {
			due = itoa(r.DueAt.UnixMilli())
		}
		args = append(args, recordKey(r), itoa(r.Version), itoa(next.Version), d, r.Owner, r.Kind, r.Key, due, itoa(int64(len(r.Index))))
		for _, x := range r.Index {
			args = append(args, x)
		}
	}
	for i := range c.Trace {
		b, err := json.Marshal(&c.Trace[i])
		if err != nil {
			return nil, false, fmt.Errorf("encoding trace entry: %w", err)
		}
		args = append(args, string(b))
	}
	return args, records, nil
}

// held reports whether p is held by its owner, and so a possible orphan.
func held(p *qrswitch.Payment) bool {
	return p.State == outcome.AwaitingScan || p.State == outcome.Forwarded
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func marshal(rec any) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encoding record: %w", err)
	}
	return string(b), nil
}

// Decoding. Script and HMGET replies are strings (nil for a missing field);
// a version or time field may come as an integer from a script.

func str(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return itoa(x), true
	}
	return "", false
}

func num(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("want a number, got %T", v)
}

// The hash fields each read fetches: the JSON first, then the overlay.
var (
	qrFields      = []string{"d", "v"}
	paymentFields = []string{"d", "v"}
	adviceFields  = []string{"d", "v", "lo", "lu", "lr"}
)

func decodeQR(vals []any) (*qrswitch.QRCode, error) {
	q := new(qrswitch.QRCode)
	if err := decodeInto(vals, q, &q.Version); err != nil {
		return nil, fmt.Errorf("decoding qr code: %w", err)
	}
	return q, nil
}

func decodePayment(vals []any) (*qrswitch.Payment, error) {
	p := new(qrswitch.Payment)
	if err := decodeInto(vals, p, &p.Version); err != nil {
		return nil, fmt.Errorf("decoding payment: %w", err)
	}
	return p, nil
}

func decodeControl(vals []any) (*qrswitch.QueueControl, error) {
	c := new(qrswitch.QueueControl)
	if err := decodeInto(vals, c, &c.Version); err != nil {
		return nil, fmt.Errorf("decoding partner control: %w", err)
	}
	return c, nil
}

func decodeAdvice(vals []any) (*qrswitch.Advice, error) {
	a := new(qrswitch.Advice)
	if err := decodeInto(vals, a, &a.Version); err != nil {
		return nil, fmt.Errorf("decoding advice: %w", err)
	}
	if len(vals) < 5 {
		return nil, errors.New("decoding advice: lease fields missing")
	}
	owner, _ := str(vals[2])
	us, err1 := num(vals[3])
	ns, err2 := num(vals[4])
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("decoding advice lease: %w", err)
	}
	a.LeaseOwner, a.LeaseUntil = owner, fromMicros(us, ns)
	return a, nil
}

// decodeInto reads the JSON in vals[0] into rec and the version in vals[1].
func decodeInto(vals []any, rec any, version *int64) error {
	if len(vals) < 2 {
		return errors.New("short reply")
	}
	d, ok := str(vals[0])
	if !ok {
		return errors.New("no data")
	}
	if err := json.Unmarshal([]byte(d), rec); err != nil {
		return err
	}
	v, err := num(vals[1])
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	*version = v
	return nil
}
