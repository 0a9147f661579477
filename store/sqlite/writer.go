package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	sweep  *sweepStep
	// orig is the Change as the caller gave it, for the record cache.
	orig *qrswitch.Change

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
	qr       *row
	payment  *row
	advices  []*row
	control  *row
	records  []*railRow
	traceKey string
	trace    []string
	traceAt  int64 // the latest At of trace, as nanos
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
	o := &op{change: ch, orig: c, done: make(chan struct{})}
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
	if c.Control != nil {
		c.Control.Version++
	}
	for _, r := range c.Records {
		r.Version++
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
	for i, a := range c.Advices {
		for _, b := range c.Advices[:i] {
			if a.Key() == b.Key() {
				return nil, fmt.Errorf("committing: advice %s appears twice in one Change", a.Key())
			}
		}
		r, err := encodeAdvice(a)
		if err != nil {
			return nil, err
		}
		ch.advices = append(ch.advices, r)
	}
	if c.Control != nil {
		if ch.control, err = encodeControl(c.Control); err != nil {
			return nil, err
		}
	}
	for i, r := range c.Records {
		for _, o := range c.Records[:i] {
			if railKey(r) == railKey(o) {
				return nil, fmt.Errorf("committing: record %s appears twice in one Change", railKey(r))
			}
		}
		rr, err := encodeRecord(r)
		if err != nil {
			return nil, err
		}
		ch.records = append(ch.records, rr)
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
			ch.traceAt = max(ch.traceAt, nanos(c.Trace[i].At))
			b, err := json.Marshal(&c.Trace[i])
			if err != nil {
				return nil, fmt.Errorf("encoding trace entry: %w", err)
			}
			ch.trace[i] = string(b)
		}
	}
	if ch.qr == nil && ch.payment == nil && len(ch.advices) == 0 && ch.control == nil && len(ch.records) == 0 && len(ch.trace) == 0 {
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

// runBatch applies batch in one transaction and answers every op.
func (s *Store) runBatch(batch []*op) {
	ctx := context.Background() // a batch is never abandoned half-way
	defer func() {
		for _, o := range batch {
			close(o.done)
		}
	}()
	fail := func(err error) {
		// The rolled-back writes may be in the caches.
		s.ws.reset()
		for _, o := range batch {
			o.err, o.claimed = err, nil
		}
	}
	if _, err := s.ws.begin.ExecContext(ctx); err != nil {
		fail(unavailable("beginning a batch", err))
		return
	}
	s.ws.trace = s.ws.trace[:0]
	for _, o := range batch {
		var err error
		switch {
		case o.change != nil:
			err = s.apply(ctx, o.change)
		case o.sweep != nil:
			err = s.sweepBatch(ctx, o.sweep)
		default:
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
	if err := s.ws.appendTrace(ctx, s.w); err != nil {
		s.ws.rollback.ExecContext(ctx)
		fail(unavailable("writing a batch", err))
		return
	}
	if _, err := s.ws.commit.ExecContext(ctx); err != nil {
		s.ws.rollback.ExecContext(ctx)
		fail(unavailable("committing a batch", err))
		return
	}
	s.batches.Add(1)
	// The record cache learns every new version before any caller hears of
	// its commit, so a caller that then reads gets what was committed.
	for _, o := range batch {
		switch {
		case o.err != nil:
		case o.change != nil:
			s.commits.Add(1)
			s.records.putCommitted(o.orig)
		case o.sweep != nil:
			s.sweeps.Add(1)
			s.records.drop(o.sweep.dropped)
		default:
			s.claims.Add(1)
			for _, a := range o.claimed {
				s.records.putAdvice(a)
			}
		}
	}
}

// A write is one record's INSERT or UPDATE, planned by check.
type write struct {
	t       *table
	r       *row
	changed uint64 // for an update, a bit per column of t whose value moves
	checked bool   // for a create, whether check already found the key unused
}

// apply writes one Change inside the batch's transaction, checking every
// record before it writes any: a Change that fails a check returns its
// *CommitError having written nothing, and the batch goes on without it, so
// no savepoint is needed to undo half a Change.
//
// Updates are checked against the writer's cache or the stored row. The first
// create is its own check (INSERT … ON CONFLICT DO NOTHING, run before
// anything else of the Change is written); other creates are checked by
// reading. encodeChange refuses a Change naming one record twice, the one
// case where a write could fail after its checks passed.
func (s *Store) apply(ctx context.Context, ch *change) error {
	var plan [8]write
	writes := plan[:0]
	creates := 0
	add := func(t *table, r *row) error {
		w := write{t: t, r: r}
		var err error
		if r.version != 0 {
			w.changed, err = s.ws.checkUpdate(ctx, t, r)
		} else if creates++; creates > 1 {
			err = s.ws.checkCreate(ctx, t, r)
			w.checked = true
		}
		if err != nil {
			return err
		}
		writes = append(writes, w)
		return nil
	}
	if ch.qr != nil {
		if err := add(&s.ws.qrs, ch.qr); err != nil {
			return err
		}
	}
	if ch.payment != nil {
		if err := add(&s.ws.payments, ch.payment); err != nil {
			return err
		}
	}
	for _, r := range ch.advices {
		if err := add(&s.ws.advices, r); err != nil {
			return err
		}
	}
	if ch.control != nil {
		if err := add(&s.ws.controls, ch.control); err != nil {
			return err
		}
	}
	for _, r := range ch.records {
		if err := add(&s.ws.records, &r.row); err != nil {
			return err
		}
	}
	// The unchecked create goes first: if it meets an existing key, nothing
	// has been written.
	slices.SortStableFunc(writes, func(a, b write) int {
		return cmpBool(a.r.version == 0 && !a.checked, b.r.version == 0 && !b.checked)
	})
	for _, w := range writes {
		if err := s.ws.write(ctx, s.w, w); err != nil {
			return err
		}
	}
	for _, r := range ch.records {
		if err := s.ws.writeIndex(ctx, r); err != nil {
			return err
		}
	}
	if len(ch.trace) > 0 {
		if err := s.noteOrphanTrace(ctx, ch); err != nil {
			return err
		}
	}
	for _, t := range ch.trace {
		s.ws.trace = append(s.ws.trace, ch.traceKey, t)
	}
	return nil
}

// cmpBool orders true before false.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// checkUpdate applies the update rule: the stored version must be r's. It
// returns the columns whose values r changes.
func (w *writeStmts) checkUpdate(ctx context.Context, t *table, r *row) (uint64, error) {
	cur, ok := t.cache.get(r.key)
	if !ok {
		vals := make([]any, 1+len(t.cols))
		dest := make([]any, len(vals))
		for i := range vals {
			dest[i] = &vals[i]
		}
		switch err := t.current.QueryRowContext(ctx, r.key).Scan(dest...); {
		case errors.Is(err, sql.ErrNoRows):
			return 0, &qrswitch.CommitError{Record: t.record, Key: r.key, Err: qrswitch.ErrConflict}
		case err != nil:
			return 0, err
		}
		cur = known{version: vals[0].(int64), vals: vals[1:]}
		t.cache.put(r.key, cur)
	}
	if cur.version != r.version {
		return 0, &qrswitch.CommitError{Record: t.record, Key: r.key, Err: qrswitch.ErrConflict}
	}
	for i := range r.vals {
		if t.sticky&(1<<i) != 0 && cur.vals[i] != int64(0) {
			r.vals[i] = cur.vals[i]
		}
	}
	var changed uint64
	for i, v := range r.vals {
		if cur.vals[i] != v {
			changed |= 1 << i
		}
	}
	if changed&t.uniqueMask != 0 {
		if err := w.checkUnique(ctx, t, r); err != nil {
			return 0, err
		}
	}
	return changed, nil
}

// checkCreate applies the create rule by reading: the key, and the table's
// unique columns, must be unused.
func (w *writeStmts) checkCreate(ctx context.Context, t *table, r *row) error {
	if _, ok := t.cache.get(r.key); ok {
		return &qrswitch.CommitError{Record: t.record, Key: r.key, Err: qrswitch.ErrDuplicate}
	}
	var one int
	switch err := t.exists.QueryRowContext(ctx, r.key).Scan(&one); {
	case err == nil:
		return &qrswitch.CommitError{Record: t.record, Key: r.key, Err: qrswitch.ErrDuplicate}
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	if t.taken != nil {
		return w.checkUnique(ctx, t, r)
	}
	return nil
}

// checkUnique reports ErrDuplicate when another row holds r's values of the
// table's unique columns.
func (w *writeStmts) checkUnique(ctx context.Context, t *table, r *row) error {
	args := []any{r.key}
	for _, i := range t.unique {
		args = append(args, r.vals[i])
	}
	var one int
	switch err := t.taken.QueryRowContext(ctx, args...).Scan(&one); {
	case err == nil:
		return &qrswitch.CommitError{Record: t.record, Key: r.key, Err: qrswitch.ErrDuplicate}
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	return nil
}

// write makes a planned write and records it in the cache. An unchecked
// create that meets an existing row is the Change's ErrDuplicate; any other
// write must touch exactly one row, or the checks were wrong and the batch
// fails rather than commit it.
func (w *writeStmts) write(ctx context.Context, conn *sql.Conn, pw write) error {
	t, r := pw.t, pw.r
	var res sql.Result
	var err error
	if r.version == 0 {
		args := make([]any, 0, 2+len(r.vals))
		args = append(append(append(args, r.key), r.vals...), r.data)
		res, err = t.insert.ExecContext(ctx, args...)
	} else {
		var stmt *sql.Stmt
		if stmt, err = t.update(ctx, conn, pw.changed); err != nil {
			return err
		}
		args := []any{r.key, r.version, r.data}
		for i, v := range r.vals {
			if pw.changed&(1<<i) != 0 {
				args = append(args, v)
			}
		}
		res, err = stmt.ExecContext(ctx, args...)
	}
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 && r.version == 0 && !pw.checked {
		return &qrswitch.CommitError{Record: t.record, Key: r.key, Err: qrswitch.ErrDuplicate}
	}
	if n != 1 {
		return fmt.Errorf("writing %s %s after its checks passed touched %d rows", t.record, r.key, n)
	}
	t.cache.put(r.key, known{version: r.version + 1, vals: r.vals})
	return nil
}

// claimAdvices leases up to c.Max due advices inside the batch's
// transaction. The query already leaves out payments with a live lease; one
// advice per payment is kept here, in NextAt order.
func (s *Store) claimAdvices(ctx context.Context, c *qrswitch.Claim) ([]*qrswitch.Advice, error) {
	now, dueBy := nanos(c.Now), nanos(c.Now)
	if c.DueBy.After(c.Now) {
		dueBy = nanos(c.DueBy)
	}
	stmt, args := s.ws.dueAny, []any{now, dueBy}
	if c.Destination != "" {
		stmt, args = s.ws.due, []any{now, dueBy, c.Destination}
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
		s.ws.advices.cache.put(a.Key(), known{version: a.Version, vals: adviceVals(a)})
	}
	return slices.Clip(picked), nil
}

// A table is one record table and the writer's statements on it.
type table struct {
	name, record, key string
	cols              []string // indexed columns, as in row.vals
	// unique lists columns that together must be unused by any other row;
	// uniqueMask has their bits.
	unique     []int
	uniqueMask uint64
	// sticky has the bits of integer columns that keep their first
	// non-zero value (a payment's finished_at).
	sticky uint64

	insert, current, exists, taken *sql.Stmt
	updates                        map[uint64]*sql.Stmt // by the set of columns changed
	cache                          cache
}

func (t *table) prepare(ctx context.Context, conn *sql.Conn) error {
	marks := make([]string, len(t.cols))
	for i := range marks {
		marks[i] = fmt.Sprintf("?%d", i+2)
	}
	stmts := []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&t.insert, fmt.Sprintf("INSERT INTO %s (%s, %s, version, data) VALUES (?1, %s, 1, ?%d) ON CONFLICT DO NOTHING",
			t.name, t.key, strings.Join(t.cols, ", "), strings.Join(marks, ", "), len(t.cols)+2)},
		{&t.current, fmt.Sprintf("SELECT version, %s FROM %s WHERE %s = ?1", strings.Join(t.cols, ", "), t.name, t.key)},
		{&t.exists, fmt.Sprintf("SELECT 1 FROM %s WHERE %s = ?1", t.name, t.key)},
	}
	if len(t.unique) > 0 {
		var where []string
		for n, i := range t.unique {
			t.uniqueMask |= 1 << i
			where = append(where, fmt.Sprintf("%s = ?%d", t.cols[i], n+2))
		}
		stmts = append(stmts, struct {
			stmt **sql.Stmt
			sql  string
		}{&t.taken, fmt.Sprintf("SELECT 1 FROM %s WHERE %s AND %s <> ?1", t.name, strings.Join(where, " AND "), t.key)})
	}
	for _, p := range stmts {
		stmt, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", p.sql, err)
		}
		*p.stmt = stmt
	}
	t.updates = make(map[uint64]*sql.Stmt)
	t.cache.reset()
	return nil
}

// update returns the UPDATE that sets exactly the changed columns, besides
// version and data. SQLite rewrites the entries of every index on a column
// an UPDATE sets, even to an equal value; setting only what moved keeps a
// typical payment update to the table row and one or two index entries
// instead of all thirteen. Statements are prepared once per column set.
func (t *table) update(ctx context.Context, conn *sql.Conn, changed uint64) (*sql.Stmt, error) {
	if stmt, ok := t.updates[changed]; ok {
		return stmt, nil
	}
	set := []string{"version = ?2 + 1", "data = ?3"}
	for i, c := range t.cols {
		if changed&(1<<i) != 0 {
			set = append(set, fmt.Sprintf("%s = ?%d", c, len(set)+2))
		}
	}
	stmt, err := conn.PrepareContext(ctx, fmt.Sprintf("UPDATE %s SET %s WHERE %s = ?1 AND version = ?2",
		t.name, strings.Join(set, ", "), t.key))
	if err != nil {
		return nil, err
	}
	t.updates[changed] = stmt
	return stmt, nil
}

func (t *table) close() {
	for _, st := range []*sql.Stmt{t.insert, t.current, t.exists, t.taken} {
		if st != nil {
			st.Close()
		}
	}
	for _, st := range t.updates {
		st.Close()
	}
}

// known is what the writer knows of a stored row: its version and the
// values of its indexed columns.
type known struct {
	version int64
	vals    []any
}

// cache remembers the rows the writer wrote or read recently, so that an
// update is checked without reading its row. Only the writer writes the
// file (the lock keeps other processes out), so what the cache says is what
// the file holds, as long as it forgets a batch that rolls back (reset). Two
// generations of at most cacheSize entries bound its memory: when the
// current one fills up, it becomes the old one and the older is dropped.
type cache struct {
	cur, old map[string]known
}

const cacheSize = 16384

func (c *cache) get(key string) (known, bool) {
	if k, ok := c.cur[key]; ok {
		return k, true
	}
	k, ok := c.old[key]
	return k, ok
}

func (c *cache) put(key string, k known) {
	if len(c.cur) >= cacheSize {
		c.old, c.cur = c.cur, make(map[string]known, cacheSize)
	}
	c.cur[key] = k
}

func (c *cache) reset() { c.cur, c.old = make(map[string]known), nil }

// writeStmts are the writer's prepared statements and caches, bound to its
// connection and used only by the writer goroutine.
type writeStmts struct {
	begin, commit, rollback                   *sql.Stmt
	qrs, payments, advices, controls, records table
	lease, due, dueAny                        *sql.Stmt
	dropIndex, addIndex                       *sql.Stmt
	// trace collects the batch's trace rows (key, data, key, data, …) for
	// appendTrace; appendTrace[n] inserts n rows.
	trace       []any
	insertTrace map[int]*sql.Stmt
}

// maxTraceRows is the most trace rows one INSERT carries.
const maxTraceRows = 64

func (w *writeStmts) prepare(ctx context.Context, conn *sql.Conn) error {
	w.qrs = table{name: "qr_codes", record: "qr", key: "tran_id", cols: qrCols, unique: []int{0, 1}}
	w.payments = table{name: "payments", record: "payment", key: "key", cols: paymentCols, sticky: 1 << finishedCol}
	w.advices = table{name: "advices", record: "advice", key: "key", cols: adviceCols}
	w.controls = table{name: "partner_controls", record: "control", key: "partner_id", cols: controlCols}
	w.records = table{name: "rail_records", record: "record", key: "key", cols: recordCols}
	for _, t := range w.tables() {
		if err := t.prepare(ctx, conn); err != nil {
			return fmt.Errorf("table %s: %w", t.name, err)
		}
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.lease, `UPDATE advices SET version = ?2, lease_until = ?3, data = ?4 WHERE key = ?1`},
		{&w.due, dueSQL("advices_due", "a.partner_id = ?3 AND")},
		{&w.dueAny, dueSQL("advices_due_any", "")},
		{&w.dropIndex, `DELETE FROM rail_index WHERE owner = ?1 AND kind = ?2 AND rkey = ?3`},
		{&w.addIndex, `INSERT INTO rail_index (owner, kind, idx, rkey) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING`},
	} {
		stmt, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", p.sql, err)
		}
		*p.stmt = stmt
	}
	w.insertTrace = make(map[int]*sql.Stmt)
	return nil
}

func (w *writeStmts) tables() []*table {
	return []*table{&w.qrs, &w.payments, &w.advices, &w.controls, &w.records}
}

// reset forgets what the caches know, after a rollback.
func (w *writeStmts) reset() {
	for _, t := range w.tables() {
		t.cache.reset()
	}
}

// appendTrace inserts the batch's trace rows in the order their Changes were
// applied, many rows per statement. Only the rows of Changes that passed
// their checks were collected.
func (w *writeStmts) appendTrace(ctx context.Context, conn *sql.Conn) error {
	for rows := w.trace; len(rows) > 0; {
		n := min(len(rows)/2, maxTraceRows)
		stmt, ok := w.insertTrace[n]
		if !ok {
			values := strings.Repeat("(?, ?), ", n)
			var err error
			stmt, err = conn.PrepareContext(ctx, "INSERT INTO trace (payment_key, data) VALUES "+values[:len(values)-2])
			if err != nil {
				return err
			}
			w.insertTrace[n] = stmt
		}
		if _, err := stmt.ExecContext(ctx, rows[:2*n]...); err != nil {
			return err
		}
		rows = rows[2*n:]
	}
	w.trace = w.trace[:0]
	return nil
}

// dueSQL selects claimable advices (?1 now, ?2 due by), oldest NextAt first, leaving out every
// payment that has an advice under a live lease. The queue's partial index
// is named, because without statistics the planner prefers advices_state
// and a sort.
func dueSQL(index, partner string) string {
	return `SELECT a.payment_key, a.data FROM advices a INDEXED BY ` + index + `
		WHERE ` + partner + ` a.state = 'PENDING' AND a.next_at <= ?2 AND a.lease_until <= ?1
		AND NOT EXISTS (SELECT 1 FROM advices o WHERE o.payment_key = a.payment_key AND o.lease_until > ?1)
		ORDER BY a.next_at, a.rowid`
}

func (w *writeStmts) close() {
	for _, t := range w.tables() {
		t.close()
	}
	for _, st := range []*sql.Stmt{w.begin, w.commit, w.rollback, w.lease, w.due, w.dueAny, w.dropIndex, w.addIndex} {
		if st != nil {
			st.Close()
		}
	}
	for _, st := range w.insertTrace {
		st.Close()
	}
}
