package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Retention, as the Redis backend applies it (store/redis, "Lifetimes"):
//
//   - A payment in a final state is kept for Options.Retention after the
//     commit that made it final — its UpdatedAt then, kept in finished_at
//     by later updates — and then deleted with its advices and its trace.
//     A finished payment one of whose advices is not final (pending, held,
//     dead, or any state other than DONE and MERGED) is kept, and looked at
//     again at the next sweep: an advice, a dead letter above all, is never
//     dropped unseen. A payment that never finishes is kept until it does.
//   - A QR code no stored payment uses is kept until its ExpiresAt plus
//     Options.QRKeep, then deleted with its trace ("qr/TRANID"); a code a
//     stored payment uses is kept as long as that payment.
//   - A trace of nothing stored (no payment, or for "qr/…" no QR code, has
//     its key; a late answer to a deleted payment, an advice refused for an
//     unknown payment) is kept for Retention after its last entry.
//     Partners' audit trails ("partner/…") are kept for ever.
//
// The store has no clock of its own: times come from the records (UpdatedAt,
// ExpiresAt, a trace entry's At) and from the now a sweep is given. The
// janitor passes Options.Now every Options.JanitorInterval.
//
// A sweep runs in the writer, as steps of at most sweepLimit candidates,
// each inside the batch it joins, so that deleting never holds the writer
// longer than one step: the Changes queued meanwhile go in the next batch.
// Pages freed by deletions go to SQLite's freelist and are reused by the
// next writes, so a database whose inflow and outflow balance stops
// growing (docs/reliability.md, "Retention on the embedded store"); the
// file itself never shrinks: VACUUM it offline for that.

// sweepLimit is the most candidates (payments, QR codes or traces) one
// step looks at. TestSweepDoesNotStallTheWriter on the 2-core machine, 4000
// payments swept under 8 busy committers: 8 took 2.9 s with commits' p99 at
// 12 ms, 16 took 1.7 s at 16 ms, 32 took 1.7 s at 31 ms, 64 0.7 s at 33 ms
// (alone: p99 3–8 ms). 16 keeps the writer's stalls short at no cost in
// sweep time.
const sweepLimit = 16

// Swept counts what a sweep deleted.
type Swept struct {
	// Payments deleted, with Advices and TraceEntries of theirs.
	Payments, Advices, TraceEntries int
	// Kept counts finished payments past their retention kept because one
	// of their advices is not final.
	Kept int
	// QRCodes deleted (with their traces, counted in TraceEntries).
	QRCodes int
	// Orphans counts traces of nothing stored that were deleted.
	Orphans int
}

func (w *Swept) add(o Swept) {
	w.Payments += o.Payments
	w.Advices += o.Advices
	w.TraceEntries += o.TraceEntries
	w.Kept += o.Kept
	w.QRCodes += o.QRCodes
	w.Orphans += o.Orphans
}

// Sweep phases, in order.
const (
	sweepPayments = iota
	sweepQRCodes
	sweepOrphans
	sweepDone
)

// sweepStep is one step of a sweep, handed to the writer.
type sweepStep struct {
	phase  int
	cutoff int64 // payments finished, traces last written, at or before it go
	qrCut  int64 // unused QR codes expired at or before it go
	// The cursor: the last (time, rowid) looked at in this phase.
	afterAt, afterRow int64

	// Filled by the writer.
	swept   Swept
	more    bool     // the phase has more candidates after the cursor
	dropped []string // record-cache keys of the deleted records
}

// Sweep deletes what retention lets go at time now (see the comment at the
// top of this file) and returns what it deleted. The janitor calls it every
// Options.JanitorInterval with Options.Now; tests call it with their own now.
// It returns ErrUnavailable-wrapping errors like Commit, having deleted what
// the steps before the failure deleted.
func (s *Store) Sweep(ctx context.Context, now time.Time) (Swept, error) {
	var total Swept
	if s.cfg.retention <= 0 {
		return total, nil // Options.Retention 0 keeps everything
	}
	st := &sweepStep{
		cutoff:  nanos(now.Add(-s.cfg.retention)),
		qrCut:   nanos(now.Add(-s.cfg.qrKeep)),
		afterAt: minNanos, afterRow: 0,
	}
	for st.phase < sweepDone {
		o := &op{sweep: st, done: make(chan struct{})}
		if err := s.submit(ctx, o); err != nil {
			return total, err
		}
		if o.err != nil {
			return total, o.err
		}
		total.add(st.swept)
		if !st.more {
			st.phase++
			st.afterAt, st.afterRow = minNanos, 0
		}
		st.swept, st.dropped = Swept{}, nil
	}
	return total, nil
}

const minNanos = -1 << 63

// finishedCol is the index of finished_at among the payments' columns.
var finishedCol = slices.Index(paymentCols, "finished_at")

// janitor sweeps every JanitorInterval until ctx ends.
func (s *Store) janitor(ctx context.Context, every time.Duration) {
	defer close(s.janitorDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// An error (the store closing, a full disk) is tried again at
			// the next tick; a late sweep loses nothing.
			s.Sweep(ctx, s.cfg.now())
		}
	}
}

// sweepStmts are the writer's statements for sweeping, prepared on first
// use on the write connection.
type sweepStmts struct {
	payments, openAdvices, dropAdvices, dropTrace, dropPayment *sql.Stmt
	qrs, dropQR                                                *sql.Stmt
	orphans, dropOrphan, noteOrphan                            *sql.Stmt
}

func (w *sweepStmts) prepare(ctx context.Context, conn *sql.Conn) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.payments, `SELECT rowid, finished_at, key FROM payments INDEXED BY payments_finished
			WHERE finished_at <> 0 AND finished_at <= ?1 AND (finished_at, rowid) > (?2, ?3)
			ORDER BY finished_at, rowid LIMIT ?4`},
		{&w.openAdvices, `SELECT 1 FROM advices WHERE payment_key = ?1 AND state NOT IN ('DONE', 'MERGED') LIMIT 1`},
		{&w.dropAdvices, `DELETE FROM advices WHERE payment_key = ?1 RETURNING key`},
		{&w.dropTrace, `DELETE FROM trace WHERE payment_key = ?1`},
		{&w.dropPayment, `DELETE FROM payments WHERE key = ?1`},
		{&w.qrs, `SELECT rowid, expires_at, tran_id, payment_key FROM qr_codes INDEXED BY qr_codes_expires
			WHERE expires_at <= ?1 AND (expires_at, rowid) > (?2, ?3)
			ORDER BY expires_at, rowid LIMIT ?4`},
		{&w.dropQR, `DELETE FROM qr_codes WHERE tran_id = ?1`},
		{&w.orphans, `SELECT rowid, last_at, trace_key FROM orphan_traces INDEXED BY orphan_traces_last
			WHERE last_at <= ?1 AND (last_at, rowid) > (?2, ?3)
			ORDER BY last_at, rowid LIMIT ?4`},
		{&w.dropOrphan, `DELETE FROM orphan_traces WHERE trace_key = ?1`},
		{&w.noteOrphan, `INSERT INTO orphan_traces (trace_key, last_at) VALUES (?1, ?2)
			ON CONFLICT (trace_key) DO UPDATE SET last_at = max(last_at, excluded.last_at)`},
	} {
		stmt, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", p.sql, err)
		}
		*p.stmt = stmt
	}
	return nil
}

func (w *sweepStmts) close() {
	for _, st := range []*sql.Stmt{w.payments, w.openAdvices, w.dropAdvices, w.dropTrace, w.dropPayment,
		w.qrs, w.dropQR, w.orphans, w.dropOrphan, w.noteOrphan} {
		if st != nil {
			st.Close()
		}
	}
}

func (s *Store) sweepStatements(ctx context.Context) (*sweepStmts, error) {
	if s.sw.payments == nil {
		if err := s.sw.prepare(ctx, s.w); err != nil {
			s.sw.close()
			s.sw = sweepStmts{}
			return nil, err
		}
	}
	return &s.sw, nil
}

// sweepBatch runs one step of a sweep inside the writer's batch.
func (s *Store) sweepBatch(ctx context.Context, st *sweepStep) error {
	w, err := s.sweepStatements(ctx)
	if err != nil {
		return err
	}
	var stmt *sql.Stmt
	var cut int64
	switch st.phase {
	case sweepPayments:
		stmt, cut = w.payments, st.cutoff
	case sweepQRCodes:
		stmt, cut = w.qrs, st.qrCut
	default:
		stmt, cut = w.orphans, st.cutoff
	}
	type candidate struct{ key, paymentKey string }
	var cands []candidate
	rows, err := stmt.QueryContext(ctx, cut, st.afterAt, st.afterRow, sweepLimit)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c candidate
		dest := []any{&st.afterRow, &st.afterAt, &c.key}
		if st.phase == sweepQRCodes {
			dest = append(dest, &c.paymentKey)
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return err
		}
		cands = append(cands, c)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	st.more = len(cands) == sweepLimit
	for _, c := range cands {
		var err error
		switch st.phase {
		case sweepPayments:
			err = s.dropPayment(ctx, w, st, c.key)
		case sweepQRCodes:
			err = s.dropQR(ctx, w, st, c.key, c.paymentKey)
		default:
			err = s.dropOrphan(ctx, w, st, c.key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dropPayment deletes a finished payment with its advices and trace, unless
// one of its advices is not final.
func (s *Store) dropPayment(ctx context.Context, w *sweepStmts, st *sweepStep, key string) error {
	var one int
	switch err := w.openAdvices.QueryRowContext(ctx, key).Scan(&one); {
	case err == nil:
		st.swept.Kept++
		return nil
	case err != sql.ErrNoRows:
		return err
	}
	rows, err := w.dropAdvices.QueryContext(ctx, key)
	if err != nil {
		return err
	}
	for rows.Next() {
		var ak string
		if err := rows.Scan(&ak); err != nil {
			rows.Close()
			return err
		}
		s.ws.advices.cache.drop(ak)
		st.dropped = append(st.dropped, "a"+ak)
		st.swept.Advices++
	}
	if err := rows.Close(); err != nil {
		return err
	}
	n, err := execCount(ctx, w.dropTrace, key)
	if err != nil {
		return err
	}
	st.swept.TraceEntries += n
	if _, err := w.dropPayment.ExecContext(ctx, key); err != nil {
		return err
	}
	s.ws.payments.cache.drop(key)
	st.dropped = append(st.dropped, "p"+key)
	st.swept.Payments++
	return nil
}

// dropQR deletes an expired QR code and its trace unless a stored payment
// uses it.
func (s *Store) dropQR(ctx context.Context, w *sweepStmts, st *sweepStep, tranID, paymentKey string) error {
	if paymentKey != "" {
		if used, err := s.paymentExists(ctx, paymentKey); err != nil || used {
			return err
		}
	}
	n, err := execCount(ctx, w.dropTrace, "qr/"+tranID)
	if err != nil {
		return err
	}
	if _, err := w.dropQR.ExecContext(ctx, tranID); err != nil {
		return err
	}
	s.ws.qrs.cache.drop(tranID)
	st.dropped = append(st.dropped, "q"+tranID)
	st.swept.QRCodes++
	st.swept.TraceEntries += n
	return nil
}

// dropOrphan deletes a trace of nothing stored, unless something now has
// its key: then the trace lives as long as that.
func (s *Store) dropOrphan(ctx context.Context, w *sweepStmts, st *sweepStep, traceKey string) error {
	owned, err := s.traceOwned(ctx, traceKey)
	if err != nil {
		return err
	}
	if !owned {
		n, err := execCount(ctx, w.dropTrace, traceKey)
		if err != nil {
			return err
		}
		st.swept.TraceEntries += n
		st.swept.Orphans++
	}
	_, err = w.dropOrphan.ExecContext(ctx, traceKey)
	return err
}

// noteOrphanTrace lists a Change's trace key among the traces of nothing
// stored when neither the Change nor the store has a record of that key,
// with the time of its latest entry. Partners' audit trails are kept for
// ever and never listed.
func (s *Store) noteOrphanTrace(ctx context.Context, ch *change) error {
	k := ch.traceKey
	if strings.HasPrefix(k, "partner/") || (ch.payment != nil && ch.payment.key == k) ||
		(ch.qr != nil && "qr/"+ch.qr.key == k) {
		return nil
	}
	owned, err := s.traceOwned(ctx, k)
	if err != nil || owned {
		return err
	}
	w, err := s.sweepStatements(ctx)
	if err != nil {
		return err
	}
	_, err = w.noteOrphan.ExecContext(ctx, k, ch.traceAt)
	return err
}

// traceOwned reports whether a stored record has the trace key: a payment,
// or for "qr/TRANID" a QR code.
func (s *Store) traceOwned(ctx context.Context, traceKey string) (bool, error) {
	if tranID, ok := strings.CutPrefix(traceKey, "qr/"); ok {
		return s.exists(ctx, &s.ws.qrs, tranID)
	}
	return s.paymentExists(ctx, traceKey)
}

func (s *Store) paymentExists(ctx context.Context, key string) (bool, error) {
	return s.exists(ctx, &s.ws.payments, key)
}

// exists reports whether the table has key, from the writer's cache or the
// file.
func (s *Store) exists(ctx context.Context, t *table, key string) (bool, error) {
	if _, ok := t.cache.get(key); ok {
		return true, nil
	}
	var one int
	switch err := t.exists.QueryRowContext(ctx, key).Scan(&one); {
	case err == nil:
		return true, nil
	case err == sql.ErrNoRows:
		return false, nil
	default:
		return false, err
	}
}

func execCount(ctx context.Context, stmt *sql.Stmt, args ...any) (int, error) {
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// drop forgets key: the writer deleted its row.
func (c *cache) drop(key string) {
	delete(c.cur, key)
	delete(c.old, key)
}

// drop forgets the records with the given cache keys ("p"+payment key,
// "a"+advice key, "q"+tranId), once their deletion committed.
func (c *recordCache) drop(keys []string) {
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.cur, k)
		delete(c.old, k)
	}
}
