package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/qrswitch/qrswitch/internal/wire"
)

var benchBody = []byte(`{"id":"4f0a7c1e-8d2b-4a5e-9c1f-2b3d4e5f6a7b","time":"2026-12-04T10:00:00Z",
"originator":{"institution":{"id":"0001","name":"Demo"},"terminalId":"till-1","merchant":{"merchantType":"5999","merchantId":"m-1",
"merchantName":{"name":"Corner Grocer","city":"Cape Town","region":"WC","country":"ZA"}},"operatorId":"op-17","channelId":"pos"},
"client":{"id":"9999","name":"Client"},"settlementEntity":{"id":"5555","name":"Acquiring Bank"},"receiver":{"id":"7777","name":"Receiver"},
"thirdPartyIdentifiers":[{"institutionId":"1234","transactionIdentifier":"pos-1"}],"slipData":{"messageLines":["Thank you"]},
"basketRef":"basket-1","tranType":"GOODS_AND_SERVICES","srcAccType":"DEFAULT","destAccType":"DEFAULT","stan":"000123","rrn":"rrn-1",
"amounts":{"requestAmount":{"amount":79995,"currency":"710"}},"tranId":"0123456789abcdef0123456789abcdef"}`)

// BenchmarkApart: what running a request's decoding apart (Apart) costs
// over running it on the handler's goroutine. Each op decodes and
// re-encodes a payment request, as admission does. With a P idle (apart)
// each call wakes a thread to run the worker and another to run the caller
// again; with every P busy (-busy, as under load) the switches stay on one.
func BenchmarkApart(b *testing.B) {
	work := func() { benchWork(b) }
	b.Run("inline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			work()
		}
	})
	b.Run("apart", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Apart(work)
		}
	})
	// As in a busy switch: every P has work, so the worker runs where the
	// caller blocked instead of waking an idle thread.
	b.Run("inline-busy", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				work()
			}
		})
	})
	b.Run("apart-busy", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				Apart(work)
			}
		})
	})
}

// benchWork decodes and re-encodes a payment request.
func benchWork(b *testing.B) {
	var req wire.PaymentRequest
	if err := wire.Decode(benchBody, &req); err != nil {
		b.Fatal(err)
	}
	if _, err := json.Marshal(&req); err != nil {
		b.Fatal(err)
	}
}
