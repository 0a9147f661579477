package cryptopay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// The rail's record kinds and keys.
const (
	kindPayment  = "payment" // one per offered address, keyed by tranId
	kindCounter  = "counter" // the next derivation index
	kindCursor   = "cursor"  // the watcher's last processed block
	keyAddresses = "addresses"
	keyWatcher   = "watcher"

	// indexWatched marks the payments whose address is watched (until
	// WatchUntil); indexAddress+address finds a payment by its address.
	indexWatched = "watched"
	indexAddress = "addr:"
	indexRetry   = "retry"
)

// States of a payment record.
const (
	stateOpen    = "open"    // waiting for the amount
	statePaid    = "paid"    // the engine approved the payment
	stateLate    = "late"    // the money came when no payment could take it
	stateExpired = "expired" // no longer watched, never paid
)

// payment is the record of one offered address.
type payment struct {
	TranID   string        `json:"tranId"`
	Retailer string        `json:"retailer"`
	Index    uint32        `json:"index"`
	Address  chain.Address `json:"address"`
	Due      string        `json:"due"` // base units
	// Currency and Asked are the code's amount: the token's currency, or
	// an ISO 4217 one converted at Rate (tokens per major unit), pinned.
	Currency  string    `json:"currency"`
	Asked     int64     `json:"asked"`
	Rate      string    `json:"rate,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
	// WatchUntil is when the address stops being watched.
	WatchUntil time.Time  `json:"watchUntil"`
	Checkout   bool       `json:"checkout,omitempty"`
	State      string     `json:"state"`
	Transfers  []received `json:"transfers,omitempty"`
	// Reported is the amount last reported to the engine as seen.
	Reported string `json:"reported,omitempty"`
	// PaidTx is the transaction that completed the amount; PaidAt when the
	// engine approved the payment.
	PaidTx string    `json:"paidTx,omitempty"`
	PaidAt time.Time `json:"paidAt,omitzero"`
	// Retry says the payment is to be reported again: the money came
	// before the POS's payment request (indexed, so any replica's retry
	// loop finds it).
	Retry     bool      `json:"retry,omitempty"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"createdAt"`

	version int64
}

// received is one transfer to the address.
type received struct {
	ID        string        `json:"id"`
	Tx        chain.Hash    `json:"tx"`
	Block     uint64        `json:"block"`
	BlockHash chain.Hash    `json:"blockHash"`
	From      chain.Address `json:"from"`
	Value     string        `json:"value"`
	Confirmed bool          `json:"confirmed,omitempty"`
	At        time.Time     `json:"at"`
}

func (p *payment) record() (*partners.Record, error) {
	// Retailer: the record lives with its retailer's payments on a store
	// spread over shards (partners.ShardSafe), and keeps it on every write.
	rec := &partners.Record{Kind: kindPayment, Key: p.TranID, Version: p.version, Retailer: p.Retailer,
		Index: []string{indexAddress + strings.ToLower(p.Address.String()), "retailer:" + p.Retailer}}
	if !p.WatchUntil.IsZero() {
		rec.Index = append(rec.Index, indexWatched)
		rec.DueAt = p.WatchUntil
	}
	if p.Retry {
		rec.Index = append(rec.Index, indexRetry)
	}
	return rec, encode(rec, p)
}

func paymentOf(rec *partners.Record) (*payment, error) {
	p := &payment{}
	if err := decode(rec, p); err != nil {
		return nil, err
	}
	p.version = rec.Version
	return p, nil
}

// sums returns what arrived, and what of it is confirmed, in base units.
func (p *payment) sums() (seen, confirmed *big.Int) {
	seen, confirmed = new(big.Int), new(big.Int)
	for _, t := range p.Transfers {
		v, _ := new(big.Int).SetString(t.Value, 10)
		seen.Add(seen, v)
		if t.Confirmed {
			confirmed.Add(confirmed, v)
		}
	}
	return seen, confirmed
}

func (p *payment) due() *big.Int {
	v, _ := new(big.Int).SetString(p.Due, 10)
	return v
}

// counter is the next derivation index.
type counter struct {
	Next uint32 `json:"next"`
}

func encode(rec *partners.Record, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	rec.Data = b
	return nil
}

func decode(rec *partners.Record, v any) error {
	if err := json.Unmarshal(rec.Data, v); err != nil {
		return fmt.Errorf("record %s/%s: %w", rec.Kind, rec.Key, err)
	}
	return nil
}

// minor converts base units to the code's currency (rounding down), as a
// ledger amount: the token's minor units, or for a code in another
// currency its share of the amount asked at the pinned rate.
func (r *Rail) minor(v *big.Int, p *payment) *wire.LedgerAmount {
	var m *big.Int
	if p.Currency == r.opts.Currency {
		m = new(big.Int).Quo(v, r.unit)
	} else {
		m = new(big.Int).Mul(v, big.NewInt(p.Asked))
		m.Quo(m, p.due())
	}
	n := int64(math.MaxInt64)
	if m.IsInt64() {
		n = m.Int64()
	}
	return &wire.LedgerAmount{Amount: n, Currency: p.Currency}
}

// --- the watcher's cursor -----------------------------------------------------

// cursor keeps the watcher's last processed block as a record, shared by
// every replica: any replica's saved block was fully processed by it (its
// Sink committed first), so starting from any of them misses nothing.
type cursor struct{ r *Rail }

type cursorData struct {
	Number uint64     `json:"number"`
	Hash   chain.Hash `json:"hash"`
}

// Load returns the saved cursor. The first one is created here, never
// overwritten by a later first save (see Rail.ensureCursor), so the
// watcher never starts past a block an offered address could be paid in.
func (c cursor) Load(ctx context.Context) (chain.BlockRef, bool, error) {
	b, ok, err := c.load(ctx)
	if ok || err != nil {
		return b, ok, err
	}
	if err := c.r.ensureCursor(ctx); err != nil {
		return chain.BlockRef{}, false, err
	}
	return c.load(ctx)
}

func (c cursor) load(ctx context.Context) (chain.BlockRef, bool, error) {
	rec, err := c.r.records.Get(ctx, kindCursor, keyWatcher)
	if errors.Is(err, partners.ErrNotFound) {
		return chain.BlockRef{}, false, nil
	}
	if err != nil {
		return chain.BlockRef{}, false, err
	}
	var d cursorData
	if err := decode(rec, &d); err != nil {
		return chain.BlockRef{}, false, err
	}
	return chain.BlockRef{Number: d.Number, Hash: d.Hash}, true, nil
}

func (c cursor) Save(ctx context.Context, b chain.BlockRef) error {
	for range 10 {
		rec, err := c.r.records.Get(ctx, kindCursor, keyWatcher)
		switch {
		case errors.Is(err, partners.ErrNotFound):
			rec = &partners.Record{Kind: kindCursor, Key: keyWatcher}
		case err != nil:
			return err
		}
		if err := encode(rec, cursorData{Number: b.Number, Hash: b.Hash}); err != nil {
			return err
		}
		err = c.r.records.Commit(ctx, rec)
		if !errors.Is(err, partners.ErrConflict) && !errors.Is(err, partners.ErrDuplicate) {
			return err
		}
	}
	return errors.New("saving the cursor: too much contention")
}

// create saves the first cursor, unless one exists (ErrDuplicate): the
// watcher's own first save, or another replica's, wins.
func (c cursor) create(ctx context.Context, b chain.BlockRef) error {
	rec := &partners.Record{Kind: kindCursor, Key: keyWatcher}
	if err := encode(rec, cursorData{Number: b.Number, Hash: b.Hash}); err != nil {
		return err
	}
	return c.r.records.Commit(ctx, rec)
}

// recipients lists the watched addresses, from the store, so that every
// replica asks for every replica's offers.
func (r *Rail) recipients(ctx context.Context) ([]chain.Address, error) {
	ps, err := r.watched(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]chain.Address, len(ps))
	for i, p := range ps {
		out[i] = p.Address
	}
	return out, nil
}

// watched returns the payments whose addresses are watched, page by page.
func (r *Rail) watched(ctx context.Context) ([]*payment, error) {
	var out []*payment
	q := partners.RecordQuery{Kind: kindPayment, Index: indexWatched, Limit: 1000}
	for {
		recs, err := r.records.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			p, err := paymentOf(rec)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		if len(recs) < q.Limit {
			return out, nil
		}
		q.After = recs[len(recs)-1].Key
	}
}

// byAddress returns the watched payment of an address, or nil.
func (r *Rail) byAddress(ctx context.Context, a chain.Address) (*payment, error) {
	recs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindPayment, Index: indexAddress + strings.ToLower(a.String()), Limit: 1})
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return paymentOf(recs[0])
}

// retry reports again the payments whose money came before their payment
// request.
func (r *Rail) retry(ctx context.Context) error {
	recs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindPayment, Index: indexRetry, Limit: 100})
	if err != nil {
		return err
	}
	for _, rec := range recs {
		p, err := paymentOf(rec)
		if err != nil {
			return err
		}
		if err := r.change(ctx, p.Address, func(p *payment) bool { return p.Retry }); err != nil {
			return err
		}
	}
	return nil
}

// sweep lets go of addresses past their watch.
func (r *Rail) sweep(ctx context.Context) error {
	recs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindPayment, DueBy: r.now(), Limit: 200})
	if err != nil {
		return err
	}
	for _, rec := range recs {
		p, err := paymentOf(rec)
		if err != nil {
			return err
		}
		p.WatchUntil = time.Time{}
		ended := p.State == stateOpen
		if ended {
			p.State = stateExpired
		}
		out, err := p.record()
		if err != nil {
			return err
		}
		switch err := r.records.Commit(ctx, out); {
		case errors.Is(err, partners.ErrConflict):
			continue // changed meanwhile: the next sweep sees it again
		case err != nil:
			return err
		}
		if ended {
			r.host.OfferEnded(ctx, p.TranID, r.id, "no longer watching "+p.Address.String()+": unpaid")
		}
	}
	return nil
}
