package qrswitch

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// inbound records a request that reached the switch.
func inbound(at time.Time, peer, op, id string, raw []byte) TraceEntry {
	return TraceEntry{At: at, Direction: Inbound, Peer: peer, Operation: op, Kind: KindRequest, MessageID: id, Body: string(wire.Mask(raw))}
}

// answered records the switch's answer to an inbound request.
func answered(at time.Time, peer, op, id string, status int, body any, took time.Duration) TraceEntry {
	t := TraceEntry{At: at, Direction: Outbound, Peer: peer, Operation: op, Kind: KindAnswer, MessageID: id, Status: status, LatencyMS: ms(took)}
	if body != nil {
		if b, err := json.Marshal(body); err == nil {
			t.Body = string(wire.Mask(b))
		}
	}
	return t
}

// answeredRaw is answered with an already-encoded body.
func answeredRaw(at time.Time, peer, op, id string, status int, body []byte) TraceEntry {
	return TraceEntry{At: at, Direction: Outbound, Peer: peer, Operation: op, Kind: KindAnswer, MessageID: id, Status: status, Body: string(wire.Mask(body))}
}

// event records a decision inside the switch.
func event(at time.Time, name, note string) TraceEntry {
	return TraceEntry{At: at, Direction: Internal, Peer: "switch", Operation: name, Kind: KindEvent, Note: note}
}

// exchange records one exchange with a destination: the request as sent
// and the answer (or its absence).
func exchange(sentAt time.Time, destination, op, messageID string, a *partners.Answer) []TraceEntry {
	return []TraceEntry{
		{At: sentAt, Direction: Outbound, Peer: peerOf(destination), Operation: op, Kind: KindRequest, MessageID: messageID, Body: string(a.Sent)},
		answerEntry(sentAt.Add(a.Latency), destination, op, messageID, a),
	}
}

func answerEntry(at time.Time, destination, op, messageID string, a *partners.Answer) TraceEntry {
	t := TraceEntry{
		At: at, Direction: Inbound, Peer: peerOf(destination), Operation: op, Kind: KindAnswer,
		MessageID: messageID, Code: a.Code, Outcome: a.Outcome.String(), LatencyMS: ms(a.Latency),
		Body: string(a.Received),
	}
	if a.Err != nil {
		t.Note = a.Err.Error()
	}
	return t
}

// peerOf names a destination as a trace's peer: "partner:ID" for a
// partner, the destination itself ("retailer:ID") otherwise.
func peerOf(destination string) string {
	if strings.Contains(destination, ":") {
		return destination
	}
	return "partner:" + destination
}
