package qrswitch

import (
	"context"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// Observer is told what the engine does, for metrics (server/metrics.go
// implements it with Prometheus). Every method is called on the engine's
// hot paths: it must be cheap, must not block, and must be safe for
// concurrent use. Labels it derives must stay bounded: partner ids,
// operations, outcomes, Store method names — never ids of payments.
type Observer interface {
	// Exchange reports one exchange with a destination (a partner, or a
	// retailer's endpoint) and its classified outcome; op is the
	// operation's name (pay, confirmPayment, reversePayment, refund,
	// postback, …); latency is the timeout when it did not answer in time
	// (the outcome is then unknown).
	Exchange(destination, op string, o outcome.Outcome, latency time.Duration)
	// LateAnswer reports an answer that came after the timeout, recorded
	// in the trace and ignored.
	LateAnswer(destination, op string)
	// ScanLinked reports a scan linked to its payment request: gap is the
	// time from the request to the scan, or, when early is set, from the
	// scan (which came first and was held) to the request.
	ScanLinked(early bool, gap time.Duration)
	// StoreCall reports one call of a Store method (by name), how long it
	// took, and its error, if any.
	StoreCall(method string, took time.Duration, err error)
	// OperatorAction reports an operator's action that was carried out
	// (pausePartner, resumePartner, retryPartner, retryAdvice,
	// replayAdvice, finalizeAdvice).
	OperatorAction(action string)
}

// noObserver is the Observer of an engine given none.
type noObserver struct{}

func (noObserver) Exchange(string, string, outcome.Outcome, time.Duration) {}
func (noObserver) LateAnswer(string, string)                               {}
func (noObserver) ScanLinked(bool, time.Duration)                          {}
func (noObserver) StoreCall(string, time.Duration, error)                  {}
func (noObserver) OperatorAction(string)                                   {}

// observedStore times every call of the engine's store for its Observer.
type observedStore struct {
	Store
	obs Observer
}

func (s *observedStore) observe(method string, start time.Time, err error) {
	s.obs.StoreCall(method, time.Since(start), err)
}

func (s *observedStore) QR(ctx context.Context, tranID string) (*QRCode, error) {
	start := time.Now()
	q, err := s.Store.QR(ctx, tranID)
	s.observe("QR", start, err)
	return q, err
}

func (s *observedStore) Payment(ctx context.Context, key string) (*Payment, error) {
	start := time.Now()
	p, err := s.Store.Payment(ctx, key)
	s.observe("Payment", start, err)
	return p, err
}

func (s *observedStore) Advice(ctx context.Context, key string) (*Advice, error) {
	start := time.Now()
	a, err := s.Store.Advice(ctx, key)
	s.observe("Advice", start, err)
	return a, err
}

func (s *observedStore) Commit(ctx context.Context, c *Change) error {
	start := time.Now()
	err := s.Store.Commit(ctx, c)
	s.observe("Commit", start, err)
	return err
}

func (s *observedStore) ClaimAdvices(ctx context.Context, c Claim) ([]*Advice, error) {
	start := time.Now()
	as, err := s.Store.ClaimAdvices(ctx, c)
	s.observe("ClaimAdvices", start, err)
	return as, err
}

func (s *observedStore) Trace(ctx context.Context, key string) ([]TraceEntry, error) {
	start := time.Now()
	t, err := s.Store.Trace(ctx, key)
	s.observe("Trace", start, err)
	return t, err
}

func (s *observedStore) PaymentAdvices(ctx context.Context, key string) ([]*Advice, error) {
	start := time.Now()
	as, err := s.Store.PaymentAdvices(ctx, key)
	s.observe("PaymentAdvices", start, err)
	return as, err
}

func (s *observedStore) Lookup(ctx context.Context, id string) ([]*Payment, error) {
	start := time.Now()
	ps, err := s.Store.Lookup(ctx, id)
	s.observe("Lookup", start, err)
	return ps, err
}

func (s *observedStore) Search(ctx context.Context, q Query) ([]*Payment, error) {
	start := time.Now()
	ps, err := s.Store.Search(ctx, q)
	s.observe("Search", start, err)
	return ps, err
}

func (s *observedStore) ListAdvices(ctx context.Context, q AdviceQuery) ([]*Advice, error) {
	start := time.Now()
	as, err := s.Store.ListAdvices(ctx, q)
	s.observe("ListAdvices", start, err)
	return as, err
}

func (s *observedStore) QueueStats(ctx context.Context, partnerID string) (*QueueStats, error) {
	start := time.Now()
	st, err := s.Store.QueueStats(ctx, partnerID)
	s.observe("QueueStats", start, err)
	return st, err
}

func (s *observedStore) QueueControl(ctx context.Context, partnerID string) (*QueueControl, error) {
	start := time.Now()
	c, err := s.Store.QueueControl(ctx, partnerID)
	s.observe("QueueControl", start, err)
	return c, err
}

func (s *observedStore) QueueControls(ctx context.Context) ([]*QueueControl, error) {
	start := time.Now()
	cs, err := s.Store.QueueControls(ctx)
	s.observe("QueueControls", start, err)
	return cs, err
}

func (s *observedStore) Orphans(ctx context.Context, now time.Time, limit int) ([]*Payment, error) {
	start := time.Now()
	ps, err := s.Store.Orphans(ctx, now, limit)
	s.observe("Orphans", start, err)
	return ps, err
}

func (s *observedStore) Record(ctx context.Context, owner, kind, key string) (*partners.Record, error) {
	start := time.Now()
	r, err := s.Store.Record(ctx, owner, kind, key)
	s.observe("Record", start, err)
	return r, err
}

func (s *observedStore) Records(ctx context.Context, owner string, q partners.RecordQuery) ([]*partners.Record, error) {
	start := time.Now()
	rs, err := s.Store.Records(ctx, owner, q)
	s.observe("Records", start, err)
	return rs, err
}

func (s *observedStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.observe("Ping", start, err)
	return err
}

// Interface guards
var (
	_ Store    = (*observedStore)(nil)
	_ Observer = noObserver{}
)
