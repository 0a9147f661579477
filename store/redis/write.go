package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Commit applies c atomically, in one script and one round trip (the WAIT
// of Options.WaitReplicas rides in the same pipeline). See qrswitch.Store
// and the package comment.
func (s *Store) Commit(ctx context.Context, c *qrswitch.Change) error {
	args, records, err := encodeChange(c)
	if err != nil || args == nil {
		return err
	}
	args = append([]any{s.prefix, s.opts.Retention.Milliseconds(), s.opts.QRKeep.Milliseconds()}, args...)
	ctx = withOp(ctx, opCommit)
	wait := records && s.opts.WaitReplicas > 0
	var res []any
	for attempt := 0; ; attempt++ {
		res, err = s.runCommit(ctx, args, wait, attempt > 0)
		if err == nil || attempt > 0 || !isNoScript(err) {
			break
		}
		// The server lost its script cache (a restart, a failover): the
		// script did not run; send it whole.
	}
	if err != nil {
		return err
	}
	if len(res) == 3 {
		record, _ := str(res[0])
		key, _ := str(res[1])
		kind, _ := str(res[2])
		e := qrswitch.ErrConflict
		if kind == "dup" {
			e = qrswitch.ErrDuplicate
		}
		return &qrswitch.CommitError{Record: record, Key: key, Err: e}
	}
	if len(res) != 1 {
		return fmt.Errorf("committing: %w: unexpected reply %v", qrswitch.ErrUnavailable, res)
	}
	if c.QR != nil {
		c.QR.Version++
	}
	if c.Payment != nil {
		c.Payment.Version++
	}
	for _, a := range c.Advices {
		a.Version++
	}
	if c.Control != nil {
		c.Control.Version++
	}
	for _, r := range c.Records {
		r.Version++
	}
	return nil
}

// runCommit runs the commit script, by SHA or (full) by source, followed by
// WAIT when wait is set. A NOSCRIPT error is returned as it is, so the caller
// may send the source; every other error wraps ErrUnavailable.
func (s *Store) runCommit(ctx context.Context, args []any, wait, source bool) ([]any, error) {
	run := func(c redis.Scripter) *redis.Cmd {
		if source {
			return commitScript.Eval(ctx, c, nil, args...)
		}
		return commitScript.EvalSha(ctx, c, nil, args...)
	}
	if !wait {
		res, err := run(s.c).Slice()
		if err != nil && !isNoScript(err) {
			return nil, unavailable("committing", err)
		}
		return res, err
	}
	pipe := s.c.Pipeline()
	cmd := run(pipe)
	// Pipeliner lacks Wait: WAIT numreplicas timeout-ms.
	acks := pipe.Do(ctx, "wait", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds())
	pipe.Exec(ctx) // each command carries its own error
	res, err := cmd.Slice()
	switch {
	case isNoScript(err):
		return nil, err
	case err != nil:
		return nil, unavailable("committing", err)
	case len(res) != 1:
		return res, nil // refused: nothing was written, nothing to wait for
	}
	n, err := acks.Int64()
	if err != nil {
		return nil, unavailable("waiting for replicas to acknowledge a commit", err)
	}
	if n < int64(s.opts.WaitReplicas) {
		return nil, fmt.Errorf("committing: %w: applied on the master but acknowledged by %d of %d replicas within %s; it may be lost in a failover",
			qrswitch.ErrUnavailable, n, s.opts.WaitReplicas, s.opts.WaitTimeout)
	}
	return res, nil
}

// ClaimAdvices leases up to c.Max due advices to c.Owner in one script. See
// qrswitch.Claim and the package comment.
func (s *Store) ClaimAdvices(ctx context.Context, c qrswitch.Claim) ([]*qrswitch.Advice, error) {
	if c.Max <= 0 {
		return nil, nil
	}
	until := c.Now.Add(c.Lease).Round(0).UTC()
	nowUS, nowNS := micros(c.Now)
	dueUS, dueNS := nowUS, nowNS
	if c.DueBy.After(c.Now) {
		dueUS, dueNS = micros(c.DueBy)
	}
	untilUS, untilNS := micros(until)
	res, err := claimScript.Run(withOp(ctx, opClaim), s.c, nil, s.prefix, c.Destination, c.Owner,
		itoa(nowUS), itoa(nowNS), itoa(dueUS), itoa(dueNS), itoa(untilUS), itoa(untilNS), c.Max).Slice()
	if err != nil {
		return nil, unavailable("claiming advices", err)
	}
	out := make([]*qrswitch.Advice, 0, len(res)/3)
	for i := 0; i+3 <= len(res); i += 3 {
		a, err := decodeAdvice([]any{res[i+1], res[i+2], c.Owner, untilUS, untilNS})
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
