// Package ilphttp owns ILP over HTTP (IL-RFC 35) in its synchronous mode,
// the one Rafiki and the interledgerjs plugins speak: a Prepare is POSTed
// as the OER body and its Fulfill or Reject comes back as the response
// body. It provides the client link a STREAM sender sends through and the
// http.Handler building block a rail mounts to receive packets from its
// peers, authenticated by a bearer token per peer. The handler also
// answers IL-DCP (package ildcp) for its peers.
//
// Requests are sent with Content-Type and Accept application/octet-stream
// as IL-RFC 35 says; the handler also accepts application/ilp+octet-stream,
// which Rafiki and ilp-plugin-http send.
package ilphttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/ildcp"
)

// Content types.
const (
	ContentType    = "application/octet-stream"
	ILPContentType = "application/ilp+octet-stream"
)

// MaxPacketBytes bounds a request or response body: the largest ILPv4
// packet (a Reject with 32767 octets of data, an 8191-octet message and a
// 1023-character address) with room to spare.
const MaxPacketBytes = 64 << 10

// StatusError is a response other than 200 OK from a peer. Whether the
// Prepare was processed is unknown to the caller.
type StatusError struct {
	StatusCode int
	// Body is the start of the response body, for logs.
	Body string
}

// Error reports the status and the start of the body.
func (e *StatusError) Error() string {
	return fmt.Sprintf("ilphttp: peer answered HTTP %d: %s", e.StatusCode, e.Body)
}

// Client sends Prepares to one peer. Its Send method is a stream.Link.
type Client struct {
	// URL is the peer's ILP-over-HTTP endpoint.
	URL string
	// Token is the bearer token the peer knows this side by.
	Token string
	// HTTP sends the requests; NewClient sets one with timeouts.
	HTTP *http.Client
}

// NewClient returns a client whose http.Client gives up after timeout
// (each request is also bounded by its Prepare's expiry) and whose
// transport bounds dialing, TLS and waiting for headers.
func NewClient(url, token string, timeout time.Duration) *Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	return &Client{URL: url, Token: token, HTTP: &http.Client{Transport: tr, Timeout: timeout}}
}

// Send posts p and returns the peer's reply. An error means the outcome is
// unknown (the peer may have fulfilled p); a Reject is a reply, not an
// error.
func (c *Client) Send(ctx context.Context, p *ilp.Prepare) (ilp.Reply, error) {
	body, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding prepare: %w", err)
	}
	ctx, cancel := context.WithDeadline(ctx, p.ExpiresAt)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Accept", ContentType)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sending prepare to %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxPacketBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading reply from %s: %w", c.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{StatusCode: resp.StatusCode, Body: snippet(b)}
	}
	if len(b) > MaxPacketBytes {
		return nil, fmt.Errorf("reading reply from %s: body exceeds %d octets", c.URL, MaxPacketBytes)
	}
	rep, err := ilp.DecodeReply(b)
	if err != nil {
		return nil, fmt.Errorf("decoding reply from %s: %w", c.URL, err)
	}
	return rep, nil
}

func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// Peer is a party allowed to send packets to a Handler.
type Peer struct {
	// Name identifies the peer to the rail.
	Name string
	// Token is the bearer token the peer presents.
	Token string
	// Address, AssetCode and AssetScale answer the peer's IL-DCP request;
	// an empty Address answers it with F02.
	Address    ilp.Address
	AssetCode  string
	AssetScale uint8
}

// Handler receives Prepares over HTTP from its peers and answers them with
// Handle's reply. Requests are refused before Handle runs when the method
// is not POST (405), the token is unknown (401), the content type is
// neither octet-stream type (415), the body is too large (413) or not an
// ILPv4 Prepare (400).
type Handler struct {
	// Peers are the parties allowed in, told apart by token.
	Peers []Peer
	// Address is this node's address, triggeredBy in its own Rejects.
	Address ilp.Address
	// Handle answers a Prepare from peer; its context ends at the Prepare's
	// expiry. A nil reply or an error is answered with T00.
	Handle func(ctx context.Context, peer *Peer, p *ilp.Prepare) (ilp.Reply, error)
	// OnError, when set, hears Handle's errors and failed writes.
	OnError func(r *http.Request, err error)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	peer := h.authenticate(r)
	if peer == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ilp"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != ContentType && mt != ILPContentType) {
		http.Error(w, "content type must be "+ContentType, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPacketBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "packet too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	prep, err := ilp.DecodePrepare(body)
	if err != nil {
		http.Error(w, "body is not an ILPv4 Prepare: "+err.Error(), http.StatusBadRequest)
		return
	}
	var rep ilp.Reply
	if ildcp.IsRequest(prep) {
		rep = ildcp.Answer(prep, ildcp.Config{ClientAddress: peer.Address, AssetCode: peer.AssetCode, AssetScale: peer.AssetScale}, h.Address)
	} else {
		ctx, cancel := context.WithDeadline(r.Context(), prep.ExpiresAt)
		rep, err = h.Handle(ctx, peer, prep)
		cancel()
		if err != nil && h.OnError != nil {
			h.OnError(r, fmt.Errorf("handling prepare from %s: %w", peer.Name, err))
		}
		if rep == nil {
			rep = &ilp.Reject{Code: ilp.T00InternalError, TriggeredBy: h.Address}
		}
	}
	out, err := rep.MarshalBinary()
	if err != nil {
		if h.OnError != nil {
			h.OnError(r, fmt.Errorf("encoding reply: %w", err))
		}
		out, _ = (&ilp.Reject{Code: ilp.T00InternalError, TriggeredBy: h.Address}).MarshalBinary()
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(out); err != nil && h.OnError != nil {
		h.OnError(r, fmt.Errorf("writing reply: %w", err))
	}
}

// authenticate finds the peer whose token the request bears, comparing
// digests in constant time against every peer so timing reveals nothing.
func (h *Handler) authenticate(r *http.Request) *Peer {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil
	}
	got := sha256.Sum256([]byte(tok))
	var found *Peer
	for i := range h.Peers {
		want := sha256.Sum256([]byte(h.Peers[i].Token))
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 && h.Peers[i].Token != "" {
			found = &h.Peers[i]
		}
	}
	return found
}

// Interface guard.
var _ http.Handler = (*Handler)(nil)
