package stream

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

// PacketID identifies one Prepare for idempotent crediting: the SHA-256 of
// its amount, execution condition, destination and data. expiresAt is left
// out because connectors rewrite it on every hop and a re-sent packet may
// come back with another expiry; everything else is end-to-end, and the
// condition already binds the (randomly encrypted) data to the secret.
type PacketID [32]byte

// PacketIDOf computes the PacketID of p.
func PacketIDOf(p *ilp.Prepare) PacketID {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], p.Amount)
	h.Write(n[:])
	h.Write(p.ExecutionCondition[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(p.Destination)))
	h.Write(n[:])
	h.Write([]byte(p.Destination))
	h.Write(p.Data)
	var id PacketID
	h.Sum(id[:0])
	return id
}

// Balance is an account's position as the receiver reports it to senders.
type Balance struct {
	// Received is the total credited so far, in the account's units.
	Received uint64
	// ReceiveMax is the most the account will ever hold in total
	// (an incoming payment's incomingAmount); math.MaxUint64 for no limit.
	ReceiveMax uint64
	// Closed means the account takes no more money: completed, expired or
	// cancelled.
	Closed bool
}

// Sentinels an Account's Credit returns.
var (
	// ErrClosed: the account takes no more money. Nothing was credited.
	ErrClosed = errors.New("stream: account closed")
	// ErrReceiveMax: crediting would pass ReceiveMax. Nothing was credited;
	// the Balance returned with it is current.
	ErrReceiveMax = errors.New("stream: amount exceeds receive max")
)

// Account is where a receiver puts money. It is owned by the rail
// (an incoming payment row, a ledger account) and must be safe for
// concurrent use.
type Account interface {
	// Balance reports the position without changing it.
	Balance(ctx context.Context) (Balance, error)
	// Credit adds amount under id, durably, exactly once: crediting an id
	// already credited changes nothing and succeeds, even if the account has
	// closed since, so a re-sent Prepare is fulfilled again. It returns the
	// position after crediting, or ErrClosed, or ErrReceiveMax with the
	// current position. Any other error means the credit may not have been
	// recorded; the receiver then answers T00 and the sender retries.
	Credit(ctx context.Context, id PacketID, amount uint64) (Balance, error)
}

// Destination is what the rail knows about the address a Prepare was sent
// to.
type Destination struct {
	// SharedSecret is the STREAM shared secret of the address, 32 octets.
	SharedSecret []byte
	// AssetCode and AssetScale are the account's asset, sent in
	// ConnectionAssetDetails when the sender asks; an empty AssetCode sends
	// none.
	AssetCode  string
	AssetScale uint8
	// Account receives the money.
	Account Account
}

// Receiver answers STREAM Prepares for accounts the rail keeps. It holds
// no connection state: every answer is computed from the Prepare, the
// shared secret and the Account, so any replica, before or after a
// restart, answers a Prepare the same way and a re-sent Prepare is
// credited once and fulfilled with the same fulfillment.
//
// Choices where the references differ (documented for rails):
//   - Unfulfillable Prepares (probes) and Prepares below the sender's
//     minimum get F99 with an encrypted STREAM reply, as ilp-protocol-stream
//     and IL-RFC 29 senders expect; @interledger/stream-receiver uses F05
//     and F04, which @interledger/pay treats as final for fulfillable
//     packets.
//   - A closed account (completed, expired) gets F02 Unreachable for
//     Prepares carrying money, as Rafiki's connector does; zero-amount
//     probes are still answered (F99 with StreamMaxMoney and
//     ConnectionClose) so a resuming sender learns the total received.
//   - The Fulfill that completes an account carries StreamMaxMoney with
//     receiveMax = totalReceived but no close frame: @interledger/pay ends
//     with ClosedByReceiver on any close frame, even in a Fulfill.
//   - StreamReceipt frames are not produced.
type Receiver struct {
	// Address is put in Rejects' triggeredBy; empty leaves it empty.
	Address ilp.Address
	// Now is the clock checked against expiresAt; nil means time.Now.
	Now func() time.Time
}

// Receive answers one Prepare addressed to d. The Reply is never nil; the
// error, when not nil, explains an internal failure behind a T00 Reject
// (for the rail's log), never the sender's mistake.
func (r *Receiver) Receive(ctx context.Context, p *ilp.Prepare, d Destination) (ilp.Reply, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if !p.ExpiresAt.After(now()) {
		return r.reject(ilp.R00TransferTimedOut, "prepare expired", nil), nil
	}
	keys, err := NewKeys(d.SharedSecret)
	if err != nil {
		return r.reject(ilp.T00InternalError, "", nil), fmt.Errorf("deriving STREAM keys: %w", err)
	}
	req, err := keys.OpenPacket(p.Data)
	if err != nil {
		return r.reject(ilp.F06UnexpectedPayment, "", nil), nil
	}
	if req.ILPType != ilp.TypePrepare {
		return r.reject(ilp.F00BadRequest, "STREAM packet type does not match", nil), nil
	}
	rep := reply{keys: keys, seq: req.Sequence, amount: p.Amount}
	streamIDs, wantAsset, closing := scan(req.Frames)
	if wantAsset && d.AssetCode != "" {
		rep.frames = append(rep.frames, ConnectionAssetDetails{AssetCode: d.AssetCode, AssetScale: d.AssetScale})
	}
	if closing {
		rep.frames = append(rep.frames, ConnectionClose{Code: NoError})
		return r.rejectWith(ilp.F99ApplicationError, rep)
	}

	fulfillment := keys.FulfillmentFor(p.Data)
	cond := sha256.Sum256(fulfillment[:])
	fulfillable := subtle.ConstantTimeCompare(cond[:], p.ExecutionCondition[:]) == 1

	if !fulfillable || p.Amount == 0 || p.Amount < req.PrepareAmount {
		bal, err := d.Account.Balance(ctx)
		if err != nil {
			return r.reject(ilp.T00InternalError, "", nil), fmt.Errorf("reading account balance: %w", err)
		}
		rep.addMaxMoney(streamIDs, bal)
		if bal.Closed {
			rep.frames = append(rep.frames, ConnectionClose{Code: NoError, Message: "account closed"})
		}
		if fulfillable && p.Amount == 0 {
			return rep.fulfill(fulfillment)
		}
		return r.rejectWith(ilp.F99ApplicationError, rep)
	}

	bal, err := d.Account.Credit(ctx, PacketIDOf(p), p.Amount)
	switch {
	case errors.Is(err, ErrClosed):
		return r.reject(ilp.F02Unreachable, "account closed", nil), nil
	case errors.Is(err, ErrReceiveMax):
		rep.addMaxMoney(streamIDs, bal)
		return r.rejectWith(ilp.F99ApplicationError, rep)
	case err != nil:
		return r.reject(ilp.T00InternalError, "", nil), fmt.Errorf("crediting account: %w", err)
	}
	rep.addMaxMoney(streamIDs, bal)
	return rep.fulfill(fulfillment)
}

// scan reads what the receiver reacts to in the sender's frames: the
// streams money is sent on (stream 1 when none), whether the sender asks
// for asset details, and whether it closes the connection.
func scan(frames []Frame) (streamIDs []uint64, wantAsset, closing bool) {
	for _, f := range frames {
		switch f := f.(type) {
		case StreamMoney:
			streamIDs = append(streamIDs, f.StreamID)
		case ConnectionNewAddress:
			wantAsset = true
		case ConnectionClose:
			closing = true
		}
	}
	if len(streamIDs) == 0 {
		streamIDs = []uint64{1}
	}
	return streamIDs, wantAsset, closing
}

type reply struct {
	keys   *Keys
	seq    uint64
	amount uint64
	frames []Frame
}

func (rep *reply) addMaxMoney(ids []uint64, b Balance) {
	max := b.ReceiveMax
	if b.Closed {
		max = b.Received
	}
	for _, id := range ids {
		rep.frames = append(rep.frames, StreamMaxMoney{StreamID: id, ReceiveMax: max, TotalReceived: b.Received})
	}
}

func (rep *reply) seal(t ilp.Type) ([]byte, error) {
	return rep.keys.SealPacket(&Packet{Sequence: rep.seq, ILPType: t, PrepareAmount: rep.amount, Frames: rep.frames})
}

func (rep *reply) fulfill(f [32]byte) (ilp.Reply, error) {
	data, err := rep.seal(ilp.TypeFulfill)
	if err != nil {
		// The money is credited: fulfill without data rather than lose it.
		return &ilp.Fulfill{Fulfillment: f}, fmt.Errorf("sealing STREAM reply: %w", err)
	}
	return &ilp.Fulfill{Fulfillment: f, Data: data}, nil
}

func (r *Receiver) rejectWith(code ilp.ErrorCode, rep reply) (ilp.Reply, error) {
	data, err := rep.seal(ilp.TypeReject)
	if err != nil {
		return r.reject(ilp.T00InternalError, "", nil), fmt.Errorf("sealing STREAM reply: %w", err)
	}
	return r.reject(code, "", data), nil
}

func (r *Receiver) reject(code ilp.ErrorCode, msg string, data []byte) *ilp.Reject {
	return &ilp.Reject{Code: code, TriggeredBy: r.Address, Message: msg, Data: data}
}

// Unlimited is the ReceiveMax of an account without a limit.
const Unlimited = math.MaxUint64
