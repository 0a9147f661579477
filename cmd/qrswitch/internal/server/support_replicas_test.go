package server

import (
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// TestPauseHoldsOnEveryReplica: an operator pauses a partner's queue on one
// replica, and another replica sharing the Redis store stops sending its
// advices too — neither from its queue nor at enqueue — until the queue is
// resumed, again from the first. The periodic re-read of the controls is
// off here: the wake-up through Redis carries the pause at once.
func TestPauseHoldsOnEveryReplica(t *testing.T) {
	srv := redistest.Start(t)
	hs := newReplicas(t, srv.URL(), 2, func(_ *config.Config, o *Options) { o.ControlRefresh = time.Hour })
	a, b := hs[0], hs[1]
	req := b.approvedPayment(t, 1111)
	if r := a.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/pause", reason("replica drill")); r.status != 200 {
		t.Fatalf("pause on replica a = %d %s", r.status, r.body)
	}
	eventually(t, "replica b paused", func() bool { return b.Srv.Engine().Paused("wallet-a") })
	conf := confirmation(req.ID)
	if r := b.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf); r.status != 202 {
		t.Fatalf("confirmation on replica b = %d", r.status)
	}
	time.Sleep(600 * time.Millisecond)
	if n := adviceSends(b, conf.ID); n != 0 {
		t.Fatalf("the partner got the confirmation %d time(s) while its queue was paused", n)
	}
	if r := a.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-a/resume", reason("drill over")); r.status != 200 {
		t.Fatalf("resume on replica a = %d", r.status)
	}
	b.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
}
