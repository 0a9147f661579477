package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/qrswitch/qrswitch/partners"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Rails' records (partners.Record) live in rail_records, keyed by
// owner/kind/key, with their secondary keys in rail_index. They are written
// by the one writer with the engine's records, in the same transactions,
// and read from the pool without a cache: rails read them far less often
// than the engine reads payments.

var recordCols = []string{"owner", "kind", "rkey", "due_at"}

// railRow is a record encoded for the writer: its row, and its secondary
// keys.
type railRow struct {
	row
	owner, kind, key string
	index            []string
}

func railKey(r *partners.Record) string { return r.Owner + "/" + r.Kind + "/" + r.Key }

func encodeRecord(r *partners.Record) (*railRow, error) {
	if err := qrswitch.CheckRecord(r); err != nil {
		return nil, err
	}
	next := *r
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	var due int64
	if !r.DueAt.IsZero() {
		due = nanos(r.DueAt)
	}
	return &railRow{
		row:   row{key: railKey(r), version: r.Version, data: data, vals: []any{r.Owner, r.Kind, r.Key, due}},
		owner: r.Owner, kind: r.Kind, key: r.Key, index: r.Index,
	}, nil
}

// writeIndex replaces the secondary keys of a record just written.
func (w *writeStmts) writeIndex(ctx context.Context, r *railRow) error {
	if r.version != 0 {
		if _, err := w.dropIndex.ExecContext(ctx, r.owner, r.kind, r.key); err != nil {
			return err
		}
	}
	for _, idx := range r.index {
		if _, err := w.addIndex.ExecContext(ctx, r.owner, r.kind, idx, r.key); err != nil {
			return err
		}
	}
	return nil
}

// Record returns a rail's record, or ErrNotFound.
func (s *Store) Record(ctx context.Context, owner, kind, key string) (*partners.Record, error) {
	r := new(partners.Record)
	k := railKey(&partners.Record{Owner: owner, Kind: kind, Key: key})
	if err := s.one(ctx, s.rs.record, "record", k, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Records returns the records of one owner that q selects.
func (s *Store) Records(ctx context.Context, owner string, q partners.RecordQuery) ([]*partners.Record, error) {
	if q.Kind == "" {
		return nil, errors.New("listing records: a kind is required")
	}
	n := recordLimit(q.Limit)
	var query string
	args := []any{owner, q.Kind}
	switch {
	case !q.DueBy.IsZero():
		args = append(args, nanos(q.DueBy), n)
		query = `SELECT data FROM rail_records INDEXED BY rail_records_due
			WHERE owner = ?1 AND kind = ?2 AND due_at <> 0 AND due_at <= ?3 ORDER BY due_at, rkey LIMIT ?4`
	default:
		from, col := "rail_records r", "r.rkey"
		where := "r.owner = ?1 AND r.kind = ?2"
		if q.Index != "" {
			from = "rail_index i JOIN rail_records r ON r.key = i.owner || '/' || i.kind || '/' || i.rkey"
			col = "i.rkey"
			args = append(args, q.Index)
			where = fmt.Sprintf("i.owner = ?1 AND i.kind = ?2 AND i.idx = ?%d", len(args))
		}
		if q.After != "" {
			args = append(args, q.After)
			where += fmt.Sprintf(" AND %s > ?%d", col, len(args))
		}
		if q.Before != "" {
			args = append(args, q.Before)
			where += fmt.Sprintf(" AND %s < ?%d", col, len(args))
		}
		order := "ASC"
		if q.Desc {
			order = "DESC"
		}
		args = append(args, n)
		query = fmt.Sprintf("SELECT r.data FROM %s WHERE %s ORDER BY %s %s LIMIT ?%d", from, where, col, order, len(args))
	}
	return listPtr[partners.Record](ctx, s, "listing records", nil, query, args...)
}

// recordLimit is a RecordQuery's limit: default 50, at most 1000.
func recordLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 1000:
		return 1000
	}
	return n
}
