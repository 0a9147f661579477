package stream

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

// Link sends one Prepare to the next hop and returns its reply. An error
// means the outcome is unknown: the Prepare may have been fulfilled.
type Link func(ctx context.Context, p *ilp.Prepare) (ilp.Reply, error)

// Mode says which side of a payment is fixed.
type Mode uint8

// Payment modes.
const (
	// FixedSend sends exactly Amount in source units.
	FixedSend Mode = iota + 1
	// FixedReceive delivers Amount in destination units.
	FixedReceive
)

// Rate is an exchange rate of Num destination units per Den source units.
// The zero Rate is "unknown" (or, as a minimum, "none").
type Rate struct {
	Num uint64 `json:"num"`
	Den uint64 `json:"den"`
}

// known reports whether r is a usable rate.
func (r Rate) known() bool { return r.Den > 0 }

// Payment describes what to pay.
type Payment struct {
	Destination  ilp.Address
	SharedSecret []byte
	Mode         Mode
	// Amount is in source units (FixedSend) or destination units
	// (FixedReceive).
	Amount uint64
	// MinRate is the least exchange rate accepted; every packet asks the
	// receiver for at least ceil(amount × MinRate) and a rate seen below it
	// ends the payment with ErrInsufficientRate. Zero means no minimum.
	MinRate Rate
	// MaxSourceAmount caps what a FixedReceive payment may send; 0 means no
	// cap.
	MaxSourceAmount uint64
	// MaxPacketAmount is the largest packet to start with, in source units;
	// F08 replies lower it. 0 means no limit until a connector sets one.
	MaxPacketAmount uint64
	// SourceAddress is sent in ConnectionNewAddress on the first probe to ask
	// for the receiver's asset details; empty asks without offering one.
	SourceAddress ilp.Address
}

// InFlight is the packet a sender sent and has no reply for.
type InFlight struct {
	Sequence  uint64    `json:"sequence"`
	Amount    uint64    `json:"amount"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// AssetDetails are the receiver's asset as it announced it.
type AssetDetails struct {
	Code  string `json:"code"`
	Scale uint8  `json:"scale"`
}

// State is a payment's progress, which the caller persists (Sender.Save)
// to resume after a crash. Its zero value starts a new payment.
type State struct {
	// Sequence is the last STREAM sequence number used.
	Sequence uint64 `json:"sequence"`
	// Sent is the source amount of fulfilled packets.
	Sent uint64 `json:"sent"`
	// Delivered is the destination amount the receiver acknowledged.
	Delivered uint64 `json:"delivered"`
	// Baseline is the receiver's totalReceived before this payment, when it
	// reports one (BaselineKnown); totals reported later are read relative
	// to it.
	Baseline      uint64 `json:"baseline"`
	BaselineKnown bool   `json:"baselineKnown"`
	// InFlight is the packet whose outcome is not known yet.
	InFlight *InFlight `json:"inFlight,omitempty"`
	// MaxPacket is the largest packet amount the path takes, 0 if unknown.
	MaxPacket uint64 `json:"maxPacket"`
	// Rate is the exchange rate last observed.
	Rate Rate `json:"rate"`
	// Asset is the receiver's asset, if it announced it.
	Asset *AssetDetails `json:"asset,omitempty"`
	// Done means the payment completed.
	Done bool `json:"done"`
}

// Errors ending a payment.
var (
	// ErrUnknownOutcome: a packet's outcome could not be established (the
	// receiver does not report totalReceived); the state keeps it InFlight.
	ErrUnknownOutcome = errors.New("stream: outcome of a packet is unknown")
	// ErrClosedByReceiver: the receiver closed the stream or connection.
	ErrClosedByReceiver = errors.New("stream: closed by receiver")
	// ErrInsufficientRate: the exchange rate fell below Payment.MinRate.
	ErrInsufficientRate = errors.New("stream: exchange rate below minimum")
	// ErrReceiverFull: the receiver cannot take the rest of the payment.
	ErrReceiverFull = errors.New("stream: receiver cannot take the amount")
	// ErrRejected: a final ILP error ended the payment; the *ilp.Reject is
	// in the chain.
	ErrRejected = errors.New("stream: payment rejected")
	// ErrNoProgress: too many packets in a row moved no money.
	ErrNoProgress = errors.New("stream: too many attempts without progress")
	// ErrBudget: a FixedReceive payment would exceed MaxSourceAmount.
	ErrBudget = errors.New("stream: source budget exhausted")
	// ErrTooManyPackets: the connection reached 2^31 packets (§5.1.3).
	ErrTooManyPackets = errors.New("stream: packet limit per connection reached")
)

// Sender pays over STREAM one packet at a time, so that the persisted
// state always names at most one packet of unknown outcome. It keeps no
// state of its own between calls.
type Sender struct {
	// Link carries Prepares to the next hop.
	Link Link
	// Save persists the state; it is called before each packet is sent
	// (with InFlight set) and after its outcome is known. An error from
	// Save ends Pay before anything more is sent. Nil persists nothing.
	Save func(ctx context.Context, st State) error
	// PacketExpiry is how long each Prepare is valid; default 30 s.
	PacketExpiry time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries after
	// temporary errors; defaults 50 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts is how many packets in a row may fail to move money
	// before Pay gives up with ErrNoProgress; default 30.
	MaxAttempts int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

const (
	defaultExpiry     = 30 * time.Second
	defaultMinBackoff = 50 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
	defaultAttempts   = 30
	maxPackets        = 1 << 31
	defaultStreamID   = 1
)

// Pay runs or resumes a payment from st and returns the final state. On
// resume (and whenever a packet's outcome is unknown) it first waits for
// the in-flight packet to expire, then asks the receiver with an
// unfulfillable probe how much the stream has received, so only the
// remainder is sent. A fresh payment probes too, to learn the exchange
// rate, the path's packet limit and the receiver's asset.
func (s *Sender) Pay(ctx context.Context, p Payment, st State) (State, error) {
	if st.Done {
		return st, nil
	}
	keys, err := NewKeys(p.SharedSecret)
	if err != nil {
		return st, err
	}
	if p.Mode != FixedSend && p.Mode != FixedReceive {
		return st, fmt.Errorf("stream: payment mode %d", p.Mode)
	}
	run := &run{s: s, p: p, st: st, keys: keys}
	if run.st.MaxPacket == 0 || (p.MaxPacketAmount > 0 && p.MaxPacketAmount < run.st.MaxPacket) {
		run.st.MaxPacket = p.MaxPacketAmount
	}
	return run.st, run.pay(ctx)
}

type run struct {
	s        *Sender
	p        Payment
	st       State
	keys     *Keys
	room     uint64 // destination units the receiver still takes; 0 unknown
	roomSet  bool
	failures int
	backoff  time.Duration
}

func (r *run) now() time.Time {
	if r.s.Now != nil {
		return r.s.Now()
	}
	return time.Now()
}

func (r *run) save(ctx context.Context) error {
	if r.s.Save == nil {
		return nil
	}
	if err := r.s.Save(ctx, r.st); err != nil {
		return fmt.Errorf("saving payment state: %w", err)
	}
	return nil
}

func (r *run) pay(ctx context.Context) error {
	if err := r.probe(ctx); err != nil {
		return err
	}
	for {
		remaining := r.remaining()
		if remaining == 0 {
			r.st.Done = true
			return r.save(ctx)
		}
		amount, err := r.nextAmount(remaining)
		if err != nil {
			return err
		}
		unknown, err := r.send(ctx, amount)
		if err != nil {
			return err
		}
		if unknown {
			if err := r.probe(ctx); err != nil {
				return err
			}
		}
	}
}

func (r *run) remaining() uint64 {
	if r.p.Mode == FixedSend {
		return sub(r.p.Amount, r.st.Sent)
	}
	return sub(r.p.Amount, r.st.Delivered)
}

// nextAmount sizes the next packet in source units.
func (r *run) nextAmount(remaining uint64) (uint64, error) {
	amount := remaining
	if r.p.Mode == FixedReceive {
		if !r.st.Rate.known() || r.st.Rate.Num == 0 {
			return 0, fmt.Errorf("%w: receiver delivers nothing", ErrInsufficientRate)
		}
		amount = mulDivCeil(remaining, r.st.Rate.Den, r.st.Rate.Num)
		if r.p.MaxSourceAmount > 0 {
			left := sub(r.p.MaxSourceAmount, r.st.Sent)
			if left == 0 {
				return 0, ErrBudget
			}
			amount = min(amount, left)
		}
	}
	if r.roomSet && r.st.Rate.known() && r.st.Rate.Num > 0 {
		if r.room == 0 {
			return 0, ErrReceiverFull
		}
		fit := mulDivFloor(r.room, r.st.Rate.Den, r.st.Rate.Num)
		if fit == 0 {
			return 0, ErrReceiverFull
		}
		amount = min(amount, fit)
	}
	if r.st.MaxPacket > 0 {
		amount = min(amount, r.st.MaxPacket)
	}
	return max(amount, 1), nil
}

func (r *run) minDestination(amount uint64) uint64 {
	if !r.p.MinRate.known() {
		return 0
	}
	return mulDivCeil(amount, r.p.MinRate.Num, r.p.MinRate.Den)
}

// prepare builds a Prepare for a STREAM packet; a nil fulfillment makes it
// an unfulfillable probe.
func (r *run) prepare(amount uint64, pkt *Packet, fulfillable bool) (*ilp.Prepare, *[32]byte, error) {
	data, err := r.keys.SealPacket(pkt)
	if err != nil {
		return nil, nil, err
	}
	prep := &ilp.Prepare{
		Amount:      amount,
		ExpiresAt:   r.now().Add(r.expiry()).Truncate(time.Millisecond),
		Destination: r.p.Destination,
		Data:        data,
	}
	if !fulfillable {
		if _, err := rand.Read(prep.ExecutionCondition[:]); err != nil {
			return nil, nil, fmt.Errorf("reading random condition: %w", err)
		}
		return prep, nil, nil
	}
	f := r.keys.FulfillmentFor(data)
	prep.ExecutionCondition = sha256.Sum256(f[:])
	return prep, &f, nil
}

func (r *run) expiry() time.Duration {
	if r.s.PacketExpiry > 0 {
		return r.s.PacketExpiry
	}
	return defaultExpiry
}

func (r *run) nextSequence() (uint64, error) {
	if r.st.Sequence+1 >= maxPackets {
		return 0, ErrTooManyPackets
	}
	r.st.Sequence++
	return r.st.Sequence, nil
}

// exchange sends prep over the link with a deadline at its expiry.
func (r *run) exchange(ctx context.Context, prep *ilp.Prepare) (ilp.Reply, error) {
	ctx, cancel := context.WithDeadline(ctx, prep.ExpiresAt)
	defer cancel()
	return r.s.Link(ctx, prep)
}

// streamReply decrypts the STREAM packet of a reply, or returns nil when it
// is missing, forged or answers another packet.
func (r *run) streamReply(rep ilp.Reply, seq uint64) *Packet {
	var data []byte
	var want ilp.Type
	switch x := rep.(type) {
	case *ilp.Fulfill:
		data, want = x.Data, ilp.TypeFulfill
	case *ilp.Reject:
		data, want = x.Data, ilp.TypeReject
	}
	if len(data) == 0 {
		return nil
	}
	pkt, err := r.keys.OpenPacket(data)
	if err != nil || pkt.Sequence != seq || pkt.ILPType != want {
		return nil
	}
	return pkt
}

// probe asks the receiver, with unfulfillable Prepares, for its totals,
// the exchange rate and its asset. It first lets an in-flight packet
// expire, then settles that packet's outcome from the reported total.
func (r *run) probe(ctx context.Context) error {
	if r.st.InFlight != nil {
		if err := r.sleepUntil(ctx, r.st.InFlight.ExpiresAt.Add(time.Millisecond)); err != nil {
			return err
		}
	}
	for {
		amount := uint64(0)
		if rem := r.remaining(); rem > 0 {
			amount = rem
			if r.p.Mode == FixedReceive && r.st.Rate.known() && r.st.Rate.Num > 0 {
				amount = mulDivCeil(rem, r.st.Rate.Den, r.st.Rate.Num)
			}
			if r.st.MaxPacket > 0 {
				amount = min(amount, r.st.MaxPacket)
			}
		}
		seq, err := r.nextSequence()
		if err != nil {
			return err
		}
		pkt := &Packet{Sequence: seq, ILPType: ilp.TypePrepare, Frames: []Frame{StreamMoney{StreamID: defaultStreamID, Shares: 1}}}
		if r.st.Asset == nil {
			pkt.Frames = append(pkt.Frames, ConnectionNewAddress{SourceAddress: string(r.p.SourceAddress)})
		}
		prep, _, err := r.prepare(amount, pkt, false)
		if err != nil {
			return err
		}
		rep, err := r.exchange(ctx, prep)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("probing receiver: %w", ctx.Err())
			}
			if err := r.fail(ctx); err != nil {
				return fmt.Errorf("probing receiver: %w", err)
			}
			continue
		}
		rj, ok := rep.(*ilp.Reject)
		if !ok {
			// A receiver fulfilled a random condition: impossible unless the
			// link lies. Nothing was at stake, try again.
			if err := r.fail(ctx); err != nil {
				return err
			}
			continue
		}
		if rj.Code == ilp.F08AmountTooLarge {
			if err := r.lowerMaxPacket(amount, rj); err != nil {
				return err
			}
			continue
		}
		sp := r.streamReply(rep, seq)
		if sp == nil {
			if rj.Code.Final() {
				return fmt.Errorf("%w: probe: %w", ErrRejected, rj)
			}
			if err := r.fail(ctx); err != nil {
				return fmt.Errorf("probing receiver: %w", err)
			}
			continue
		}
		if amount > 0 {
			r.st.Rate = Rate{Num: sp.PrepareAmount, Den: amount}
		}
		total, reported, closed := r.readFrames(sp)
		if err := r.settle(total, reported); err != nil {
			return err
		}
		if err := r.save(ctx); err != nil {
			return err
		}
		if closed && r.remaining() > 0 {
			return ErrClosedByReceiver
		}
		if r.p.MinRate.known() && amount > 0 && r.remaining() > 0 && below(r.st.Rate, r.p.MinRate) {
			return fmt.Errorf("%w: probed %d/%d, minimum %d/%d", ErrInsufficientRate, r.st.Rate.Num, r.st.Rate.Den, r.p.MinRate.Num, r.p.MinRate.Den)
		}
		r.failures, r.backoff = 0, 0
		return nil
	}
}

// settle applies a totalReceived learned from a probe: the first one sets
// the baseline, later ones say whether the in-flight packet arrived.
func (r *run) settle(total uint64, reported bool) error {
	if !reported {
		if r.st.InFlight != nil {
			return ErrUnknownOutcome
		}
		return nil
	}
	if !r.st.BaselineKnown {
		if r.st.Sequence > 1 && r.st.InFlight != nil {
			// Resumed without a baseline (the receiver did not report one
			// earlier): cannot tell.
			return ErrUnknownOutcome
		}
		if r.st.Sent == 0 && r.st.Delivered == 0 {
			r.st.Baseline, r.st.BaselineKnown = total, true
		}
		return nil
	}
	delivered := sub(total, r.st.Baseline)
	if r.st.InFlight != nil {
		if delivered > r.st.Delivered {
			r.st.Sent += r.st.InFlight.Amount
		}
		r.st.InFlight = nil
	}
	if delivered > r.st.Delivered {
		r.st.Delivered = delivered
	}
	return nil
}

// readFrames takes what a reply's frames say: the total received on the
// payment stream, the room left there, asset details, and closes.
func (r *run) readFrames(sp *Packet) (total uint64, reported, closed bool) {
	for _, f := range sp.Frames {
		switch f := f.(type) {
		case StreamMaxMoney:
			if f.StreamID != defaultStreamID {
				continue
			}
			total, reported = f.TotalReceived, true
			r.room, r.roomSet = sub(f.ReceiveMax, f.TotalReceived), true
		case ConnectionAssetDetails:
			if r.st.Asset == nil {
				r.st.Asset = &AssetDetails{Code: f.AssetCode, Scale: f.AssetScale}
			}
		case ConnectionClose:
			closed = true
		case StreamClose:
			if f.StreamID == defaultStreamID {
				closed = true
			}
		}
	}
	return total, reported, closed
}

// send sends one fulfillable packet of amount. unknown reports that its
// outcome could not be read and a probe must settle it.
func (r *run) send(ctx context.Context, amount uint64) (unknown bool, err error) {
	seq, err := r.nextSequence()
	if err != nil {
		return false, err
	}
	minDest := r.minDestination(amount)
	pkt := &Packet{Sequence: seq, ILPType: ilp.TypePrepare, PrepareAmount: minDest,
		Frames: []Frame{StreamMoney{StreamID: defaultStreamID, Shares: 1}}}
	prep, fulfillment, err := r.prepare(amount, pkt, true)
	if err != nil {
		return false, err
	}
	r.st.InFlight = &InFlight{Sequence: seq, Amount: amount, ExpiresAt: prep.ExpiresAt}
	if err := r.save(ctx); err != nil {
		return false, err
	}
	rep, err := r.exchange(ctx, prep)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("sending packet %d: %w", seq, ctx.Err())
		}
		return true, nil
	}
	switch rep := rep.(type) {
	case *ilp.Fulfill:
		if subtle.ConstantTimeCompare(rep.Fulfillment[:], fulfillment[:]) != 1 {
			return true, nil
		}
		delivered := minDest
		sp := r.streamReply(rep, seq)
		var closed bool
		if sp != nil {
			delivered = max(minDest, sp.PrepareAmount)
			r.st.Rate = Rate{Num: sp.PrepareAmount, Den: amount}
			_, _, closed = r.readFrames(sp)
		}
		r.st.Sent += amount
		r.st.Delivered += delivered
		r.st.InFlight = nil
		r.failures, r.backoff = 0, 0
		if err := r.save(ctx); err != nil {
			return false, err
		}
		if closed && r.remaining() > 0 {
			return false, ErrClosedByReceiver
		}
		return false, nil
	case *ilp.Reject:
		r.st.InFlight = nil
		if err := r.save(ctx); err != nil {
			return false, err
		}
		return false, r.rejected(ctx, amount, minDest, seq, rep)
	}
	return true, nil
}

// rejected decides what a Reject of a fulfillable packet means.
func (r *run) rejected(ctx context.Context, amount, minDest, seq uint64, rj *ilp.Reject) error {
	if rj.Code == ilp.F08AmountTooLarge {
		return r.lowerMaxPacket(amount, rj)
	}
	if rj.Code.Temporary() || rj.Code.Relative() {
		return r.fail(ctx)
	}
	sp := r.streamReply(rj, seq)
	if sp == nil {
		return fmt.Errorf("%w: %w", ErrRejected, rj)
	}
	// The receiver answered: it said how much arrived and why it refused.
	r.st.Rate = Rate{Num: sp.PrepareAmount, Den: amount}
	_, _, closed := r.readFrames(sp)
	if closed {
		return ErrClosedByReceiver
	}
	if r.p.MinRate.known() && below(r.st.Rate, r.p.MinRate) {
		return fmt.Errorf("%w: %d/%d, minimum %d/%d", ErrInsufficientRate, r.st.Rate.Num, r.st.Rate.Den, r.p.MinRate.Num, r.p.MinRate.Den)
	}
	return r.fail(ctx)
}

// lowerMaxPacket applies an F08: the connector's maximum, scaled from its
// units back to ours, or half the amount when it gave no figures.
func (r *run) lowerMaxPacket(amount uint64, rj *ilp.Reject) error {
	next := amount / 2
	if d, err := ilp.ParseAmountTooLarge(rj.Data); err == nil && d.Received > 0 && d.Maximum < d.Received {
		next = mulDivFloor(amount, d.Maximum, d.Received)
	}
	if next >= amount {
		next = amount - 1
	}
	if next == 0 {
		return fmt.Errorf("%w: %w", ErrRejected, rj)
	}
	r.st.MaxPacket = next
	return nil
}

// fail counts an attempt that moved no money and waits before the next.
func (r *run) fail(ctx context.Context) error {
	r.failures++
	limit := r.s.MaxAttempts
	if limit <= 0 {
		limit = defaultAttempts
	}
	if r.failures >= limit {
		return ErrNoProgress
	}
	lo, hi := r.s.MinBackoff, r.s.MaxBackoff
	if lo <= 0 {
		lo = defaultMinBackoff
	}
	if hi <= 0 {
		hi = defaultMaxBackoff
	}
	if r.backoff == 0 {
		r.backoff = lo
	} else {
		r.backoff = min(2*r.backoff, hi)
	}
	return r.sleepUntil(ctx, r.now().Add(r.backoff))
}

func (r *run) sleepUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(r.now())
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// mulDivFloor returns floor(a×b/c), saturating at MaxUint64.
func mulDivFloor(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// mulDivCeil returns ceil(a×b/c), saturating at MaxUint64.
func mulDivCeil(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return math.MaxUint64
	}
	q, rem := bits.Div64(hi, lo, c)
	if rem > 0 && q < math.MaxUint64 {
		q++
	}
	return q
}

// below reports whether rate a is less than rate b.
func below(a, b Rate) bool {
	h1, l1 := bits.Mul64(a.Num, b.Den)
	h2, l2 := bits.Mul64(b.Num, a.Den)
	return h1 < h2 || (h1 == h2 && l1 < l2)
}
