package chainsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"

	"github.com/coder/websocket"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// outboxSize is how many messages a WebSocket client may be behind before
// it is disconnected.
const outboxSize = 4096

// session is one WebSocket connection and its subscriptions.
type session struct {
	sim    *Sim
	conn   *websocket.Conn
	outbox chan []byte
	done   chan struct{}
	once   sync.Once

	// Guarded by sim.mu.
	heads map[string]struct{}
	logs  map[string]*filter

	// Subscriptions answered but not yet active; only the reader touches
	// them. A subscription becomes active once its answer is queued, so
	// no notification overtakes the answer that names it.
	pending []func()
}

// serveWS runs a WebSocket session until the client leaves or the sim
// drops it.
func (s *Sim) serveWS(conn *websocket.Conn) {
	sess := &session{
		sim:    s,
		conn:   conn,
		outbox: make(chan []byte, outboxSize),
		done:   make(chan struct{}),
		heads:  map[string]struct{}{},
		logs:   map[string]*filter{},
	}
	conn.SetReadLimit(1 << 20)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close(websocket.StatusGoingAway, "simulator closed")
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
		sess.close()
	}()

	go sess.write()
	for {
		_, msg, err := conn.Read(context.Background())
		if err != nil {
			return
		}
		if answer := s.handlePayload(msg, sess); answer != nil {
			if !sess.send(answer) {
				return
			}
		}
		if len(sess.pending) > 0 {
			s.mu.Lock()
			for _, activate := range sess.pending {
				activate()
			}
			s.mu.Unlock()
			sess.pending = nil
		}
	}
}

// write drains the outbox onto the connection.
func (sess *session) write() {
	for {
		select {
		case <-sess.done:
			return
		case m := <-sess.outbox:
			if err := sess.conn.Write(context.Background(), websocket.MessageText, m); err != nil {
				sess.close()
				return
			}
		}
	}
}

// send queues a message; a full outbox closes the session. It reports
// whether the message was queued.
func (sess *session) send(m []byte) bool {
	select {
	case <-sess.done:
		return false
	default:
	}
	select {
	case sess.outbox <- m:
		return true
	default:
		sess.close()
		return false
	}
}

func (sess *session) close() {
	sess.once.Do(func() {
		close(sess.done)
		sess.conn.CloseNow()
	})
}

// subscribe answers eth_subscribe; the subscription starts once the
// answer is queued.
func (sess *session) subscribe(params []json.RawMessage) (any, *rpcError) {
	var kind string
	if err := param(params, 0, &kind); err != nil {
		return nil, err
	}
	id := newSubscriptionID()
	switch kind {
	case "newHeads":
		sess.pending = append(sess.pending, func() { sess.heads[id] = struct{}{} })
	case "logs":
		f := &filter{}
		if len(params) > 1 {
			if err := param(params, 1, f); err != nil {
				return nil, err
			}
		}
		if err := f.compile(); err != nil {
			return nil, err
		}
		sess.pending = append(sess.pending, func() { sess.logs[id] = f })
	default:
		return nil, errorf(codeInvalidParams, "unsupported subscription %q", kind)
	}
	return id, nil
}

// unsubscribe answers eth_unsubscribe.
func (sess *session) unsubscribe(id string) bool {
	s := sess.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	_, h := sess.heads[id]
	_, l := sess.logs[id]
	delete(sess.heads, id)
	delete(sess.logs, id)
	return h || l
}

func newSubscriptionID() string {
	var b [16]byte
	rand.Read(b[:])
	return "0x" + hex.EncodeToString(b[:])
}

// notifyHead sends a newHeads notification to every subscriber. Callers
// hold mu.
func (s *Sim) notifyHead(h chain.Header) {
	for sess := range s.sessions {
		for id := range sess.heads {
			sess.send(notification(id, h))
		}
	}
}

// notifyLogs sends each log to the subscriptions whose filter it passes.
// Callers hold mu.
func (s *Sim) notifyLogs(logs []chain.Log) {
	for _, l := range logs {
		for sess := range s.sessions {
			for id, f := range sess.logs {
				if f.matches(l) {
					sess.send(notification(id, l))
				}
			}
		}
	}
}

func notification(id string, result any) []byte {
	return mustJSON(map[string]any{
		"jsonrpc": "2.0",
		"method":  "eth_subscription",
		"params":  map[string]any{"subscription": id, "result": result},
	})
}

// Disconnect closes every WebSocket connection and returns how many there
// were.
func (s *Sim) Disconnect() int {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.close()
	}
	return len(sessions)
}
