package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// An op is one Commit or ClaimAdvices handed to the writer.
type op struct {
	// state moves from queued to taken (by the writer, into a batch) or to
	// abandoned (by a caller whose context ended first), never both.
	state atomic.Int32

	change *change
	claim  *qrswitch.Claim

	// Filled by the writer before done is closed.
	err     error
	claimed []*qrswitch.Advice
	done    chan struct{}
}

const (
	queued int32 = iota
	taken
	abandoned
)

// change is a qrswitch.Change encoded for the writer.
type change struct {
	qr       *qrRow
	payment  *paymentRow
	advices  []*adviceRow
	traceKey string
	trace    []string
}

// Commit applies c atomically. See qrswitch.Store and the package comment.
// While the Change waits to join a batch, Commit gives up when ctx ends
// (nothing is written); once the Change is in a batch, Commit waits for the
// batch's outcome whatever ctx does, so that its caller learns the truth.
func (s *Store) Commit(ctx context.Context, c *qrswitch.Change) error {
	ch, err := encodeChange(c)
	if err != nil {
		return err
	}
	if ch == nil {
		return nil
	}
	o := &op{change: ch, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return err
	}
	if o.err != nil {
		return o.err
	}
	if c.QR != nil {
		c.QR.Version++
	}
	if c.Payment != nil {
		c.Payment.Version++
	}
	for _, a := range c.Advices {
		a.Version++
	}
	return nil
}

// ClaimAdvices leases due advices to c.Owner. See qrswitch.Claim. It runs in
// the writer because it writes the leases.
func (s *Store) ClaimAdvices(ctx context.Context, c qrswitch.Claim) ([]*qrswitch.Advice, error) {
	if c.Max <= 0 {
		return nil, nil
	}
	o := &op{claim: &c, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return nil, err
	}
	return o.claimed, o.err
}

// submit queues o and waits until the writer has answered it.
func (s *Store) submit(ctx context.Context, o *op) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	select {
	case s.queue <- o:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return waiting(ctx)
	}
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		if o.state.CompareAndSwap(queued, abandoned) {
			return waiting(ctx)
		}
		<-o.done // in a batch already: its outcome is the answer
		return nil
	}
}

func waiting(ctx context.Context) error {
	return fmt.Errorf("waiting for the sqlite writer: %w: %w", qrswitch.ErrUnavailable, context.Cause(ctx))
}

// encodeChange encodes c, or returns nil when c writes nothing.
func encodeChange(c *qrswitch.Change) (*change, error) {
	if c == nil {
		return nil, nil
	}
	ch := &change{traceKey: c.TraceKey}
	var err error
	if c.QR != nil {
		if ch.qr, err = encodeQR(c.QR); err != nil {
			return nil, err
		}
	}
	if c.Payment != nil {
		if ch.payment, err = encodePayment(c.Payment); err != nil {
			return nil, err
		}
	}
	for _, a := range c.Advices {
		r, err := encodeAdvice(a)
		if err != nil {
			return nil, err
		}
		ch.advices = append(ch.advices, r)
	}
	if len(c.Trace) > 0 {
		if ch.traceKey == "" {
			if c.Payment == nil {
				return nil, errors.New("committing a trace: no TraceKey and no Payment to take it from")
			}
			ch.traceKey = ch.payment.key
		}
		ch.trace = make([]string, len(c.Trace))
		for i := range c.Trace {
			b, err := json.Marshal(&c.Trace[i])
			if err != nil {
				return nil, fmt.Errorf("encoding trace entry: %w", err)
			}
			ch.trace[i] = string(b)
		}
	}
	if ch.qr == nil && ch.payment == nil && len(ch.advices) == 0 && len(ch.trace) == 0 {
		return nil, nil
	}
	return ch, nil
}

// run is the writer: it owns s.w and batches what is queued until Close
// closes the queue, then drains it and returns.
func (s *Store) run() {
	defer close(s.stopped)
	batch := make([]*op, 0, s.cfg.maxBatch)
	for {
		o, ok := <-s.queue
		if !ok {
			return
		}
		batch = s.take(batch[:0], o)
	fill:
		for len(batch) < s.cfg.maxBatch {
			select {
			case o, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = s.take(batch, o)
			default:
				break fill
			}
		}
		if len(batch) > 0 {
			s.runBatch(batch)
		}
	}
}

// take adds o to batch unless its caller abandoned it.
func (s *Store) take(batch []*op, o *op) []*op {
	if o.state.CompareAndSwap(queued, taken) {
		batch = append(batch, o)
	}
	return batch
}

// errRejected marks an op that failed its own checks (a CommitError); the
// batch goes on without it.
var errRejected = errors.New("rejected")

// runBatch applies batch in one transaction and answers every op.
func (s *Store) runBatch(batch []*op) {
	ctx := context.Background() // a batch is never abandoned half-way
	defer func() {
		for _, o := range batch {
			close(o.done)
		}
	}()
	fail := func(err error) {
		for _, o := range batch {
			o.err, o.claimed = err, nil
		}
	}
	if _, err := s.ws.begin.ExecContext(ctx); err != nil {
		fail(unavailable("beginning a batch", err))
		return
	}
	for _, o := range batch {
		var err error
		if o.change != nil {
			err = s.apply(ctx, o.change)
		} else {
			o.claimed, err = s.claimAdvices(ctx, o.claim)
		}
		var ce *qrswitch.CommitError
		if errors.As(err, &ce) {
			o.err = ce
			continue
		}
		if err != nil {
			// A failed statement may have ended the transaction (SQLite does
			// so on I/O errors and a full disk); nothing of it is trusted.
			s.ws.rollback.ExecContext(ctx)
			fail(unavailable("writing a batch", err))
			return
		}
	}
	if _, err := s.ws.commit.ExecContext(ctx); err != nil {
		s.ws.rollback.ExecContext(ctx)
		fail(unavailable("committing a batch", err))
		return
	}
	s.batches.Add(1)
	for _, o := range batch {
		switch {
		case o.err != nil:
		case o.change != nil:
			s.commits.Add(1)
		default:
			s.claims.Add(1)
		}
	}
}

// apply writes one Change inside the batch's transaction. A failed check
// returns a *CommitError after rolling the Change back to its savepoint.
// The savepoint is skipped when the Change's first statement is its only
// check: a failed check then has written nothing.
func (s *Store) apply(ctx context.Context, ch *change) error {
	checks := len(ch.advices)
	if ch.qr != nil {
		checks++
	}
	if ch.payment != nil {
		checks++
	}
	if checks > 1 {
		if _, err := s.ws.savepoint.ExecContext(ctx); err != nil {
			return err
		}
	}
	err := s.write(ctx, ch)
	if checks > 1 {
		var ce *qrswitch.CommitError
		if errors.As(err, &ce) {
			if _, rerr := s.ws.rollbackTo.ExecContext(ctx); rerr != nil {
				return rerr
			}
		}
		if _, rerr := s.ws.release.ExecContext(ctx); rerr != nil && err == nil {
			return rerr
		}
	}
	return err
}

func (s *Store) write(ctx context.Context, ch *change) error {
	if r := ch.qr; r != nil {
		if err := s.writeQR(ctx, r); err != nil {
			return err
		}
	}
	if r := ch.payment; r != nil {
		var res sql.Result
		var err error
		if r.version == 0 {
			res, err = s.ws.insertPayment.ExecContext(ctx, r.key, r.retailerID, r.requestID,
				r.tranID, r.rrn, r.stan, r.partnerID, r.merchantID, r.terminalID, r.state,
				r.amount, r.createdAt, r.holdUntil, r.data)
		} else {
			res, err = s.ws.updatePayment.ExecContext(ctx, r.key, r.version, r.retailerID, r.requestID,
				r.tranID, r.rrn, r.stan, r.partnerID, r.merchantID, r.terminalID, r.state,
				r.amount, r.createdAt, r.holdUntil, r.data)
		}
		if err := checked(res, err, "payment", r.key, r.version); err != nil {
			return err
		}
	}
	for _, r := range ch.advices {
		var res sql.Result
		var err error
		if r.version == 0 {
			res, err = s.ws.insertAdvice.ExecContext(ctx, r.key, r.sender, r.id, r.paymentKey,
				r.partnerID, r.state, r.nextAt, r.leaseUntil, r.createdAt, r.data)
		} else {
			res, err = s.ws.updateAdvice.ExecContext(ctx, r.key, r.version, r.sender, r.id, r.paymentKey,
				r.partnerID, r.state, r.nextAt, r.leaseUntil, r.createdAt, r.data)
		}
		if err := checked(res, err, "advice", r.key, r.version); err != nil {
			return err
		}
	}
	for _, t := range ch.trace {
		if _, err := s.ws.insertTrace.ExecContext(ctx, ch.traceKey, t); err != nil {
			return err
		}
	}
	return nil
}

// writeQR creates or updates a QR code. An update that would take the
// (retailer, request) pair of another code is ignored by SQL (UPDATE OR
// IGNORE) and then told apart from a version conflict by reading the version.
func (s *Store) writeQR(ctx context.Context, r *qrRow) error {
	if r.version == 0 {
		res, err := s.ws.insertQR.ExecContext(ctx, r.tranID, r.retailerID, r.requestID, r.data)
		return checked(res, err, "qr", r.tranID, 0)
	}
	res, err := s.ws.updateQR.ExecContext(ctx, r.tranID, r.version, r.retailerID, r.requestID, r.data)
	if err := checked(res, err, "qr", r.tranID, r.version); !errors.Is(err, qrswitch.ErrConflict) {
		return err
	}
	var stored int64
	switch err := s.ws.qrVersion.QueryRowContext(ctx, r.tranID).Scan(&stored); {
	case errors.Is(err, sql.ErrNoRows):
		stored = 0
	case err != nil:
		return err
	}
	if stored == r.version {
		return &qrswitch.CommitError{Record: "qr", Key: r.tranID, Err: qrswitch.ErrDuplicate}
	}
	return &qrswitch.CommitError{Record: "qr", Key: r.tranID, Err: qrswitch.ErrConflict}
}

// checked turns a write that touched no row into the CommitError the
// contract names: a create ignored by ON CONFLICT DO NOTHING met an existing
// key, an update guarded by its version met another version or no record.
func checked(res sql.Result, err error, record, key string, version int64) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	if version == 0 {
		return &qrswitch.CommitError{Record: record, Key: key, Err: qrswitch.ErrDuplicate}
	}
	return &qrswitch.CommitError{Record: record, Key: key, Err: qrswitch.ErrConflict}
}

// claimAdvices leases up to c.Max due advices inside the batch's
// transaction. The query already leaves out payments with a live lease; one
// advice per payment is kept here, in NextAt order.
func (s *Store) claimAdvices(ctx context.Context, c *qrswitch.Claim) ([]*qrswitch.Advice, error) {
	now := nanos(c.Now)
	stmt, args := s.ws.dueAny, []any{now}
	if c.PartnerID != "" {
		stmt, args = s.ws.due, []any{now, c.PartnerID}
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	var picked []*qrswitch.Advice
	seen := make(map[string]bool)
	for len(picked) < c.Max && rows.Next() {
		var paymentKey string
		var data []byte
		if err := rows.Scan(&paymentKey, &data); err != nil {
			rows.Close()
			return nil, err
		}
		if seen[paymentKey] {
			continue
		}
		seen[paymentKey] = true
		a := new(qrswitch.Advice)
		if err := json.Unmarshal(data, a); err != nil {
			rows.Close()
			return nil, fmt.Errorf("decoding advice: %w", err)
		}
		picked = append(picked, a)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	until := c.Now.Add(c.Lease).Round(0)
	for _, a := range picked {
		a.LeaseOwner = c.Owner
		a.LeaseUntil = until
		a.Version++
		data, err := marshal(a)
		if err != nil {
			return nil, err
		}
		if _, err := s.ws.lease.ExecContext(ctx, a.Key(), a.Version, nanos(until), data); err != nil {
			return nil, err
		}
	}
	return slices.Clip(picked), nil
}

// writeStmts are the writer's prepared statements, bound to its connection.
type writeStmts struct {
	begin, commit, rollback                        *sql.Stmt
	savepoint, rollbackTo, release                 *sql.Stmt
	insertQR, updateQR, qrVersion                  *sql.Stmt
	insertPayment, updatePayment                   *sql.Stmt
	insertAdvice, updateAdvice, lease, due, dueAny *sql.Stmt
	insertTrace                                    *sql.Stmt
}

func (w *writeStmts) prepare(ctx context.Context, conn *sql.Conn) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.savepoint, "SAVEPOINT change"},
		{&w.rollbackTo, "ROLLBACK TO change"},
		{&w.release, "RELEASE change"},
		{&w.insertQR, `INSERT INTO qr_codes (tran_id, retailer_id, request_id, version, data)
			VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT DO NOTHING`},
		{&w.updateQR, `UPDATE OR IGNORE qr_codes SET retailer_id = ?3, request_id = ?4, version = ?2 + 1, data = ?5
			WHERE tran_id = ?1 AND version = ?2`},
		{&w.qrVersion, `SELECT version FROM qr_codes WHERE tran_id = ?1`},
		{&w.insertPayment, `INSERT INTO payments (key, retailer_id, request_id, tran_id, rrn, stan,
				partner_id, merchant_id, terminal_id, state, amount, created_at, hold_until, version, data)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, ?14) ON CONFLICT DO NOTHING`},
		{&w.updatePayment, `UPDATE payments SET retailer_id = ?3, request_id = ?4, tran_id = ?5, rrn = ?6,
				stan = ?7, partner_id = ?8, merchant_id = ?9, terminal_id = ?10, state = ?11, amount = ?12,
				created_at = ?13, hold_until = ?14, version = ?2 + 1, data = ?15
			WHERE key = ?1 AND version = ?2`},
		{&w.insertAdvice, `INSERT INTO advices (key, sender, id, payment_key, partner_id, state,
				next_at, lease_until, created_at, version, data)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10) ON CONFLICT DO NOTHING`},
		{&w.updateAdvice, `UPDATE advices SET sender = ?3, id = ?4, payment_key = ?5, partner_id = ?6,
				state = ?7, next_at = ?8, lease_until = ?9, created_at = ?10, version = ?2 + 1, data = ?11
			WHERE key = ?1 AND version = ?2`},
		{&w.lease, `UPDATE advices SET version = ?2, lease_until = ?3, data = ?4 WHERE key = ?1`},
		{&w.due, dueSQL("a.partner_id = ?2 AND")},
		{&w.dueAny, dueSQL("")},
		{&w.insertTrace, `INSERT INTO trace (payment_key, data) VALUES (?1, ?2)`},
	} {
		stmt, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", p.sql, err)
		}
		*p.stmt = stmt
	}
	return nil
}

// dueSQL selects claimable advices, oldest NextAt first, leaving out every
// payment that has an advice under a live lease.
func dueSQL(partner string) string {
	return `SELECT a.payment_key, a.data FROM advices a
		WHERE ` + partner + ` a.state = 'PENDING' AND a.next_at <= ?1 AND a.lease_until <= ?1
		AND NOT EXISTS (SELECT 1 FROM advices o WHERE o.payment_key = a.payment_key AND o.lease_until > ?1)
		ORDER BY a.next_at, a.rowid`
}

func (w *writeStmts) close() {
	for _, st := range []*sql.Stmt{w.begin, w.commit, w.rollback, w.savepoint, w.rollbackTo, w.release,
		w.insertQR, w.updateQR, w.qrVersion, w.insertPayment, w.updatePayment,
		w.insertAdvice, w.updateAdvice, w.lease, w.due, w.dueAny, w.insertTrace} {
		if st != nil {
			st.Close()
		}
	}
}
