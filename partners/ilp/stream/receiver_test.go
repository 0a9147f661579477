package stream

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// client builds Prepares as a STREAM sender would.
type client struct {
	keys *Keys
	dest ilp.Address
}

func newClient(t testing.TB, sec []byte) *client {
	k, err := NewKeys(sec)
	if err != nil {
		t.Fatal(err)
	}
	return &client{keys: k, dest: "test.receiver.abc"}
}

func (c *client) prepare(t testing.TB, amount, minDest, seq uint64, fulfillable bool, frames ...Frame) (*ilp.Prepare, [32]byte) {
	t.Helper()
	data, err := c.keys.SealPacket(&Packet{Sequence: seq, ILPType: ilp.TypePrepare, PrepareAmount: minDest, Frames: frames})
	if err != nil {
		t.Fatal(err)
	}
	p := &ilp.Prepare{Amount: amount, ExpiresAt: testNow.Add(time.Minute), Destination: c.dest, Data: data}
	f := c.keys.FulfillmentFor(data)
	if fulfillable {
		p.ExecutionCondition = sha256.Sum256(f[:])
	} else {
		p.ExecutionCondition = sha256.Sum256([]byte("random"))
	}
	return p, f
}

func (c *client) read(t testing.TB, rep ilp.Reply, seq uint64) *Packet {
	t.Helper()
	var data []byte
	var want ilp.Type
	switch r := rep.(type) {
	case *ilp.Fulfill:
		data, want = r.Data, ilp.TypeFulfill
	case *ilp.Reject:
		data, want = r.Data, ilp.TypeReject
	}
	p, err := c.keys.OpenPacket(data)
	if err != nil {
		t.Fatalf("OpenPacket(reply data) error = %v", err)
	}
	if p.Sequence != seq || p.ILPType != want {
		t.Fatalf("reply STREAM packet sequence %d type %d, want %d %d", p.Sequence, p.ILPType, seq, want)
	}
	return p
}

type failingAccount struct{ err error }

func (f failingAccount) Balance(context.Context) (Balance, error) { return Balance{}, f.err }
func (f failingAccount) Credit(context.Context, PacketID, uint64) (Balance, error) {
	return Balance{}, f.err
}

func findMaxMoney(p *Packet) (StreamMaxMoney, bool) {
	for _, f := range p.Frames {
		if m, ok := f.(StreamMaxMoney); ok {
			return m, true
		}
	}
	return StreamMaxMoney{}, false
}

func hasFrame(p *Packet, t FrameType) bool {
	for _, f := range p.Frames {
		if f.Type() == t {
			return true
		}
	}
	return false
}

func TestReceiver(t *testing.T) {
	sec := secret(3)
	c := newClient(t, sec)
	recv := &Receiver{Address: "test.receiver", Now: func() time.Time { return testNow }}
	ctx := context.Background()
	dest := func(a Account) Destination {
		return Destination{SharedSecret: sec, AssetCode: "USD", AssetScale: 2, Account: a}
	}

	t.Run("fulfills and credits before", func(t *testing.T) {
		acct := NewMemoryAccount(1000, true)
		p, f := c.prepare(t, 100, 90, 1, true, StreamMoney{StreamID: 1, Shares: 1})
		rep, err := recv.Receive(ctx, p, dest(acct))
		ful, ok := rep.(*ilp.Fulfill)
		if err != nil || !ok {
			t.Fatalf("Receive = %v, %v, want Fulfill", rep, err)
		}
		if ful.Fulfillment != f {
			t.Errorf("fulfillment = %x, want %x", ful.Fulfillment, f)
		}
		if acct.Received() != 100 {
			t.Errorf("credited %d, want 100", acct.Received())
		}
		sp := c.read(t, rep, 1)
		m, ok := findMaxMoney(sp)
		if sp.PrepareAmount != 100 || !ok || m.TotalReceived != 100 || m.ReceiveMax != 1000 {
			t.Errorf("reply prepareAmount %d, StreamMaxMoney %+v", sp.PrepareAmount, m)
		}
		if hasFrame(sp, TypeConnectionAssetDetails) {
			t.Errorf("asset details sent without ConnectionNewAddress")
		}
	})

	t.Run("duplicate prepare credited once, same fulfillment", func(t *testing.T) {
		acct := NewMemoryAccount(Unlimited, false)
		p, f := c.prepare(t, 250, 0, 4, true)
		for i := 0; i < 3; i++ {
			// The same Prepare again, as after a crash between credit and
			// reply; a connector may have rewritten its expiry.
			again := *p
			again.ExpiresAt = p.ExpiresAt.Add(time.Duration(i) * time.Second)
			rep, err := recv.Receive(ctx, &again, dest(acct))
			ful, ok := rep.(*ilp.Fulfill)
			if err != nil || !ok || ful.Fulfillment != f {
				t.Fatalf("Receive #%d = %v, %v, want Fulfill with %x", i, rep, err, f)
			}
		}
		if acct.Received() != 250 || acct.Credits() != 1 {
			t.Errorf("credited %d in %d credits, want 250 in 1", acct.Received(), acct.Credits())
		}
	})

	t.Run("duplicate of the completing prepare after close", func(t *testing.T) {
		acct := NewMemoryAccount(50, true)
		p, f := c.prepare(t, 50, 0, 5, true)
		for i := 0; i < 2; i++ {
			rep, _ := recv.Receive(ctx, p, dest(acct))
			if ful, ok := rep.(*ilp.Fulfill); !ok || ful.Fulfillment != f {
				t.Fatalf("Receive #%d = %v, want Fulfill", i, rep)
			}
		}
		if acct.Received() != 50 || acct.Credits() != 1 {
			t.Errorf("credited %d in %d credits", acct.Received(), acct.Credits())
		}
	})

	t.Run("probe answered with F99 and asset details", func(t *testing.T) {
		acct := NewMemoryAccount(1000, false)
		acct.Credit(ctx, PacketID{1}, 300)
		p, _ := c.prepare(t, 77, 0, 9, false, StreamMoney{StreamID: 1, Shares: 1}, ConnectionNewAddress{})
		rep, err := recv.Receive(ctx, p, dest(acct))
		rj, ok := rep.(*ilp.Reject)
		if err != nil || !ok || rj.Code != ilp.F99ApplicationError || rj.TriggeredBy != "test.receiver" {
			t.Fatalf("Receive(probe) = %+v, %v, want F99 from test.receiver", rep, err)
		}
		sp := c.read(t, rep, 9)
		m, _ := findMaxMoney(sp)
		if sp.PrepareAmount != 77 || m.TotalReceived != 300 || m.ReceiveMax != 1000 {
			t.Errorf("probe reply prepareAmount %d, StreamMaxMoney %+v", sp.PrepareAmount, m)
		}
		var asset ConnectionAssetDetails
		for _, f := range sp.Frames {
			if a, ok := f.(ConnectionAssetDetails); ok {
				asset = a
			}
		}
		if asset != (ConnectionAssetDetails{AssetCode: "USD", AssetScale: 2}) {
			t.Errorf("asset details = %+v, want USD 2", asset)
		}
		if acct.Received() != 300 {
			t.Errorf("probe changed the account to %d", acct.Received())
		}
	})

	t.Run("less than the sender's minimum", func(t *testing.T) {
		acct := NewMemoryAccount(Unlimited, false)
		p, _ := c.prepare(t, 89, 90, 2, true)
		rep, _ := recv.Receive(ctx, p, dest(acct))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F99ApplicationError {
			t.Fatalf("Receive(89 < 90) = %+v, want F99", rep)
		}
		if sp := c.read(t, rep, 2); sp.PrepareAmount != 89 {
			t.Errorf("reply prepareAmount = %d, want 89", sp.PrepareAmount)
		}
		if acct.Received() != 0 {
			t.Errorf("credited %d, want 0", acct.Received())
		}
	})

	t.Run("over receive max", func(t *testing.T) {
		acct := NewMemoryAccount(100, true)
		acct.Credit(ctx, PacketID{2}, 60)
		p, _ := c.prepare(t, 50, 0, 3, true)
		rep, _ := recv.Receive(ctx, p, dest(acct))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F99ApplicationError {
			t.Fatalf("Receive(60+50 > 100) = %+v, want F99", rep)
		}
		m, _ := findMaxMoney(c.read(t, rep, 3))
		if m.ReceiveMax != 100 || m.TotalReceived != 60 {
			t.Errorf("StreamMaxMoney = %+v, want 100/60", m)
		}
	})

	t.Run("closed account refuses money with F02", func(t *testing.T) {
		acct := NewMemoryAccount(Unlimited, false)
		acct.Close()
		p, _ := c.prepare(t, 5, 0, 6, true)
		rep, _ := recv.Receive(ctx, p, dest(acct))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F02Unreachable {
			t.Fatalf("Receive(closed) = %+v, want F02", rep)
		}
		// A zero-amount probe still learns the total and that it is closed.
		p, _ = c.prepare(t, 0, 0, 7, false)
		rep, _ = recv.Receive(ctx, p, dest(acct))
		sp := c.read(t, rep, 7)
		if !hasFrame(sp, TypeConnectionClose) {
			t.Errorf("probe of closed account: frames %v, want ConnectionClose", sp.Frames)
		}
	})

	t.Run("zero amount fulfillable is fulfilled without credit", func(t *testing.T) {
		acct := NewMemoryAccount(Unlimited, false)
		p, f := c.prepare(t, 0, 0, 8, true)
		rep, _ := recv.Receive(ctx, p, dest(acct))
		if ful, ok := rep.(*ilp.Fulfill); !ok || ful.Fulfillment != f || acct.Credits() != 0 {
			t.Fatalf("Receive(0) = %+v, credits %d", rep, acct.Credits())
		}
	})

	t.Run("sender closes", func(t *testing.T) {
		p, _ := c.prepare(t, 10, 0, 10, true, ConnectionClose{Code: NoError})
		acct := NewMemoryAccount(Unlimited, false)
		rep, _ := recv.Receive(ctx, p, dest(acct))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F99ApplicationError || !hasFrame(c.read(t, rep, 10), TypeConnectionClose) {
			t.Fatalf("Receive(ConnectionClose) = %+v, want F99 with ConnectionClose", rep)
		}
		if acct.Received() != 0 {
			t.Errorf("credited %d", acct.Received())
		}
	})

	t.Run("undecryptable", func(t *testing.T) {
		p, _ := newClient(t, secret(4)).prepare(t, 10, 0, 1, true)
		rep, _ := recv.Receive(ctx, p, dest(NewMemoryAccount(Unlimited, false)))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F06UnexpectedPayment || len(rj.Data) != 0 {
			t.Fatalf("Receive(other secret) = %+v, want F06 without data", rep)
		}
	})

	t.Run("wrong STREAM packet type", func(t *testing.T) {
		data, _ := c.keys.SealPacket(&Packet{Sequence: 1, ILPType: ilp.TypeFulfill})
		p := &ilp.Prepare{Amount: 1, ExpiresAt: testNow.Add(time.Minute), Destination: c.dest, Data: data, ExecutionCondition: c.keys.ConditionFor(data)}
		rep, _ := recv.Receive(ctx, p, dest(NewMemoryAccount(Unlimited, false)))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F00BadRequest {
			t.Fatalf("Receive(type 13 in Prepare) = %+v, want F00", rep)
		}
	})

	t.Run("expired", func(t *testing.T) {
		p, _ := c.prepare(t, 10, 0, 1, true)
		p.ExpiresAt = testNow
		rep, _ := recv.Receive(ctx, p, dest(NewMemoryAccount(Unlimited, false)))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.R00TransferTimedOut {
			t.Fatalf("Receive(expired) = %+v, want R00", rep)
		}
	})

	t.Run("account failure is T00 with the cause", func(t *testing.T) {
		cause := errors.New("database down")
		p, _ := c.prepare(t, 10, 0, 1, true)
		rep, err := recv.Receive(ctx, p, dest(failingAccount{cause}))
		if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.T00InternalError || !errors.Is(err, cause) {
			t.Fatalf("Receive(failing account) = %+v, %v, want T00 wrapping the cause", rep, err)
		}
	})
}
