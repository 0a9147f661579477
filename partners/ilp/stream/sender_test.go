package stream

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

// connector is an in-process ILP hop in front of a Receiver: it converts
// amounts at num/den (rounding down), refuses packets above maxPacket with
// F08 and its figures, and answers every failEvery-th Prepare with T04.
type connector struct {
	mu        sync.Mutex
	recv      *Receiver
	dest      Destination
	num, den  uint64
	maxPacket uint64
	failEvery int
	n         int
	prepares  int
}

func (c *connector) link(ctx context.Context, p *ilp.Prepare) (ilp.Reply, error) {
	c.mu.Lock()
	c.n++
	c.prepares++
	n := c.n
	c.mu.Unlock()
	if c.maxPacket > 0 && p.Amount > c.maxPacket {
		d, _ := ilp.AmountTooLarge{Received: p.Amount, Maximum: c.maxPacket}.MarshalBinary()
		return &ilp.Reject{Code: ilp.F08AmountTooLarge, TriggeredBy: "test.connector", Data: d}, nil
	}
	if c.failEvery > 0 && n%c.failEvery == 0 {
		return &ilp.Reject{Code: ilp.T04InsufficientLiquidity, TriggeredBy: "test.connector"}, nil
	}
	fwd := *p
	fwd.Amount = mulDivFloor(p.Amount, c.num, c.den)
	return c.recv.Receive(ctx, &fwd, c.dest)
}

func newConnector(acct Account, sec []byte, num, den uint64) *connector {
	return &connector{
		recv: &Receiver{Address: "test.receiver"},
		dest: Destination{SharedSecret: sec, AssetCode: "EUR", AssetScale: 2, Account: acct},
		num:  num, den: den,
	}
}

func fastSender(link Link) *Sender {
	return &Sender{Link: link, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, PacketExpiry: 10 * time.Second}
}

func TestSenderFixedSend(t *testing.T) {
	sec := secret(5)
	acct := NewMemoryAccount(Unlimited, false)
	conn := newConnector(acct, sec, 2, 1)
	conn.maxPacket = 300
	conn.failEvery = 4
	s := fastSender(conn.link)
	st, err := s.Pay(context.Background(), Payment{Destination: "test.receiver.x", SharedSecret: sec, Mode: FixedSend, Amount: 1000, MinRate: Rate{Num: 19, Den: 10}}, State{})
	if err != nil {
		t.Fatalf("Pay() error = %v (state %+v)", err, st)
	}
	if !st.Done || st.Sent != 1000 || st.Delivered != 2000 || acct.Received() != 2000 {
		t.Errorf("Pay() = sent %d delivered %d done %v, account %d; want 1000, 2000, true, 2000", st.Sent, st.Delivered, st.Done, acct.Received())
	}
	if st.MaxPacket != 300 {
		t.Errorf("learned max packet %d, want 300", st.MaxPacket)
	}
	if st.Asset == nil || *st.Asset != (AssetDetails{Code: "EUR", Scale: 2}) {
		t.Errorf("asset = %+v, want EUR 2", st.Asset)
	}
}

func TestSenderFixedReceive(t *testing.T) {
	sec := secret(6)
	acct := NewMemoryAccount(777, true)
	conn := newConnector(acct, sec, 3, 7)
	conn.maxPacket = 500
	s := fastSender(conn.link)
	st, err := s.Pay(context.Background(), Payment{Destination: "test.receiver.y", SharedSecret: sec, Mode: FixedReceive, Amount: 777}, State{})
	if err != nil {
		t.Fatalf("Pay() error = %v (state %+v)", err, st)
	}
	if !st.Done || st.Delivered != 777 || acct.Received() != 777 {
		t.Errorf("Pay() delivered %d (account %d) done %v, want 777", st.Delivered, acct.Received(), st.Done)
	}
	if min := mulDivCeil(777, 7, 3); st.Sent < min || st.Sent > min+7 {
		t.Errorf("sent %d source units for 777 at 3/7, want about %d", st.Sent, min)
	}
}

func TestSenderMinRate(t *testing.T) {
	sec := secret(7)
	acct := NewMemoryAccount(Unlimited, false)
	conn := newConnector(acct, sec, 1, 2)
	st, err := fastSender(conn.link).Pay(context.Background(), Payment{Destination: "test.receiver.z", SharedSecret: sec, Mode: FixedSend, Amount: 100, MinRate: Rate{Num: 9, Den: 10}}, State{})
	if !errors.Is(err, ErrInsufficientRate) || acct.Received() != 0 || st.Sent != 0 {
		t.Errorf("Pay(rate 1/2, min 9/10) = sent %d, account %d, %v; want ErrInsufficientRate and nothing sent", st.Sent, acct.Received(), err)
	}
}

func TestSenderClosedReceiver(t *testing.T) {
	sec := secret(8)
	acct := NewMemoryAccount(Unlimited, false)
	acct.Close()
	conn := newConnector(acct, sec, 1, 1)
	_, err := fastSender(conn.link).Pay(context.Background(), Payment{Destination: "test.receiver.z", SharedSecret: sec, Mode: FixedSend, Amount: 100}, State{})
	if !errors.Is(err, ErrClosedByReceiver) {
		t.Errorf("Pay(closed) error = %v, want ErrClosedByReceiver", err)
	}
}

func TestSenderReceiveMaxLimitsPayment(t *testing.T) {
	sec := secret(9)
	acct := NewMemoryAccount(150, false)
	conn := newConnector(acct, sec, 1, 1)
	st, err := fastSender(conn.link).Pay(context.Background(), Payment{Destination: "test.receiver.z", SharedSecret: sec, Mode: FixedSend, Amount: 200, MaxPacketAmount: 100}, State{})
	if !errors.Is(err, ErrReceiverFull) || acct.Received() != 150 || st.Sent != 150 {
		t.Errorf("Pay(200 into room 150) = sent %d, account %d, %v; want 150 and ErrReceiverFull", st.Sent, acct.Received(), err)
	}
}

// TestSenderResume: the sender stops midway with a packet whose reply was
// lost after the receiver credited it (the process "crashes"); resumed
// from the persisted state, it asks the receiver what arrived and delivers
// exactly the amount, once.
func TestSenderResume(t *testing.T) {
	for _, mode := range []Mode{FixedSend, FixedReceive} {
		t.Run(map[Mode]string{FixedSend: "fixed send", FixedReceive: "fixed receive"}[mode], func(t *testing.T) {
			sec := secret(10 + byte(mode))
			acct := NewMemoryAccount(Unlimited, false)
			conn := newConnector(acct, sec, 1, 1)
			var saved []byte
			save := func(_ context.Context, st State) error {
				b, err := json.Marshal(st)
				saved = b
				return err
			}
			ctx, crash := context.WithCancel(context.Background())
			defer crash()
			fulfilled := 0
			crashing := func(ctx context.Context, p *ilp.Prepare) (ilp.Reply, error) {
				rep, err := conn.link(ctx, p)
				if _, ok := rep.(*ilp.Fulfill); ok {
					fulfilled++
					if fulfilled == 3 {
						crash() // the credit is made, the reply never arrives
						return nil, context.Canceled
					}
				}
				return rep, err
			}
			s := fastSender(crashing)
			s.Save = save
			s.PacketExpiry = time.Second
			pay := Payment{Destination: "test.receiver.r", SharedSecret: sec, Mode: mode, Amount: 1000, MaxPacketAmount: 100}
			if _, err := s.Pay(ctx, pay, State{}); !errors.Is(err, context.Canceled) {
				t.Fatalf("Pay() before the crash error = %v, want context.Canceled", err)
			}
			var st State
			if err := json.Unmarshal(saved, &st); err != nil {
				t.Fatal(err)
			}
			if st.InFlight == nil || st.Sent != 200 || acct.Received() != 300 {
				t.Fatalf("persisted state %+v, account %d: want 200 sent, one packet in flight, 300 credited", st, acct.Received())
			}
			resumed := fastSender(conn.link)
			resumed.Save = save
			st, err := resumed.Pay(context.Background(), pay, st)
			if err != nil {
				t.Fatalf("resumed Pay() error = %v", err)
			}
			if !st.Done || st.Sent != 1000 || st.Delivered != 1000 || acct.Received() != 1000 {
				t.Errorf("resumed Pay() sent %d delivered %d, account %d; want exactly 1000", st.Sent, st.Delivered, acct.Received())
			}
			if acct.Credits() != 10 {
				t.Errorf("account took %d packets, want 10 of 100", acct.Credits())
			}
			// Resuming a finished payment sends nothing.
			before := conn.prepares
			if st2, err := resumed.Pay(context.Background(), pay, st); err != nil || !st2.Done || conn.prepares != before {
				t.Errorf("Pay(done state) = %+v, %v, %d prepares", st2, err, conn.prepares-before)
			}
		})
	}
}

// TestSenderLinkErrorSettledByProbe: a link error on a packet that did
// reach the receiver does not make the sender pay twice.
func TestSenderLinkErrorSettledByProbe(t *testing.T) {
	sec := secret(20)
	acct := NewMemoryAccount(Unlimited, false)
	conn := newConnector(acct, sec, 1, 1)
	n := 0
	lossy := func(ctx context.Context, p *ilp.Prepare) (ilp.Reply, error) {
		rep, err := conn.link(ctx, p)
		if _, ok := rep.(*ilp.Fulfill); ok {
			n++
			if n%2 == 0 {
				return nil, errors.New("connection reset")
			}
		}
		return rep, err
	}
	s := fastSender(lossy)
	s.PacketExpiry = 200 * time.Millisecond
	st, err := s.Pay(context.Background(), Payment{Destination: "test.receiver.l", SharedSecret: sec, Mode: FixedSend, Amount: 500, MaxPacketAmount: 100}, State{})
	if err != nil || st.Sent != 500 || acct.Received() != 500 {
		t.Errorf("Pay(lossy link) = sent %d, account %d, %v; want exactly 500", st.Sent, acct.Received(), err)
	}
}

func TestRateArithmetic(t *testing.T) {
	tests := []struct {
		a, b, c, floor, ceil uint64
	}{
		{10, 3, 4, 7, 8},
		{1 << 62, 4, 2, 1 << 63, 1 << 63},
		{1 << 63, 4, 2, 1<<64 - 1, 1<<64 - 1},
		{1 << 63, 4, 1, 1<<64 - 1, 1<<64 - 1},
		{0, 5, 7, 0, 0},
	}
	for _, tt := range tests {
		if got := mulDivFloor(tt.a, tt.b, tt.c); got != tt.floor {
			t.Errorf("mulDivFloor(%d,%d,%d) = %d, want %d", tt.a, tt.b, tt.c, got, tt.floor)
		}
		if got := mulDivCeil(tt.a, tt.b, tt.c); got != tt.ceil {
			t.Errorf("mulDivCeil(%d,%d,%d) = %d, want %d", tt.a, tt.b, tt.c, got, tt.ceil)
		}
	}
	if !below(Rate{1, 2}, Rate{9, 10}) || below(Rate{9, 10}, Rate{9, 10}) || below(Rate{2, 1}, Rate{1, 1}) {
		t.Errorf("below() wrong")
	}
}
