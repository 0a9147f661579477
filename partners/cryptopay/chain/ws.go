package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Defaults of WSConfig.
const (
	DefaultPingInterval       = 30 * time.Second
	DefaultNotificationBuffer = 1024
)

// ErrClosed is returned by calls on a WebSocket connection that has ended;
// WSConn.Err says why.
var ErrClosed = errors.New("chain: WebSocket connection closed")

// ErrSlowConsumer ends a WebSocket connection whose subscriber fell more
// than WSConfig.NotificationBuffer notifications behind: dropping one
// silently would lose a block, and blocking would stall the connection's
// calls. The subscriber reconnects and catches up from its cursor.
var ErrSlowConsumer = errors.New("chain: subscription notifications not consumed in time")

// WSConfig sets up a WebSocket connection.
type WSConfig struct {
	// URL is the node's WebSocket endpoint, such as ws://127.0.0.1:8545.
	URL string
	// Header is sent with the handshake (an API key).
	Header http.Header
	// HTTPClient performs the handshake (TLS trust). Default: one with a
	// 10 s timeout for the handshake.
	HTTPClient *http.Client
	// PingInterval is how often the connection is pinged; a ping not
	// answered within the interval ends the connection, so a silently dead
	// peer is noticed. Default DefaultPingInterval (30 s).
	PingInterval time.Duration
	// MaxMessageSize bounds one message from the node in bytes. Default
	// DefaultMaxResponseSize (64 MiB).
	MaxMessageSize int64
	// NotificationBuffer is how many notifications a subscription holds for
	// its reader before the connection ends with ErrSlowConsumer. Default
	// DefaultNotificationBuffer (1024).
	NotificationBuffer int
}

// WSConn is a JSON-RPC connection over a WebSocket: calls and
// eth_subscribe subscriptions share it. It is safe for concurrent use. It
// does not reconnect: when it ends (Done), the owner dials again and
// resubscribes (the Watcher does).
type WSConn struct {
	conn   *websocket.Conn
	buffer int
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]*pendingCall
	subs    map[string]*Subscription
	err     error

	done      chan struct{} // closed when the connection has ended
	stopPing  chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type pendingCall struct {
	answer chan *message // buffered 1
	sub    *Subscription // for eth_subscribe: registered on the answer
}

// Subscription is one eth_subscribe subscription on a WSConn.
type Subscription struct {
	id   string
	conn *WSConn
	ch   chan json.RawMessage
}

// ID returns the subscription id the node gave.
func (s *Subscription) ID() string { return s.id }

// Notifications returns the results of the subscription's notifications
// in the order the node sent them. The channel is closed when the
// connection ends.
func (s *Subscription) Notifications() <-chan json.RawMessage { return s.ch }

// Unsubscribe ends the subscription at the node (eth_unsubscribe).
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	var ok bool
	if err := s.conn.Call(ctx, &ok, "eth_unsubscribe", s.id); err != nil {
		return err
	}
	s.conn.mu.Lock()
	if _, live := s.conn.subs[s.id]; live {
		delete(s.conn.subs, s.id)
		close(s.ch)
	}
	s.conn.mu.Unlock()
	return nil
}

// DialWS opens a WebSocket JSON-RPC connection to c.URL.
func DialWS(ctx context.Context, c WSConfig) (*WSConn, error) {
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxResponseSize
	}
	if c.NotificationBuffer <= 0 {
		c.NotificationBuffer = DefaultNotificationBuffer
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	conn, _, err := websocket.Dial(ctx, c.URL, &websocket.DialOptions{HTTPClient: c.HTTPClient, HTTPHeader: c.Header})
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", c.URL, err)
	}
	conn.SetReadLimit(c.MaxMessageSize)
	w := &WSConn{
		conn:     conn,
		buffer:   c.NotificationBuffer,
		pending:  map[uint64]*pendingCall{},
		subs:     map[string]*Subscription{},
		done:     make(chan struct{}),
		stopPing: make(chan struct{}),
	}
	w.wg.Add(2)
	go w.read()
	go w.ping(c.PingInterval)
	return w, nil
}

// Call implements Caller.
func (w *WSConn) Call(ctx context.Context, result any, method string, params ...any) error {
	return w.call(ctx, result, nil, method, params)
}

// Subscribe starts an eth_subscribe subscription, such as ("newHeads") or
// ("logs", filter).
func (w *WSConn) Subscribe(ctx context.Context, params ...any) (*Subscription, error) {
	sub := &Subscription{conn: w, ch: make(chan json.RawMessage, w.buffer)}
	if err := w.call(ctx, &sub.id, sub, "eth_subscribe", params); err != nil {
		return nil, err
	}
	return sub, nil
}

func (w *WSConn) call(ctx context.Context, result any, sub *Subscription, method string, params []any) error {
	if params == nil {
		params = []any{}
	}
	id := w.nextID.Add(1)
	body, err := json.Marshal(request{JSONRPC: "2.0", ID: id, Method: method, Params: params})
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", method, err)
	}
	p := &pendingCall{answer: make(chan *message, 1), sub: sub}
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return fmt.Errorf("calling %s: %w: %w", method, ErrClosed, err)
	}
	w.pending[id] = p
	w.mu.Unlock()
	forget := func() {
		w.mu.Lock()
		delete(w.pending, id)
		w.mu.Unlock()
	}
	if err := w.conn.Write(ctx, websocket.MessageText, body); err != nil {
		forget()
		w.fail(fmt.Errorf("writing: %w", err))
		return fmt.Errorf("calling %s: %w", method, err)
	}
	select {
	case m := <-p.answer:
		if err := decodeResponse(m, id, result); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		return nil
	case <-w.done:
		forget()
		return fmt.Errorf("calling %s: %w: %w", method, ErrClosed, w.Err())
	case <-ctx.Done():
		forget()
		return fmt.Errorf("calling %s: %w", method, ctx.Err())
	}
}

// read is the connection's only reader: it routes answers to their calls
// and notifications to their subscriptions until the connection ends.
func (w *WSConn) read() {
	defer w.wg.Done()
	for {
		_, raw, err := w.conn.Read(context.Background())
		if err != nil {
			w.fail(fmt.Errorf("reading: %w", err))
			return
		}
		if err := w.dispatch(raw); err != nil {
			w.fail(err)
			w.conn.CloseNow()
			return
		}
	}
}

// dispatch routes one message. It returns an error only for what ends the
// connection: a notification nobody can take.
func (w *WSConn) dispatch(raw []byte) error {
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil // not JSON-RPC: no call can be matched to it
	}
	if m.Method == "eth_subscription" {
		var n struct {
			Subscription string          `json:"subscription"`
			Result       json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(m.Params, &n); err != nil {
			return nil
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		sub, ok := w.subs[n.Subscription]
		if !ok {
			return nil // unsubscribed, or another client's: nothing to route
		}
		select {
		case sub.ch <- n.Result:
			return nil
		default:
			return ErrSlowConsumer
		}
	}
	id, err := strconv.ParseUint(string(m.ID), 10, 64)
	if err != nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.pending[id]
	if !ok {
		return nil // its caller gave up
	}
	delete(w.pending, id)
	// A subscription is registered before the next message is read, so
	// the notifications that follow its answer are never lost.
	if p.sub != nil && m.Error == nil {
		var subID string
		if json.Unmarshal(m.Result, &subID) == nil && subID != "" {
			p.sub.id = subID
			w.subs[subID] = p.sub
		}
	}
	p.answer <- &m
	return nil
}

// ping pings the node every interval and ends the connection when a pong
// does not come back within the interval.
func (w *WSConn) ping(interval time.Duration) {
	defer w.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stopPing:
			return
		case <-w.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			err := w.conn.Ping(ctx)
			cancel()
			if err != nil {
				w.fail(fmt.Errorf("pinging: %w", err))
				w.conn.CloseNow()
				return
			}
		}
	}
}

// fail ends the connection with err (the first error wins): pending calls
// return, subscription channels close.
func (w *WSConn) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	w.err = err
	close(w.done)
	for id, s := range w.subs {
		close(s.ch)
		delete(w.subs, id)
	}
}

// Done is closed when the connection has ended.
func (w *WSConn) Done() <-chan struct{} { return w.done }

// Err returns why the connection ended, nil while it is open.
func (w *WSConn) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close ends the connection and waits for its goroutines. It may be
// called more than once.
func (w *WSConn) Close() error {
	w.closeOnce.Do(func() {
		open := w.Err() == nil
		w.fail(ErrClosed)
		close(w.stopPing)
		if open {
			// The reader is still running and takes the peer's close frame.
			w.conn.Close(websocket.StatusNormalClosure, "")
		} else {
			w.conn.CloseNow()
		}
		w.wg.Wait()
	})
	return nil
}

// Interface guards.
var _ Caller = (*WSConn)(nil)
