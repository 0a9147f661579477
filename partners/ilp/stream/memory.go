package stream

import (
	"context"
	"sync"
)

// MemoryAccount is an Account held in memory, for tests, benchmarks and
// demonstrations; it is not durable. It closes itself once Received
// reaches ReceiveMax when CloseWhenFull is set, as an incoming payment
// completes at its incomingAmount.
type MemoryAccount struct {
	mu            sync.Mutex
	received      uint64
	receiveMax    uint64
	closed        bool
	closeWhenFull bool
	credited      map[PacketID]uint64
	credits       int
}

// NewMemoryAccount returns an open account taking up to receiveMax in
// total (Unlimited for no limit).
func NewMemoryAccount(receiveMax uint64, closeWhenFull bool) *MemoryAccount {
	return &MemoryAccount{receiveMax: receiveMax, closeWhenFull: closeWhenFull, credited: map[PacketID]uint64{}}
}

// Balance implements Account.
func (a *MemoryAccount) Balance(context.Context) (Balance, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.balance(), nil
}

func (a *MemoryAccount) balance() Balance {
	return Balance{Received: a.received, ReceiveMax: a.receiveMax, Closed: a.closed}
}

// Credit implements Account.
func (a *MemoryAccount) Credit(_ context.Context, id PacketID, amount uint64) (Balance, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.credited[id]; ok {
		return a.balance(), nil
	}
	if a.closed {
		return a.balance(), ErrClosed
	}
	if amount > a.receiveMax-a.received {
		return a.balance(), ErrReceiveMax
	}
	a.received += amount
	a.credited[id] = amount
	a.credits++
	if a.closeWhenFull && a.received == a.receiveMax {
		a.closed = true
	}
	return a.balance(), nil
}

// Close stops the account taking money, as an expiry would.
func (a *MemoryAccount) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
}

// Credits reports how many distinct packets were credited.
func (a *MemoryAccount) Credits() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.credits
}

// Received reports the total credited.
func (a *MemoryAccount) Received() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.received
}

// Interface guard.
var _ Account = (*MemoryAccount)(nil)
