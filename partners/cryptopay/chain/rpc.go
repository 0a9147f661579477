package chain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Caller makes one JSON-RPC 2.0 call and decodes its result into result
// (a pointer; nil to discard it). HTTPCaller and WSConn implement it.
type Caller interface {
	Call(ctx context.Context, result any, method string, params ...any) error
}

// RPCError is an error object a node answered with.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, truncate(e.Message))
}

// ErrNotFound is returned when a node answers null for a block that does
// not exist (yet, or any more after a reorganisation).
var ErrNotFound = errors.New("chain: not found")

// Defaults of HTTPConfig and WSConfig.
const (
	DefaultTimeout         = 30 * time.Second
	DefaultMaxResponseSize = 64 << 20
)

// request is a JSON-RPC 2.0 request.
type request struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  []any  `json:"params"`
}

// message is anything a node sends: a response (ID set) or, on a
// WebSocket, a subscription notification (Method set).
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *RPCError       `json:"error,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// decodeResponse checks that m answers request id and decodes its result.
func decodeResponse(m *message, id uint64, result any) error {
	if m.JSONRPC != "2.0" {
		return fmt.Errorf("%w: response jsonrpc %q, want \"2.0\"", ErrMalformed, truncate(m.JSONRPC))
	}
	if got, err := strconv.ParseUint(string(m.ID), 10, 64); err != nil || got != id {
		return fmt.Errorf("%w: response id %s, want %d", ErrMalformed, truncate(string(m.ID)), id)
	}
	if m.Error != nil {
		return m.Error
	}
	if m.Result == nil {
		return fmt.Errorf("%w: response without result or error", ErrMalformed)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(m.Result, result); err != nil {
		if errors.Is(err, ErrMalformed) {
			return err
		}
		return fmt.Errorf("%w: result: %w", ErrMalformed, err)
	}
	return nil
}

// HTTPConfig sets up an HTTPCaller.
type HTTPConfig struct {
	// URL is the node's JSON-RPC endpoint, such as http://127.0.0.1:8545.
	URL string
	// Timeout bounds one call, connection and answer included, besides the
	// caller's context. Default DefaultTimeout (30 s).
	Timeout time.Duration
	// Transport carries the requests (TLS trust, proxies). Default: a
	// transport with 10 s dial and TLS handshake timeouts.
	Transport http.RoundTripper
	// Header is sent with every request (an API key, for providers that
	// take one in a header).
	Header http.Header
	// MaxResponseSize bounds an answer's body in bytes. Default
	// DefaultMaxResponseSize (64 MiB).
	MaxResponseSize int64
}

// HTTPCaller calls a node over HTTP POST, one request per call. It is safe
// for concurrent use.
type HTTPCaller struct {
	url    string
	client *http.Client
	header http.Header
	max    int64
	nextID atomic.Uint64
}

// NewHTTP returns an HTTPCaller for c.URL.
func NewHTTP(c HTTPConfig) *HTTPCaller {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxResponseSize <= 0 {
		c.MaxResponseSize = DefaultMaxResponseSize
	}
	if c.Transport == nil {
		c.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: c.Timeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
		}
	}
	return &HTTPCaller{
		url:    c.URL,
		client: &http.Client{Transport: c.Transport, Timeout: c.Timeout},
		header: c.Header.Clone(),
		max:    c.MaxResponseSize,
	}
}

// Call implements Caller.
func (h *HTTPCaller) Call(ctx context.Context, result any, method string, params ...any) error {
	if params == nil {
		params = []any{}
	}
	id := h.nextID.Add(1)
	body, err := json.Marshal(request{JSONRPC: "2.0", ID: id, Method: method, Params: params})
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("calling %s: %w", method, err)
	}
	for k, v := range h.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, h.max+1))
	if err != nil {
		return fmt.Errorf("reading %s answer: %w", method, err)
	}
	if int64(len(raw)) > h.max {
		return fmt.Errorf("reading %s answer: larger than %d bytes", method, h.max)
	}
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{Method: method, Status: resp.StatusCode, Body: truncate(string(raw))}
	}
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%w: %s answer: %w", ErrMalformed, method, err)
	}
	if err := decodeResponse(&m, id, result); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	return nil
}

// HTTPError is a non-200 HTTP answer to a JSON-RPC call (a provider's rate
// limit, a proxy's error page).
type HTTPError struct {
	Method string
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("calling %s: HTTP %d: %s", e.Method, e.Status, e.Body)
}

// Interface guards.
var (
	_ Caller = (*HTTPCaller)(nil)
	_ error  = (*RPCError)(nil)
	_ error  = (*HTTPError)(nil)
)
