package openpayments_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
	"github.com/qrswitch/qrswitch/partners/railtest"
)

// BenchmarkPrepare: one fulfillable Prepare of 1 unit through the ILP
// endpoint (no TLS), credited durably in SQLite, per iteration.
func BenchmarkPrepare(b *testing.B) {
	e := newEnv(b, railtest.NewHost())
	in := e.incomingFor("shop1", nil, "")
	_, ip := e.do("GET", in, "GNAP all", nil)
	m := ip["methods"].([]any)[0].(map[string]any)
	dest, secret := ilp.Address(m["ilpAddress"].(string)), decodeSecret(b, m["sharedSecret"].(string))
	keys, _ := stream.NewKeys(secret)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		data, _ := keys.SealPacket(&stream.Packet{Sequence: uint64(i + 1), ILPType: ilp.TypePrepare, PrepareAmount: 1, Frames: []stream.Frame{stream.StreamMoney{StreamID: 1, Shares: 1}}})
		p := &ilp.Prepare{Amount: 1, ExpiresAt: time.Now().Add(time.Hour), ExecutionCondition: keys.ConditionFor(data), Destination: dest, Data: data}
		bodies[i], _ = p.MarshalBinary()
	}
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPost, "/op/ilp", bytes.NewReader(bodies[i]))
		req.Header.Set("Authorization", "Bearer "+peerToken)
		req.Header.Set("Content-Type", "application/octet-stream")
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		if rep, err := ilp.DecodeReply(rec.Body.Bytes()); err != nil || !isFulfill(rep) {
			b.Fatalf("prepare %d answered %v %v, want a Fulfill", i, rep, err)
		}
	}
}
