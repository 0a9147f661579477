package openpayments

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/ilphttp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
	"github.com/qrswitch/qrswitch/qr"
)

// Kinds of the rail's records.
const (
	kindIncoming = "incoming"
	kindCredit   = "credit"
)

// incoming is an incoming payment as the rail keeps it.
type incoming struct {
	ID     string `json:"id"`
	Wallet string `json:"wallet"` // the wallet's name
	// Amount is incomingAmount in the wallet's units; nil for none.
	Amount   *uint64 `json:"amount,omitempty"`
	Received uint64  `json:"received"`
	// Packets counts the ILP packets credited, for support.
	Packets   int             `json:"packets,omitempty"`
	Completed bool            `json:"completed"`
	ExpiresAt time.Time       `json:"expiresAt,omitzero"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
	// Address is the ILP address issued for it (its shared secret is
	// derived again from it on every read).
	Address ilp.Address `json:"address"`
	// Client is who created it, for read (as opposed to read-all) grants.
	Client string `json:"client,omitempty"`
	// TranID is the QR code it was created for, if any; Paid says the
	// engine took the money for the code.
	TranID string `json:"tranId,omitempty"`
	Paid   bool   `json:"paid,omitempty"`
	// Ended says the engine was told the code's offer ended unpaid.
	Ended bool `json:"ended,omitempty"`
}

// expired reports whether ip stopped taking money by its expiry at now.
func (ip *incoming) expired(now time.Time) bool {
	return !ip.ExpiresAt.IsZero() && !now.Before(ip.ExpiresAt)
}

// closed reports whether ip takes no more money at now.
func (ip *incoming) closed(now time.Time) bool { return ip.Completed || ip.expired(now) }

// idEncoding sorts like the bytes it encodes, so ids sort by creation time.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newID is an incoming payment id: 8 octets of creation time in
// nanoseconds and 4 random octets, 20 characters, short enough for a QR
// template and sorted by creation time.
func newID(now time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	rand.Read(b[8:])
	return idEncoding.EncodeToString(b[:])
}

func (r *Rail) incomingURL(id string) string { return r.base + "/incoming-payments/" + id }
func (r *Rail) walletURL(name string) string { return r.base + "/" + name }

// newIncoming builds a new incoming payment of w with its ILP address.
func (r *Rail) newIncoming(w *Wallet, amount *uint64, expires time.Time, meta json.RawMessage, client, tranID string) (*incoming, *partners.Record, error) {
	now := r.now().UTC()
	ip := &incoming{ID: newID(now), Wallet: w.Name, Amount: amount, ExpiresAt: expires, Metadata: meta,
		CreatedAt: now, UpdatedAt: now, Client: client, TranID: tranID}
	c, err := r.creds.Generate(stream.ConnectionDetails{PaymentTag: ip.ID, Asset: &stream.AssetDetails{Code: w.AssetCode, Scale: w.AssetScale}})
	if err != nil {
		return nil, nil, fmt.Errorf("issuing ILP credentials: %w", err)
	}
	ip.Address = c.Address
	rec, err := r.incomingRecord(ip, 0)
	return ip, rec, err
}

func (r *Rail) incomingRecord(ip *incoming, version int64) (*partners.Record, error) {
	b, err := json.Marshal(ip)
	if err != nil {
		return nil, fmt.Errorf("encoding incoming payment: %w", err)
	}
	index := []string{"wallet:" + ip.Wallet}
	if ip.TranID != "" {
		index = append(index, "tran:"+ip.TranID)
	}
	rec := &partners.Record{Kind: kindIncoming, Key: ip.ID, Data: b, Index: index, Version: version, Retailer: r.retailerOf(ip)}
	if ip.TranID != "" && !ip.Completed && !ip.Ended && !ip.ExpiresAt.IsZero() {
		rec.DueAt = ip.ExpiresAt // the sweeper reports the code's offer ended
	}
	return rec, nil
}

// retailerOf is the retailer of an incoming payment's wallet. On a store
// spread over shards the incoming payment and its credits live with that
// retailer's payments, with which they are committed when they complete a
// code (partners.ShardSafe).
func (r *Rail) retailerOf(ip *incoming) string {
	if w, ok := r.wallets[ip.Wallet]; ok {
		return w.Retailer
	}
	return ""
}

// readIncoming reads an incoming payment and its record.
func (r *Rail) readIncoming(ctx context.Context, id string) (*incoming, *partners.Record, error) {
	rec, err := r.records.Get(ctx, kindIncoming, id)
	if err != nil {
		return nil, nil, err
	}
	var ip incoming
	if err := json.Unmarshal(rec.Data, &ip); err != nil {
		return nil, nil, fmt.Errorf("decoding incoming payment %s: %w", id, err)
	}
	return &ip, rec, nil
}

// ShardSafe: an incoming payment and its credits keep the retailer of
// their wallet, and are the only records committed with a payment; grants,
// tokens, quotes and outgoing payments are committed alone
// (partners.ShardSafe).
func (r *Rail) ShardSafe() bool { return true }

// Offer creates the incoming payment of a new QR code, for the code's
// amount in the retailer's wallet, expiring with the code; its URL goes in
// the code's template.
func (r *Rail) Offer(_ context.Context, o *partners.OfferRequest) (*partners.Offer, error) {
	w, ok := r.byShop[o.RetailerID]
	if !ok {
		return nil, fmt.Errorf("%w: retailer %s has no wallet address", partners.ErrNotOffered, o.RetailerID)
	}
	if o.Amount == nil || o.Amount.Amount <= 0 {
		return nil, fmt.Errorf("%w: an incoming payment for a code needs an amount", partners.ErrNotOffered)
	}
	alpha, _ := qr.CurrencyAlpha(o.Amount.Currency)
	exp, _ := qr.CurrencyExponent(o.Amount.Currency)
	if alpha != w.AssetCode || exp != int(w.AssetScale) {
		return nil, fmt.Errorf("%w: wallet %s holds %s scale %d, the code is in %s", partners.ErrNotOffered, w.Name, w.AssetCode, w.AssetScale, o.Amount.Currency)
	}
	amount := uint64(o.Amount.Amount)
	ip, rec, err := r.newIncoming(w, &amount, o.ExpiresAt.UTC(), nil, "", o.TranID)
	if err != nil {
		return nil, err
	}
	u := r.incomingURL(ip.ID)
	return &partners.Offer{
		Accounts:  []qr.MerchantAccount{{GUID: GUID, Fields: []qr.Field{{Tag: "01", Value: u}}}},
		Reference: u,
		Display:   map[string]string{"incomingPayment": u, "walletAddress": r.walletURL(w.Name)},
		Records:   []*partners.Record{rec},
	}, nil
}

// handlePrepare answers one Prepare from an ILP peer: its destination's
// token names the incoming payment, whose account the STREAM receiver
// credits.
func (r *Rail) handlePrepare(ctx context.Context, _ *ilphttp.Peer, p *ilp.Prepare) (ilp.Reply, error) {
	d, secret, err := r.creds.Resolve(p.Destination)
	if err != nil {
		return &ilp.Reject{Code: ilp.F02Unreachable, TriggeredBy: r.address, Message: "no such incoming payment"}, nil
	}
	ip, _, err := r.readIncoming(ctx, d.PaymentTag)
	if errors.Is(err, partners.ErrNotFound) {
		return &ilp.Reject{Code: ilp.F02Unreachable, TriggeredBy: r.address, Message: "no such incoming payment"}, nil
	}
	if err != nil {
		return &ilp.Reject{Code: ilp.T00InternalError, TriggeredBy: r.address}, fmt.Errorf("reading incoming payment: %w", err)
	}
	w := r.wallets[ip.Wallet]
	if w == nil {
		return &ilp.Reject{Code: ilp.F02Unreachable, TriggeredBy: r.address, Message: "wallet address closed"}, nil
	}
	return r.receiver.Receive(ctx, p, stream.Destination{SharedSecret: secret, AssetCode: w.AssetCode, AssetScale: w.AssetScale,
		Account: &account{r: r, id: ip.ID}})
}

// account is an incoming payment as a STREAM receiver's account.
type account struct {
	r  *Rail
	id string
}

func (a *account) balance(ip *incoming) stream.Balance {
	b := stream.Balance{Received: ip.Received, ReceiveMax: stream.Unlimited, Closed: ip.closed(a.r.now())}
	if ip.Amount != nil {
		b.ReceiveMax = *ip.Amount
	}
	return b
}

// Balance implements stream.Account.
func (a *account) Balance(ctx context.Context) (stream.Balance, error) {
	ip, _, err := a.r.readIncoming(ctx, a.id)
	if err != nil {
		return stream.Balance{}, err
	}
	return a.balance(ip), nil
}

// errNotYet is a credit the engine asked to report again.
var errNotYet = errors.New("the code's payment request has not arrived yet")

// Credit implements stream.Account: the incoming payment and a record of
// the packet are committed together, so a packet is credited once and a
// Prepare is fulfilled only after its credit is durable. The credit that
// completes a code's incoming payment is committed by the engine with the
// approval of the held payment request (Host.Paid).
func (a *account) Credit(ctx context.Context, id stream.PacketID, amount uint64) (stream.Balance, error) {
	r := a.r
	creditKey := a.id + "." + hex.EncodeToString(id[:])
	for range 32 {
		ip, rec, err := r.readIncoming(ctx, a.id)
		if err != nil {
			return stream.Balance{}, err
		}
		if _, err := r.records.Get(ctx, kindCredit, creditKey); err == nil {
			return a.balance(ip), nil
		} else if !errors.Is(err, partners.ErrNotFound) {
			return stream.Balance{}, fmt.Errorf("reading credit: %w", err)
		}
		now := r.now().UTC()
		if ip.closed(now) {
			return a.balance(ip), stream.ErrClosed
		}
		if ip.Amount != nil && amount > *ip.Amount-ip.Received {
			return a.balance(ip), stream.ErrReceiveMax
		}
		ip.Received += amount
		ip.Packets++
		ip.UpdatedAt = now
		if ip.Amount != nil && ip.Received == *ip.Amount {
			ip.Completed = true
		}
		paid := ip.TranID != "" && ip.Completed
		ip.Paid = paid
		upd, err := r.incomingRecord(ip, rec.Version)
		if err != nil {
			return stream.Balance{}, err
		}
		cb, _ := json.Marshal(map[string]any{"incoming": a.id, "amount": amount, "at": now})
		credit := &partners.Record{Kind: kindCredit, Key: creditKey, Data: cb, Retailer: upd.Retailer}
		if paid {
			err = r.reportPaid(ctx, ip, upd, credit)
		} else {
			err = r.records.Commit(ctx, upd, credit)
		}
		switch {
		case err == nil:
			if ip.TranID != "" && !paid {
				r.reportSeen(ctx, ip)
			}
			return a.balance(ip), nil
		case errors.Is(err, partners.ErrConflict), errors.Is(err, partners.ErrDuplicate):
			continue // read again: another replica or a re-sent packet moved it
		case errors.Is(err, partners.ErrNotWaiting), errors.Is(err, partners.ErrAmount):
			return a.balance(ip), stream.ErrClosed
		default:
			return stream.Balance{}, err
		}
	}
	return stream.Balance{}, errors.New("crediting an incoming payment: too many concurrent changes")
}

// reportPaid hands the completing credit to the engine, which commits it
// with the approval of the code's payment request.
func (r *Rail) reportPaid(ctx context.Context, ip *incoming, recs ...*partners.Record) error {
	w := r.wallets[ip.Wallet]
	currency := currencyOf(w)
	err := r.host.Paid(ctx, &partners.Paid{
		PartnerID: r.id, TranID: ip.TranID, Reference: r.incomingURL(ip.ID),
		Amount: &wire.LedgerAmount{Amount: int64(ip.Received), Currency: currency},
		Note: fmt.Sprintf("Open Payments incoming payment %s completed over ILP STREAM: %d (scale %d) in %d packet(s)",
			ip.ID, ip.Received, w.AssetScale, ip.Packets),
		Records: recs, At: ip.UpdatedAt,
	})
	if errors.Is(err, partners.ErrNoRequestYet) {
		return errNotYet
	}
	return err
}

func (r *Rail) reportSeen(ctx context.Context, ip *incoming) {
	err := r.host.Seen(ctx, &partners.Seen{PartnerID: r.id, TranID: ip.TranID, Reference: r.incomingURL(ip.ID),
		Received: &wire.LedgerAmount{Amount: int64(ip.Received), Currency: currencyOf(r.wallets[ip.Wallet])}, At: ip.UpdatedAt})
	if err != nil {
		r.log.Warn().Err(err).Str("tranId", ip.TranID).Msg("reporting a partial payment")
	}
}

// currencyOf is the ISO 4217 numeric code of a wallet's asset, or its
// asset code when ISO 4217 does not name it.
func currencyOf(w *Wallet) string {
	if n, ok := qr.CurrencyNumeric(w.AssetCode); ok {
		return n
	}
	return w.AssetCode
}

// Sweep tells the engine of the codes whose incoming payments expired
// unpaid (Host.OfferEnded), at most once each.
func (r *Rail) Sweep(ctx context.Context) error {
	now := r.now()
	recs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindIncoming, DueBy: now, Limit: 100})
	if err != nil {
		return fmt.Errorf("listing expired incoming payments: %w", err)
	}
	for _, rec := range recs {
		var ip incoming
		if err := json.Unmarshal(rec.Data, &ip); err != nil {
			return fmt.Errorf("decoding incoming payment %s: %w", rec.Key, err)
		}
		if !ip.expired(now) || ip.Completed || ip.Ended {
			continue
		}
		// Claim the report first (a versioned commit): of two sweepers,
		// replicas or ticks, one reports. The report is for the trace, so
		// at most once is the right side to err on.
		ip.Ended = true
		upd, err := r.incomingRecord(&ip, rec.Version)
		if err != nil {
			return err
		}
		if err := r.records.Commit(ctx, upd); errors.Is(err, partners.ErrConflict) {
			continue
		} else if err != nil {
			return fmt.Errorf("marking an ended offer: %w", err)
		}
		reason := "incoming payment expired unpaid"
		if ip.Received > 0 {
			reason = fmt.Sprintf("incoming payment expired with %d of %d received", ip.Received, *ip.Amount)
		}
		if err := r.host.OfferEnded(ctx, ip.TranID, r.id, reason); err != nil {
			r.log.Warn().Err(err).Str("tranId", ip.TranID).Msg("reporting an ended offer")
		}
	}
	return nil
}
