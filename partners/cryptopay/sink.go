package cryptopay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// sink takes what the watcher reads from the chain into the payments'
// records, and reports to the engine. Every change is a versioned commit
// of one payment's record (with the approval, when it completes the
// amount), idempotent by transfer id: the watcher delivers at least once.
type sink struct{ r *Rail }

// reorgNote starts the note of a paid payment whose money a
// reorganisation took back.
const reorgNote = "a reorganisation"

// errAgain: the record changed under us; read it again and decide again.
var errAgain = errors.New("record changed: again")

// Blocks records new transfers and confirmations, address by address.
func (s sink) Blocks(ctx context.Context, b *chain.Batch) error {
	added := map[chain.Address][]chain.Transfer{}
	confirmed := map[chain.Address]map[string]bool{}
	for _, t := range b.Transfers {
		added[t.To] = append(added[t.To], t)
	}
	for _, t := range b.Confirmed {
		if confirmed[t.To] == nil {
			confirmed[t.To] = map[string]bool{}
		}
		confirmed[t.To][t.ID()] = true
	}
	addrs := make([]chain.Address, 0, len(added)+len(confirmed))
	for a := range added {
		addrs = append(addrs, a)
	}
	for a := range confirmed {
		if _, ok := added[a]; !ok {
			addrs = append(addrs, a)
		}
	}
	slices.SortFunc(addrs, func(x, y chain.Address) int { return strings.Compare(x.String(), y.String()) })
	for _, a := range addrs {
		err := s.r.change(ctx, a, func(p *payment) bool {
			changed := false
			for _, t := range added[a] {
				if !slices.ContainsFunc(p.Transfers, func(x received) bool { return x.ID == t.ID() }) {
					p.Transfers = append(p.Transfers, received{ID: t.ID(), Tx: t.TxHash, Block: t.BlockNumber, BlockHash: t.BlockHash,
						From: t.From, Value: t.Value.String(), At: s.r.now().UTC()})
					changed = true
				}
			}
			for i := range p.Transfers {
				if confirmed[a][p.Transfers[i].ID] && !p.Transfers[i].Confirmed {
					p.Transfers[i].Confirmed = true
					changed = true
				}
			}
			return changed
		})
		if err != nil {
			return fmt.Errorf("payment to %s: %w", a, err)
		}
	}
	return nil
}

// Reorg takes back what the blocks above the ancestor brought.
func (s sink) Reorg(ctx context.Context, g *chain.Reorg) error {
	ps, err := s.r.watched(ctx)
	if err != nil {
		return err
	}
	var addrs []chain.Address
	for _, p := range ps {
		if slices.ContainsFunc(p.Transfers, func(t received) bool { return t.Block > g.Ancestor.Number }) {
			addrs = append(addrs, p.Address)
		}
	}
	for _, a := range addrs {
		err := s.r.change(ctx, a, func(p *payment) bool {
			n := len(p.Transfers)
			p.Transfers = slices.DeleteFunc(p.Transfers, func(t received) bool { return t.Block > g.Ancestor.Number })
			if len(p.Transfers) == n {
				return false
			}
			if _, conf := p.sums(); p.State == statePaid && conf.Cmp(p.due()) < 0 {
				// The engine's approval stands (the POS has its answer):
				// the operator must know the money is not on the chain.
				p.Note = fmt.Sprintf(reorgNote+" back to block %d took back money of this paid payment: %s of %s base units confirmed now", g.Ancestor.Number, conf, p.Due)
				s.r.log.Error().Str("tranId", p.TranID).Str("address", p.Address.String()).Msg("cryptopay: " + p.Note)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("payment to %s: %w", a, err)
		}
	}
	return nil
}

// change applies mutate to the payment of address a and settles it, again
// from a fresh read when the record moved meanwhile. An address the rail
// never offered is not its business.
func (r *Rail) change(ctx context.Context, a chain.Address, mutate func(*payment) bool) error {
	for range 20 {
		p, err := r.byAddress(ctx, a)
		if err != nil || p == nil {
			return err
		}
		if !mutate(p) {
			return nil
		}
		switch err := r.settle(ctx, p); {
		case errors.Is(err, errAgain):
			continue
		default:
			return err
		}
	}
	return errors.New("too much contention")
}

// settle reports the payment's progress and, once the confirmed transfers
// reach the amount, its payment, and stores the record.
func (r *Rail) settle(ctx context.Context, p *payment) error {
	seen, conf := p.sums()
	last := ""
	if n := len(p.Transfers); n > 0 {
		last = p.Transfers[n-1].Tx.String()
	}
	if seen.String() != p.Reported {
		err := r.host.Seen(ctx, &partners.Seen{PartnerID: r.id, TranID: p.TranID, Received: r.minor(seen, p), Reference: last,
			Note: fmt.Sprintf("%s received at %s (%s confirmed), %s asked", r.format(seen), p.Address, r.format(conf), r.format(p.due()))})
		if err != nil && !errors.Is(err, partners.ErrNoRequestYet) && !errors.Is(err, partners.ErrNotWaiting) && !errors.Is(err, partners.ErrNotFound) {
			return fmt.Errorf("reporting progress: %w", err)
		}
		p.Reported = seen.String()
	}
	p.Retry = false
	if p.State == statePaid && conf.Cmp(p.due()) >= 0 && strings.HasPrefix(p.Note, reorgNote) {
		p.Note = "" // the money is back on the chain (mined again in a new block)
	}
	if p.State == stateOpen && conf.Sign() > 0 && conf.Cmp(p.due()) >= 0 {
		q := *p
		q.State, q.PaidTx, q.PaidAt, q.Note = statePaid, completing(p), r.now().UTC(), ""
		rec, err := q.record()
		if err != nil {
			return err
		}
		err = r.host.Paid(ctx, &partners.Paid{PartnerID: r.id, TranID: p.TranID, Reference: q.PaidTx, Amount: r.minor(conf, p),
			Note: fmt.Sprintf("%s confirmed at %s in %d transfer(s)", r.format(conf), p.Address, len(p.Transfers)), Records: []*partners.Record{rec}})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, partners.ErrConflict):
			return errAgain
		case errors.Is(err, partners.ErrNotWaiting):
			p.State, p.Note = stateLate, "paid when no payment could take it: "+err.Error()+"; the tokens stay at the address for a refund"
			r.log.Warn().Str("tranId", p.TranID).Str("address", p.Address.String()).Msg("cryptopay: money came late")
		case errors.Is(err, partners.ErrAmount):
			p.Note = err.Error() // more may come
		case errors.Is(err, partners.ErrNoRequestYet):
			// The POS has not sent its request yet: the retry loop reports
			// it again, and the watcher goes on with other payments.
			p.Retry, p.Note = true, "paid before the payment request arrived: reported again shortly"
		default:
			return fmt.Errorf("reporting the payment: %w", err)
		}
	}
	rec, err := p.record()
	if err != nil {
		return err
	}
	switch err := r.records.Commit(ctx, rec); {
	case errors.Is(err, partners.ErrConflict):
		return errAgain
	default:
		return err
	}
}

// completing is the transaction whose confirmed transfer completed the
// amount (in chain order).
func completing(p *payment) string {
	ts := slices.Clone(p.Transfers)
	slices.SortStableFunc(ts, func(x, y received) int { return cmp.Compare(x.Block, y.Block) })
	sum, due := new(big.Int), p.due()
	for _, t := range ts {
		if !t.Confirmed {
			continue
		}
		v, _ := new(big.Int).SetString(t.Value, 10)
		if sum.Add(sum, v).Cmp(due) >= 0 {
			return t.Tx.String()
		}
	}
	return ""
}

// format writes base units as an amount of the token.
func (r *Rail) format(v *big.Int) string {
	return chain.FormatAmount(v, r.decimals) + " " + r.opts.Currency
}
