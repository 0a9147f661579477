package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	ctx = withOp(ctx, opCommit)
	traceKey := c.TraceKey
	if traceKey == "" && c.Payment != nil {
		traceKey = c.Payment.Key()
	}
	sh, err := s.changeShard(ctx, c, traceKey)
	if err != nil {
		return err
	}
	args = append([]any{sh.prefix, s.opts.Retention.Milliseconds(), s.opts.QRKeep.Milliseconds()}, args...)
	wait := records && s.opts.WaitReplicas > 0
	var res []any
	for attempt := 0; ; attempt++ {
		res, err = s.runCommit(ctx, sh, args, wait, attempt > 0)
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
		if len(s.shards) > 1 && a.Sender == qrswitch.SwitchSender {
			s.placed.put("adv:"+a.Key(), sh)
		}
	}
	if c.Control != nil {
		c.Control.Version++
	}
	for _, r := range c.Records {
		r.Version++
		if len(s.shards) > 1 {
			s.placed.put("rec:"+recordKey(r), sh)
		}
	}
	return nil
}

// runCommit runs the commit script, by SHA or (full) by source, followed by
// WAIT when wait is set. A NOSCRIPT error is returned as it is, so the caller
// may send the source; every other error wraps ErrUnavailable.
//
// The script is never sent twice after a failure whose outcome is unknown
// (go-redis is told so per command: noRetry). The refusals Redis Cluster
// gives before it runs anything — MOVED after a failover, CLUSTERDOWN
// during one, TRYAGAIN — are sent again, a few times, after the slot map
// was read again. ASK too: the store's slot is being moved (see the package
// comment); the commit waits for the move to end, and fails with
// ErrUnavailable if it has not by the last attempt.
func (s *Store) runCommit(ctx context.Context, sh *shard, args []any, wait, source bool) ([]any, error) {
	for attempt := 1; ; attempt++ {
		res, err := s.runCommitOnce(ctx, sh, args, wait, source)
		if err == nil || s.cluster == nil || attempt == clusterAttempts || !notRun(err) {
			if err != nil && !isNoScript(err) && !errors.Is(err, qrswitch.ErrUnavailable) {
				err = unavailable("committing", err)
			}
			return res, err
		}
		if to, ok := movedTo(err); ok {
			s.awaitMaster(ctx, sh.prefix, to)
			continue
		}
		if serr := sleep(ctx, time.Duration(attempt-1)*clusterBackoff); serr != nil {
			return nil, unavailable("committing", err)
		}
		s.cluster.ReloadState(ctx)
	}
}

// clusterAttempts bounds the sends of one commit that a cluster refused
// before running it; clusterBackoff times the waits before them (none, one,
// two, … times it: 2.1 s in all), long enough for a slot's keys to finish
// moving, or for every node to have heard of a new master (the slot map is
// read from any node, and one that has not yet heard names the old master
// again).
const (
	clusterAttempts = 8
	clusterBackoff  = 100 * time.Millisecond
)

func (s *Store) runCommitOnce(ctx context.Context, sh *shard, args []any, wait, source bool) ([]any, error) {
	if !wait {
		return commitCmd(ctx, s.c, sh.prefix, args, source).Slice()
	}
	var pipe redis.Pipeliner
	if s.cluster != nil {
		// WAIT names no key: it must go to the master that ran the script.
		node, err := s.cluster.MasterForKey(ctx, sh.prefix)
		if err != nil {
			return nil, unavailable("finding the master of the store's slot", err)
		}
		pipe = node.Pipeline()
	} else {
		pipe = s.c.Pipeline()
	}
	cmd := commitCmd(ctx, pipe, sh.prefix, args, source)
	// Pipeliner lacks Wait: WAIT numreplicas timeout-ms.
	acks := pipe.Do(ctx, "wait", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds())
	// Each command carries its own error. The node's client is not the
	// cluster's: its failures are noted here.
	_, err := pipe.Exec(ctx)
	s.failed(err)
	res, err := cmd.Slice()
	switch {
	case err != nil:
		return nil, err
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

// commitCmd sends the commit script with key (the store's prefix: the slot
// on a cluster) through p, which runs it (a client) or queues it (a
// pipeline).
func commitCmd(ctx context.Context, p interface {
	Process(context.Context, redis.Cmder) error
}, key string, args []any, source bool) *redis.Cmd {
	head := []any{"evalsha", commitScript.Hash(), 1, key}
	if source {
		head = []any{"eval", commitSrc, 1, key}
	}
	cmd := redis.NewCmd(ctx, append(head, args...)...)
	_ = p.Process(ctx, noRetry{cmd}) // the error is cmd's
	return cmd
}

// noRetry tells go-redis never to send a command again after a failure: a
// commit whose answer was lost may have been applied, and sent again it
// would fail its own checks (a duplicate of itself).
type noRetry struct{ *redis.Cmd }

func (noRetry) NoRetry() bool { return true }

// notRun reports whether err is a refusal Redis Cluster gives before it
// runs a command.
func notRun(err error) bool {
	for _, prefix := range []string{"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ClaimAdvices leases up to c.Max due advices to c.Owner in one script. See
// qrswitch.Claim and the package comment. A sharded store first counts
// what is due in every shard (one pipeline), then claims shard by shard,
// starting at a different one each time, until c.Max are leased.
func (s *Store) ClaimAdvices(ctx context.Context, c qrswitch.Claim) ([]*qrswitch.Advice, error) {
	if c.Max <= 0 {
		return nil, nil
	}
	ctx = withOp(ctx, opClaim)
	until := c.Now.Add(c.Lease).Round(0).UTC()
	nowUS, nowNS := micros(c.Now)
	dueUS, dueNS := nowUS, nowNS
	if c.DueBy.After(c.Now) {
		dueUS, dueNS = micros(c.DueBy)
	}
	untilUS, untilNS := micros(until)
	shards := s.shards
	if len(shards) > 1 {
		var err error
		if shards, err = s.dueShards(ctx, c.Destination, dueUS); err != nil {
			return nil, err
		}
	}
	var out []*qrswitch.Advice
	for _, sh := range shards {
		res, err := claimScript.Run(ctx, s.c, sh.route, sh.prefix, c.Destination, c.Owner,
			itoa(nowUS), itoa(nowNS), itoa(dueUS), itoa(dueNS), itoa(untilUS), itoa(untilNS), c.Max-len(out)).Slice()
		if err != nil {
			// What earlier shards leased is returned: their leases are
			// this owner's, and would otherwise wait out their time.
			if len(out) > 0 {
				return out, nil
			}
			return nil, unavailable("claiming advices", err)
		}
		for i := 0; i+3 <= len(res); i += 3 {
			a, err := decodeAdvice([]any{res[i+1], res[i+2], c.Owner, untilUS, untilNS})
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		if len(out) >= c.Max {
			break
		}
	}
	return out, nil
}

// dueShards returns the shards with advices due by dueUS for the
// destination ("" for any), in a rotating order so that no shard's queue
// is always served first.
func (s *Store) dueShards(ctx context.Context, destination string, dueUS int64) ([]*shard, error) {
	due := "due"
	if destination != "" {
		due = "due:" + destination
	}
	cmds := make([]*redis.IntCmd, len(s.shards))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sh := range s.shards {
			cmds[i] = p.ZCount(ctx, sh.key(due), "-inf", itoa(dueUS))
		}
		return nil
	})
	start := int(s.turn.Add(1) % uint64(len(s.shards)))
	var out []*shard
	answered := 0
	for j := range s.shards {
		i := (start + j) % len(s.shards)
		if cmds[i].Err() == nil {
			answered++
		}
		if cmds[i].Val() > 0 {
			out = append(out, s.shards[i])
		}
	}
	if answered == 0 {
		// A shard that did not answer (its master failing over) keeps its
		// advices until it does; the others' are claimed meanwhile.
		return nil, unavailable("claiming advices", err)
	}
	return out, nil
}
