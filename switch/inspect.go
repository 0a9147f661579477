package qrswitch

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/qrswitch/qrswitch/partners"
)

// RailRecord is one of a rail's records as support sees it.
type RailRecord struct {
	Key     string    `json:"key"`
	DueAt   time.Time `json:"dueAt,omitzero"`
	Version int64     `json:"version"`
	View    any       `json:"view"`
}

// RailKinds returns the kinds of records partner's rail shows support, or
// ErrNotFound when there is no such partner or its rail shows none.
func (e *Engine) RailKinds(partnerID string) ([]string, error) {
	p, ok := e.partners[partnerID]
	if !ok {
		return nil, fmt.Errorf("partner %s: %w", partnerID, ErrNotFound)
	}
	in, ok := p.Rail.(partners.Inspector)
	if !ok {
		return nil, fmt.Errorf("partner %s's rail shows no records: %w", partnerID, ErrNotFound)
	}
	return in.SupportKinds(), nil
}

// RailRecords lists a rail's records of one kind for support, newest key
// first, from before (exclusive; "" from the newest), at most limit.
func (e *Engine) RailRecords(ctx context.Context, partnerID, kind, before string, limit int) ([]RailRecord, error) {
	kinds, err := e.RailKinds(partnerID)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(kinds, kind) {
		return nil, fmt.Errorf("partner %s shows no records of kind %s: %w", partnerID, kind, ErrNotFound)
	}
	in := e.partners[partnerID].Rail.(partners.Inspector)
	recs, err := RailRecords(e.store, partnerID).List(ctx, partners.RecordQuery{Kind: kind, Before: before, Desc: true, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]RailRecord, 0, len(recs))
	for _, r := range recs {
		v, err := in.SupportView(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("showing %s %s: %w", kind, r.Key, err)
		}
		out = append(out, RailRecord{Key: r.Key, DueAt: r.DueAt, Version: r.Version, View: v})
	}
	return out, nil
}
