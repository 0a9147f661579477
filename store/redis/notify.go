package redisstore

import (
	"context"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Notifier carries the engine's wake-ups between the switch processes
// sharing the store, on one pub/sub channel (PREFIX wake). Pub/sub does not
// queue: a process that is not subscribed at the moment a key is published
// misses it, which is why the engine also re-reads held requests every
// Recheck interval.
type Notifier struct {
	s       *Store
	channel string
}

// Notifier returns the store's wake-up channel.
func (s *Store) Notifier() *Notifier { return &Notifier{s: s, channel: s.home.key("wake")} }

// Notify publishes key to every listening process, this one included.
func (n *Notifier) Notify(ctx context.Context, key string) error {
	if err := n.s.c.Publish(withOp(ctx, opNotify), n.channel, key).Err(); err != nil {
		return unavailable("publishing a wake-up", err)
	}
	return nil
}

// Listen calls fn with every key published until ctx ends (then it returns
// nil) or the subscription breaks (then it returns the error, and the
// caller listens again).
func (n *Notifier) Listen(ctx context.Context, fn func(key string)) error {
	sub := n.s.c.Subscribe(ctx, n.channel)
	// A blocked receive does not watch ctx: closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer func() {
		stop()
		sub.Close()
	}()
	// The first reply confirms the subscription; from then on nothing
	// published is missed until the connection breaks.
	if _, err := sub.Receive(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("subscribing to wake-ups", err)
	}
	for {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return unavailable("receiving wake-ups", err)
		}
		fn(msg.Payload)
	}
}

// Interface guards
var _ qrswitch.Notifier = (*Notifier)(nil)
