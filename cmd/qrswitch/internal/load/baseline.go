package load

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"
)

// directFlow sends a flow's payment and confirmation straight to the
// simulator, as the switch would after the scan: the direct path the
// switch's throughput is compared with.
func (r *runner) directFlow(ctx context.Context, due time.Time) {
	s := r.stats
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	measured := !due.Before(r.measureFrom)
	p := &r.pos[r.rnd.IntN(len(r.pos))]
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(r.o.PartnerUsername+":"+r.o.PartnerPassword))
	id := uuid()
	body := r.payBody(p, id, uuid()[:32], r.amount(false))
	// The switch adds the partner and the scan's payment token.
	body = append(body[:len(body)-1], fmt.Sprintf(`,"partner":{"id":"sim-wallet","name":"Sim Wallet"},"partnerPaymentToken":%q}`, uuid())...)
	t := time.Now()
	a := post(ctx, r.sim.next(), r.o.SimURL+"/qr/v1/payments", auth, body)
	if measured {
		s.steps[StepPay].record(time.Since(t))
	}
	if a.err != nil || a.status != http.StatusCreated {
		if measured {
			s.fail(a.what(StepPay))
		}
		return
	}
	t = time.Now()
	a = post(ctx, r.sim.next(), r.o.SimURL+"/qr/v1/payments/confirmations", auth, adviceBody(id, ""))
	if !measured {
		return
	}
	s.steps[StepConfirm].record(time.Since(t))
	if a.err != nil || a.status != http.StatusAccepted {
		s.fail(a.what(StepConfirm))
		return
	}
	s.flows.Add(1)
	s.approved.Add(1)
	s.steps[StepFlow].record(time.Since(due))
}
