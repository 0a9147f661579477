package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Every read decodes the stored JSON into new records, so what it returns is
// the caller's to keep and change.

// readStmts are the prepared statements of the read pool.
type readStmts struct {
	qr, payment, advice                    *sql.Stmt
	trace, paymentAdvices, lookup, orphans *sql.Stmt
	queueCounts, queueNext, queueAttempts  *sql.Stmt
	control, controls                      *sql.Stmt
	record                                 *sql.Stmt
}

func (r *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&r.qr, `SELECT data FROM qr_codes WHERE tran_id = ?1`},
		{&r.payment, `SELECT data FROM payments WHERE key = ?1`},
		{&r.advice, `SELECT data FROM advices WHERE key = ?1`},
		{&r.trace, `SELECT data FROM trace WHERE payment_key = ?1 ORDER BY seq`},
		{&r.paymentAdvices, `SELECT data FROM advices WHERE payment_key = ?1 ORDER BY created_at, rowid`},
		{&r.lookup, `SELECT data FROM payments WHERE key IN (
				SELECT key FROM payments WHERE key = ?1
				UNION SELECT key FROM payments WHERE request_id = ?1
				UNION SELECT key FROM payments WHERE tran_id = ?1
				UNION SELECT key FROM payments WHERE rrn = ?1
				UNION SELECT payment_key FROM advices WHERE id = ?1)
			ORDER BY created_at DESC, rowid DESC`},
		{&r.orphans, `SELECT data FROM payments INDEXED BY payments_held
			WHERE state IN ('AWAITING_SCAN', 'FORWARDED') AND hold_until < ?1
			ORDER BY hold_until LIMIT ?2`},
		{&r.queueCounts, `SELECT state, COUNT(*), MIN(queued_at) FROM advices INDEXED BY advices_queue
			WHERE partner_id = ?1 AND state IN ('PENDING', 'HELD', 'DEAD', 'OPERATOR') GROUP BY state`},
		{&r.queueNext, `SELECT next_at FROM advices INDEXED BY advices_due
			WHERE partner_id = ?1 AND state = 'PENDING' ORDER BY next_at LIMIT 1`},
		{&r.queueAttempts, `SELECT attempts, COUNT(*) FROM (
				SELECT attempts FROM advices INDEXED BY advices_queue
				WHERE partner_id = ?1 AND state = 'PENDING' ORDER BY queued_at LIMIT ?2)
			GROUP BY attempts`},
		{&r.control, `SELECT data FROM partner_controls WHERE partner_id = ?1`},
		{&r.controls, `SELECT data FROM partner_controls ORDER BY partner_id`},
		{&r.record, `SELECT data FROM rail_records WHERE key = ?1`},
	} {
		stmt, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", p.sql, err)
		}
		*p.stmt = stmt
	}
	return nil
}

func (r *readStmts) close() {
	for _, st := range []*sql.Stmt{r.qr, r.payment, r.advice, r.trace, r.paymentAdvices, r.lookup, r.orphans,
		r.queueCounts, r.queueNext, r.queueAttempts, r.control, r.controls, r.record} {
		if st != nil {
			st.Close()
		}
	}
}

// QR returns the QR code with the tranId, or ErrNotFound.
func (s *Store) QR(ctx context.Context, tranID string) (*qrswitch.QRCode, error) {
	if q, ok := s.records.qr(tranID); ok && !s.isClosed() {
		return q, nil
	}
	q := new(qrswitch.QRCode)
	if err := s.one(ctx, s.rs.qr, "qr code", tranID, q); err != nil {
		return nil, err
	}
	return q, nil
}

// Payment returns the payment with the key, or ErrNotFound.
func (s *Store) Payment(ctx context.Context, key string) (*qrswitch.Payment, error) {
	if p, ok := s.records.payment(key); ok && !s.isClosed() {
		return p, nil
	}
	p := new(qrswitch.Payment)
	if err := s.one(ctx, s.rs.payment, "payment", key, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Advice returns the advice with the key, or ErrNotFound.
func (s *Store) Advice(ctx context.Context, key string) (*qrswitch.Advice, error) {
	if a, ok := s.records.advice(key); ok && !s.isClosed() {
		return a, nil
	}
	a := new(qrswitch.Advice)
	if err := s.one(ctx, s.rs.advice, "advice", key, a); err != nil {
		return nil, err
	}
	return a, nil
}

// one reads the record stmt selects by key into rec.
func (s *Store) one(ctx context.Context, stmt *sql.Stmt, record, key string, rec any) error {
	if s.isClosed() {
		return errClosed
	}
	var data []byte
	switch err := stmt.QueryRowContext(ctx, key).Scan(&data); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s %s: %w", record, key, qrswitch.ErrNotFound)
	case err != nil:
		return unavailable("reading "+record+" "+key, err)
	}
	if err := json.Unmarshal(data, rec); err != nil {
		return fmt.Errorf("decoding %s %s: %w", record, key, err)
	}
	return nil
}

// Trace returns the trace of a payment in the order it was appended; an
// unknown payment has an empty trace.
func (s *Store) Trace(ctx context.Context, paymentKey string) ([]qrswitch.TraceEntry, error) {
	return list[qrswitch.TraceEntry](ctx, s, "reading trace", s.rs.trace, "", paymentKey)
}

// PaymentAdvices returns every advice of a payment, oldest first.
func (s *Store) PaymentAdvices(ctx context.Context, paymentKey string) ([]*qrswitch.Advice, error) {
	return listPtr[qrswitch.Advice](ctx, s, "reading advices", s.rs.paymentAdvices, "", paymentKey)
}

// Lookup returns the payments that id names: a payment key, a payment
// request id of any retailer, a tranId, an rrn, or an advice id of any
// sender. Newest first.
func (s *Store) Lookup(ctx context.Context, id string) ([]*qrswitch.Payment, error) {
	if id == "" {
		return []*qrswitch.Payment{}, nil
	}
	return listPtr[qrswitch.Payment](ctx, s, "looking up payments", s.rs.lookup, "", id)
}

// Orphans returns up to limit payments still AWAITING_SCAN or FORWARDED
// whose HoldUntil is before now, the longest orphaned first.
func (s *Store) Orphans(ctx context.Context, now time.Time, limit int) ([]*qrswitch.Payment, error) {
	if limit <= 0 {
		return []*qrswitch.Payment{}, nil
	}
	return listPtr[qrswitch.Payment](ctx, s, "finding orphans", s.rs.orphans, "", nanos(now), limit)
}

// Query limits (see qrswitch.Query and qrswitch.AdviceQuery).
const (
	defaultLimit = 50
	maxLimit     = 500
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

// Search returns payments matching q, newest first. From is inclusive, To
// and Before exclusive; MinAmount and MaxAmount are inclusive and leave out
// payments without a request amount.
func (s *Store) Search(ctx context.Context, q qrswitch.Query) ([]*qrswitch.Payment, error) {
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			args = append(args, v)
			where = append(where, fmt.Sprintf("%s = ?%d", col, len(args)))
		}
	}
	cmp := func(col, op string, v int64) {
		args = append(args, v)
		where = append(where, fmt.Sprintf("%s %s ?%d", col, op, len(args)))
	}
	eq("retailer_id", q.RetailerID)
	eq("request_id", q.RequestID)
	eq("partner_id", q.PartnerID)
	eq("merchant_id", q.MerchantID)
	eq("terminal_id", q.TerminalID)
	eq("state", string(q.State))
	eq("outcome", q.Outcome)
	eq("tran_id", q.TranID)
	eq("rrn", q.Rrn)
	eq("stan", q.Stan)
	if q.MinAmount != 0 {
		cmp("amount", ">=", q.MinAmount)
	}
	if q.MaxAmount != 0 {
		cmp("amount", "<=", q.MaxAmount)
	}
	if !q.From.IsZero() {
		cmp("created_at", ">=", nanos(q.From))
	}
	if !q.To.IsZero() {
		cmp("created_at", "<", nanos(q.To))
	}
	switch {
	case !q.Before.IsZero() && q.BeforeKey != "":
		// After (Before, BeforeKey) in the order below, written so that
		// the created_at bound can drive an index range.
		args = append(args, nanos(q.Before), q.BeforeKey)
		where = append(where, fmt.Sprintf("created_at <= ?%d AND (created_at < ?%d OR key < ?%d)",
			len(args)-1, len(args)-1, len(args)))
	case !q.Before.IsZero():
		cmp("created_at", "<", nanos(q.Before))
	}
	query := "SELECT data FROM payments"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit(q.Limit))
	// The key breaks ties, as the contract says. The index gives the
	// created_at order, and SQLite sorts only runs of equal created_at
	// (a temporary B-tree for the right part of the ORDER BY), so a page
	// still stops after Limit rows.
	query += fmt.Sprintf(" ORDER BY created_at DESC, key DESC LIMIT ?%d", len(args))
	return listPtr[qrswitch.Payment](ctx, s, "searching payments", nil, query, args...)
}

// QueueStats counts a partner's advices by state in the advices_queue
// index (entries, not rows: no record is read), takes the earliest NextAt
// from the queue's own index, and counts attempts over the QueueSample
// pending advices queued longest.
func (s *Store) QueueStats(ctx context.Context, partnerID string) (*qrswitch.QueueStats, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	const doing = "reading queue statistics"
	st := &qrswitch.QueueStats{Destination: partnerID, Attempts: map[int]int{}}
	rows, err := s.rs.queueCounts.QueryContext(ctx, partnerID)
	if err != nil {
		return nil, unavailable(doing, err)
	}
	for rows.Next() {
		var state string
		var n int
		var oldest int64
		if err := rows.Scan(&state, &n, &oldest); err != nil {
			rows.Close()
			return nil, unavailable(doing, err)
		}
		switch qrswitch.AdviceState(state) {
		case qrswitch.AdvicePending:
			st.Pending, st.OldestQueuedAt = n, fromNanos(oldest)
		case qrswitch.AdviceHeld:
			st.Held = n
		case qrswitch.AdviceDead:
			st.Dead = n
		case qrswitch.AdviceOperator:
			st.Operator = n
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, unavailable(doing, err)
	}
	if st.Pending == 0 {
		return st, nil
	}
	var next int64
	if err := s.rs.queueNext.QueryRowContext(ctx, partnerID).Scan(&next); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, unavailable(doing, err)
	}
	st.NextAt = fromNanos(next)
	rows, err = s.rs.queueAttempts.QueryContext(ctx, partnerID, qrswitch.QueueSample)
	if err != nil {
		return nil, unavailable(doing, err)
	}
	for rows.Next() {
		var attempts, n int
		if err := rows.Scan(&attempts, &n); err != nil {
			rows.Close()
			return nil, unavailable(doing, err)
		}
		st.Attempts[attempts] = n
		st.Sampled += n
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, unavailable(doing, err)
	}
	return st, nil
}

// QueueControl returns the control of a partner's queue, or ErrNotFound.
func (s *Store) QueueControl(ctx context.Context, partnerID string) (*qrswitch.QueueControl, error) {
	c := new(qrswitch.QueueControl)
	if err := s.one(ctx, s.rs.control, "partner control", partnerID, c); err != nil {
		return nil, err
	}
	return c, nil
}

// QueueControls returns every partner control, by PartnerID.
func (s *Store) QueueControls(ctx context.Context) ([]*qrswitch.QueueControl, error) {
	return listPtr[qrswitch.QueueControl](ctx, s, "reading partner controls", s.rs.controls, "")
}

// ListAdvices returns advices matching q, oldest first.
func (s *Store) ListAdvices(ctx context.Context, q qrswitch.AdviceQuery) ([]*qrswitch.Advice, error) {
	var where []string
	var args []any
	if q.Destination != "" {
		args = append(args, q.Destination)
		where = append(where, fmt.Sprintf("partner_id = ?%d", len(args)))
	}
	if q.State != "" {
		args = append(args, string(q.State))
		where = append(where, fmt.Sprintf("state = ?%d", len(args)))
	}
	if q.Leased {
		where = append(where, "lease_until > ?"+fmt.Sprint(len(args)+1))
		args = append(args, nanos(time.Time{}))
	}
	query := "SELECT data FROM advices"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit(q.Limit))
	query += fmt.Sprintf(" ORDER BY created_at, rowid LIMIT ?%d", len(args))
	return listPtr[qrswitch.Advice](ctx, s, "listing advices", nil, query, args...)
}

// query runs a prepared statement, or the query text when stmt is nil.
func (s *Store) query(ctx context.Context, stmt *sql.Stmt, query string, args []any) (*sql.Rows, error) {
	if stmt != nil {
		return stmt.QueryContext(ctx, args...)
	}
	return s.rdb.QueryContext(ctx, query, args...)
}

// list decodes the data column of every row into a T.
func list[T any](ctx context.Context, s *Store, doing string, stmt *sql.Stmt, query string, args ...any) ([]T, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	rows, err := s.query(ctx, stmt, query, args)
	if err != nil {
		return nil, unavailable(doing, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var data sql.RawBytes
		if err := rows.Scan(&data); err != nil {
			return nil, unavailable(doing, err)
		}
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("%s: decoding: %w", doing, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(doing, err)
	}
	return out, nil
}

// listPtr is list for records returned by pointer.
func listPtr[T any](ctx context.Context, s *Store, doing string, stmt *sql.Stmt, query string, args ...any) ([]*T, error) {
	vals, err := list[T](ctx, s, doing, stmt, query, args...)
	if err != nil {
		return nil, err
	}
	out := make([]*T, len(vals))
	for i := range vals {
		out[i] = &vals[i]
	}
	return out, nil
}
