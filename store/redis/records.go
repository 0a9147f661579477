package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/qrswitch/qrswitch/partners"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Rails' records (partners.Record) are hashes P rec:OWNER/KIND/KEY (d, v,
// idx: the secondary keys one per line), with their keys in the sorted sets
// P rk:OWNER/KIND (all, lexical), P ri:OWNER/KIND:INDEX (by secondary key,
// lexical) and P rd:OWNER/KIND (due, scored by DueAt in ms). The commit
// script writes them with the engine's records, in the same atomic step.
// They have no lifetime: a rail's records stay until the rail removes them.
// On a sharded store a record lives in its retailer's shard
// (partners.Record.Retailer), or in the home slot; a listing reads every
// one of them.

func recordKey(r *partners.Record) string { return r.Owner + "/" + r.Kind + "/" + r.Key }

// Record returns a rail's record, or ErrNotFound. On a sharded store it is
// looked for in the home slot, then in every shard (and its place
// remembered: a record never moves).
func (s *Store) Record(ctx context.Context, owner, kind, key string) (*partners.Record, error) {
	k := recordKey(&partners.Record{Owner: owner, Kind: kind, Key: key})
	sh, ok := s.placed.get("rec:" + k)
	if !ok {
		sh = s.home
	}
	vals, err := s.hmgetFound(ctx, sh, opRecord, "record", "rec:", k, []string{"d", "v"})
	if err != nil {
		return nil, err
	}
	return decodeRecord(vals[0], vals[1])
}

// recordSlots are the slots holding rails' records: the home slot, and on a
// sharded store every shard too.
func (s *Store) recordSlots() []*shard {
	if len(s.shards) == 1 {
		return s.shards
	}
	return append([]*shard{s.home}, s.shards...)
}

// Records returns the records of one owner that q selects.
func (s *Store) Records(ctx context.Context, owner string, q partners.RecordQuery) ([]*partners.Record, error) {
	if q.Kind == "" {
		return nil, errors.New("listing records: a kind is required")
	}
	n := q.Limit
	switch {
	case n <= 0:
		n = 50
	case n > 1000:
		n = 1000
	}
	mode, lo, hi, desc := "key", "-", "+", ""
	if q.After != "" {
		lo = "(" + q.After
	}
	if q.Before != "" {
		hi = "(" + q.Before
	}
	if q.Index != "" {
		mode = "index"
	}
	if q.Desc {
		desc = "desc"
	}
	if !q.DueBy.IsZero() {
		mode, lo, hi = "due", "-inf", strconv.FormatInt(q.DueBy.UnixMilli(), 10)
	}
	slots := s.recordSlots()
	out, err := gather(slots, func(sh *shard) ([]*partners.Record, error) {
		res, err := recordsScript.Run(withOp(ctx, opRecords), s.c, sh.route, sh.prefix, owner+"/"+q.Kind, mode, q.Index, lo, hi, desc, n).Slice()
		if err != nil {
			return nil, unavailable("listing records", err)
		}
		var rs []*partners.Record
		for i := 0; i+1 < len(res); i += 2 {
			r, err := decodeRecord(res[i], res[i+1])
			if err != nil {
				return nil, err
			}
			rs = append(rs, r)
		}
		return rs, nil
	})
	if err != nil {
		return nil, err
	}
	if len(slots) > 1 {
		// Each slot gave its first n in the listing's order: merged and cut,
		// they are the store's first n.
		slices.SortFunc(out, func(a, b *partners.Record) int {
			if mode == "due" {
				return cmp.Or(cmp.Compare(a.DueAt.UnixMilli(), b.DueAt.UnixMilli()), strings.Compare(a.Key, b.Key))
			}
			if desc != "" {
				a, b = b, a
			}
			return strings.Compare(a.Key, b.Key)
		})
		out = out[:min(len(out), n)]
	}
	return out, nil
}

func decodeRecord(d, v any) (*partners.Record, error) {
	data, _ := d.(string)
	r := new(partners.Record)
	if err := json.Unmarshal([]byte(data), r); err != nil {
		return nil, fmt.Errorf("decoding record: %w", err)
	}
	vs, _ := v.(string)
	ver, err := strconv.ParseInt(vs, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("decoding record version %q: %w", vs, err)
	}
	r.Version = ver
	return r, nil
}

var _ qrswitch.Store = (*Store)(nil)
