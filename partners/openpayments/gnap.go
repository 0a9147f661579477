package openpayments

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/partners"
)

// The rail's GNAP authorisation server (RFC 9635, as Open Payments
// profiles it): grant requests signed by the client's key, access tokens
// issued at once for incoming payments and quotes, and for outgoing
// payments when the operator's policy allows the client; token rotation
// and revocation; and the verification of every request to a protected
// route (token, access, HTTP message signature).

// GNAPOptions are the authorisation server's options (options.gnap).
type GNAPOptions struct {
	// TokenTTL is an access token's lifetime (expires_in). Default 10m.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// OutgoingPayments is the policy for clients not listed: "allow" or
	// "deny" (default; "allow" in development).
	OutgoingPayments string `yaml:"outgoing_payments"`
	// Clients are policies per client wallet address.
	Clients []GNAPClient `yaml:"clients"`
	// PrivateClients lets client wallet addresses resolve to loopback and
	// private addresses, whose jwks.json the switch then fetches. Off by
	// default (on in development): a grant request names the URL the
	// switch fetches, which must not reach into the operator's network.
	PrivateClients bool `yaml:"private_clients"`
}

// GNAPClient is the policy of one client.
type GNAPClient struct {
	WalletAddress    string `yaml:"wallet_address"`
	OutgoingPayments string `yaml:"outgoing_payments"`
}

// Record kinds of the authorisation server.
const (
	kindToken = "gnap-token"
	kindGrant = "gnap-grant"
)

// accessItem is one access right of a grant.
type accessItem struct {
	Type       string          `json:"type"`
	Actions    []string        `json:"actions"`
	Identifier string          `json:"identifier,omitempty"`
	Limits     json.RawMessage `json:"limits,omitempty"`
}

// actionsOf are the actions each type of access may name.
var actionsOf = map[string][]string{
	"incoming-payment": {"create", "complete", "read", "read-all", "list", "list-all"},
	"outgoing-payment": {"create", "read", "read-all", "list", "list-all"},
	"quote":            {"create", "read", "read-all"},
}

// token is an access token's record (kind gnap-token, key its management
// id, indexed by the hash of its value: the value itself is never kept).
type token struct {
	Grant  string       `json:"grant"`
	Client string       `json:"client"`
	Key    *JWK         `json:"key,omitempty"` // the client's key, when it gave it in the request
	Access []accessItem `json:"access"`
	// Hash is the hex SHA-256 of the current value.
	Hash      string    `json:"hash"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	Revoked   bool      `json:"revoked,omitempty"`
}

// grant is a grant's record (kind gnap-grant, key its id, indexed by the
// hash of its continuation token).
type grant struct {
	Client  string    `json:"client"`
	Key     *JWK      `json:"key,omitempty"`
	Token   string    `json:"token"` // the management id of its access token
	Hash    string    `json:"hash"`  // of the continuation token
	At      time.Time `json:"at"`
	Revoked bool      `json:"revoked,omitempty"`
}

func hashOf(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// newSecret is 32 random bytes, base64url: a token value.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authError answers an authorisation server error.
func authError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "description": description}})
}

// bodyKey carries a protected request's body, read once before its
// handler, for Content-Digest.
type bodyKey struct{}

// keepBody reads the request's body (up to maxBody and one byte) so that
// the signature's Content-Digest can be checked after the handler read
// it; the handler reads the same bytes.
func keepBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "body unreadable")
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		h.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), bodyKey{}, b)))
	})
}

// target is the URL a client addressed: the public URL's scheme and host
// with the request's path and query.
func (r *Rail) target(req *http.Request) string {
	u, err := url.Parse(r.base)
	if err != nil || u.Host == "" {
		return "https://" + req.Host + req.URL.RequestURI()
	}
	return u.Scheme + "://" + u.Host + req.URL.RequestURI()
}

// checkSigned verifies req's signature by the client's key (given, or
// from its wallet address's jwks.json).
func (r *Rail) checkSigned(req *http.Request, body []byte, client string, key *JWK) error {
	s := &signedRequest{req: req, body: body, target: r.target(req)}
	_, err := s.verify(r.now(), func(kid string) (ed25519.PublicKey, error) {
		if key != nil {
			if key.Kid != kid {
				return nil, fmt.Errorf("keyid %q is not the client's key %q", kid, key.Kid)
			}
			return key.key()
		}
		return r.keys.key(req.Context(), client, kid, r.now())
	})
	return err
}

// gnapVerify admits a request to a protected route: its token is known,
// current and grants the access; the request is signed by the key of the
// client the token was issued to.
func (r *Rail) gnapVerify(req *http.Request, need Access) (*Grant, error) {
	value, ok := strings.CutPrefix(req.Header.Get("Authorization"), "GNAP ")
	if !ok || value == "" {
		return nil, fmt.Errorf("%w: no GNAP access token", ErrUnauthorized)
	}
	_, tok, err := r.tokenByValue(req.Context(), value)
	if err != nil {
		return nil, err
	}
	if tok.Revoked || !r.now().Before(tok.ExpiresAt) {
		return nil, fmt.Errorf("%w: the access token is revoked or expired", ErrUnauthorized)
	}
	body, _ := req.Context().Value(bodyKey{}).([]byte)
	if err := r.checkSigned(req, body, tok.Client, tok.Key); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	var actions []string
	for _, a := range tok.Access {
		if a.Type != need.Type || (a.Identifier != "" && a.Identifier != need.Identifier) {
			continue
		}
		for _, act := range a.Actions {
			if slices.Contains(need.Actions, act) && !slices.Contains(actions, act) {
				actions = append(actions, act)
			}
		}
	}
	if len(actions) == 0 {
		return nil, fmt.Errorf("%w: the token grants no %s %v on %s", ErrForbidden, need.Type, need.Actions, need.Identifier)
	}
	return &Grant{Client: tok.Client, Actions: actions}, nil
}

// tokenByValue finds the token record whose value is v.
func (r *Rail) tokenByValue(ctx context.Context, v string) (*partners.Record, *token, error) {
	recs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindToken, Index: "v:" + hashOf(v), Limit: 1})
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, nil, fmt.Errorf("%w: unknown access token", ErrUnauthorized)
	}
	var t token
	if err := json.Unmarshal(recs[0].Data, &t); err != nil {
		return nil, nil, fmt.Errorf("decoding token %s: %w", recs[0].Key, err)
	}
	if t.Hash != hashOf(v) {
		return nil, nil, fmt.Errorf("%w: unknown access token", ErrUnauthorized)
	}
	return recs[0], &t, nil
}

func tokenRecord(id string, t *token, version int64) (*partners.Record, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	return &partners.Record{Kind: kindToken, Key: id, Data: b, Index: []string{"v:" + t.Hash, "g:" + t.Grant}, Version: version}, nil
}

func grantRecord(id string, g *grant, version int64) (*partners.Record, error) {
	b, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	return &partners.Record{Kind: kindGrant, Key: id, Data: b, Index: []string{"c:" + g.Hash}, Version: version}, nil
}

// grantRequest is the body of a grant request.
type grantRequest struct {
	AccessToken *struct {
		Access []accessItem `json:"access"`
	} `json:"access_token"`
	Client   json.RawMessage `json:"client"`
	Interact json.RawMessage `json:"interact,omitempty"`
	Subject  json.RawMessage `json:"subject,omitempty"`
}

// parseGrantRequest decodes and checks a grant request's body, returning
// the client's wallet address (or "" and the key it gave inline).
func parseGrantRequest(b []byte) (*grantRequest, string, *JWK, error) {
	var g grantRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, "", nil, fmt.Errorf("the grant request is not valid JSON of the spec: %v", err)
	}
	if g.AccessToken == nil {
		return nil, "", nil, errors.New("access_token is required (subject grants are not offered)")
	}
	if n := len(g.AccessToken.Access); n == 0 || n > 3 {
		return nil, "", nil, errors.New("access_token.access: want 1 to 3 access rights")
	}
	for i, a := range g.AccessToken.Access {
		allowed, ok := actionsOf[a.Type]
		if !ok {
			return nil, "", nil, fmt.Errorf("access[%d].type %q: want incoming-payment, outgoing-payment or quote", i, a.Type)
		}
		if len(a.Actions) == 0 {
			return nil, "", nil, fmt.Errorf("access[%d].actions: required", i)
		}
		for _, act := range a.Actions {
			if !slices.Contains(allowed, act) {
				return nil, "", nil, fmt.Errorf("access[%d].actions: %q is not an action on %s", i, act, a.Type)
			}
		}
		if a.Identifier != "" {
			if u, err := url.Parse(a.Identifier); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return nil, "", nil, fmt.Errorf("access[%d].identifier %q: want a wallet address URL", i, a.Identifier)
			}
		}
		if a.Type == "outgoing-payment" && a.Identifier == "" {
			return nil, "", nil, fmt.Errorf("access[%d].identifier: required for outgoing-payment", i)
		}
		if a.Type != "outgoing-payment" && len(a.Limits) > 0 {
			return nil, "", nil, fmt.Errorf("access[%d].limits: only outgoing-payment takes limits", i)
		}
	}
	var client string
	if err := json.Unmarshal(g.Client, &client); err == nil {
		c, err := checkClientURL(client)
		return &g, c, nil, err
	}
	var c struct {
		WalletAddress string `json:"walletAddress"`
		JWK           *JWK   `json:"jwk"`
	}
	dec = json.NewDecoder(bytes.NewReader(g.Client))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || (c.WalletAddress == "") == (c.JWK == nil) {
		return nil, "", nil, errors.New("client: want a wallet address URL, {walletAddress} or {jwk}")
	}
	if c.JWK != nil {
		if _, err := c.JWK.key(); err != nil {
			return nil, "", nil, fmt.Errorf("client.jwk: %v", err)
		}
		for i, a := range g.AccessToken.Access {
			if a.Type != "incoming-payment" {
				return nil, "", nil, fmt.Errorf("access[%d]: a client known only by its key may ask for incoming payments only", i)
			}
		}
		return &g, "jwk:" + c.JWK.X, c.JWK, nil
	}
	wa, err := checkClientURL(c.WalletAddress)
	return &g, wa, nil, err
}

func checkClientURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("client %q: want a wallet address URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// policy is the outgoing-payment policy for client.
func (r *Rail) policy(client string) string {
	for _, c := range r.opts.GNAP.Clients {
		if strings.TrimRight(c.WalletAddress, "/") == client {
			return c.OutgoingPayments
		}
	}
	return r.opts.GNAP.OutgoingPayments
}

// requestGrant answers POST {auth}: a grant request.
func (r *Rail) requestGrant(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		authError(w, http.StatusBadRequest, "invalid_request", "body too large or unreadable")
		return
	}
	g, client, key, err := parseGrantRequest(body)
	if err != nil {
		authError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if err := r.checkSigned(req, body, client, key); err != nil {
		partners.SetCause(w, err)
		authError(w, http.StatusUnauthorized, "invalid_client", "the request must be signed by a key of the client's jwks.json: "+err.Error())
		return
	}
	for _, a := range g.AccessToken.Access {
		if a.Type != "outgoing-payment" {
			continue
		}
		if r.walletOf(a.Identifier) == nil {
			authError(w, http.StatusBadRequest, "invalid_request", "outgoing payments are granted on wallet addresses of this server only")
			return
		}
		if r.policy(client) != "allow" {
			authError(w, http.StatusBadRequest, "request_denied", "the operator's policy does not let this client send outgoing payments")
			return
		}
	}
	now := r.now().UTC()
	grantID, tokenID := newID(now), newID(now)
	value, cont := newSecret(), newSecret()
	tok := &token{Grant: grantID, Client: client, Key: key, Access: g.AccessToken.Access, Hash: hashOf(value),
		IssuedAt: now, ExpiresAt: now.Add(r.opts.GNAP.TokenTTL)}
	gr := &grant{Client: client, Key: key, Token: tokenID, Hash: hashOf(cont), At: now}
	trec, err := tokenRecord(tokenID, tok, 0)
	if err == nil {
		var grec *partners.Record
		if grec, err = grantRecord(grantID, gr, 0); err == nil {
			err = r.records.Commit(req.Context(), trec, grec)
		}
	}
	if err != nil {
		partners.SetCause(w, err)
		authError(w, http.StatusInternalServerError, "request_denied", "the grant could not be stored; ask again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": r.tokenView(tokenID, value, tok),
		"continue": map[string]any{
			"access_token": map[string]string{"value": cont},
			"uri":          r.auth + "/continue/" + grantID,
		},
	})
}

func (r *Rail) tokenView(id, value string, t *token) map[string]any {
	return map[string]any{"value": value, "manage": r.auth + "/token/" + id,
		"expires_in": int(t.ExpiresAt.Sub(t.IssuedAt).Seconds()), "access": t.Access}
}

// managedToken reads the token a management request names and checks
// that the request carries its current value and the client's signature.
func (r *Rail) managedToken(w http.ResponseWriter, req *http.Request) (*partners.Record, *token, bool) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, maxBody))
	value, _ := strings.CutPrefix(req.Header.Get("Authorization"), "GNAP ")
	rec, err := r.records.Get(req.Context(), kindToken, req.PathValue("id"))
	var t token
	if err == nil {
		err = json.Unmarshal(rec.Data, &t)
	}
	switch {
	case errors.Is(err, partners.ErrNotFound):
		authError(w, http.StatusNotFound, "invalid_rotation", "no such token")
		return nil, nil, false
	case err != nil:
		partners.SetCause(w, err)
		authError(w, http.StatusInternalServerError, "request_denied", "the token could not be read")
		return nil, nil, false
	case value == "" || t.Hash != hashOf(value):
		authError(w, http.StatusUnauthorized, "invalid_client", "Authorization must carry the token's current value")
		return nil, nil, false
	}
	if err := r.checkSigned(req, body, t.Client, t.Key); err != nil {
		partners.SetCause(w, err)
		authError(w, http.StatusUnauthorized, "invalid_client", "the request must be signed by the client: "+err.Error())
		return nil, nil, false
	}
	return rec, &t, true
}

// rotateToken answers POST {auth}/token/{id}: a new value and lifetime.
func (r *Rail) rotateToken(w http.ResponseWriter, req *http.Request) {
	rec, t, ok := r.managedToken(w, req)
	if !ok {
		return
	}
	if t.Revoked {
		authError(w, http.StatusBadRequest, "invalid_rotation", "the token is revoked")
		return
	}
	value := newSecret()
	now := r.now().UTC()
	t.Hash, t.IssuedAt, t.ExpiresAt = hashOf(value), now, now.Add(r.opts.GNAP.TokenTTL)
	upd, err := tokenRecord(rec.Key, t, rec.Version)
	if err == nil {
		err = r.records.Commit(req.Context(), upd)
	}
	if err != nil {
		partners.SetCause(w, err)
		authError(w, http.StatusInternalServerError, "request_denied", "the token could not be rotated; try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": r.tokenView(rec.Key, value, t)})
}

// revokeToken answers DELETE {auth}/token/{id}.
func (r *Rail) revokeToken(w http.ResponseWriter, req *http.Request) {
	rec, t, ok := r.managedToken(w, req)
	if !ok {
		return
	}
	if !t.Revoked {
		t.Revoked = true
		upd, err := tokenRecord(rec.Key, t, rec.Version)
		if err == nil {
			err = r.records.Commit(req.Context(), upd)
		}
		if err != nil {
			partners.SetCause(w, err)
			authError(w, http.StatusInternalServerError, "request_denied", "the token could not be revoked; try again")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// continuedGrant reads the grant a continuation request names and checks
// its continuation token and the client's signature.
func (r *Rail) continuedGrant(w http.ResponseWriter, req *http.Request) (*partners.Record, *grant, bool) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, maxBody))
	value, _ := strings.CutPrefix(req.Header.Get("Authorization"), "GNAP ")
	rec, err := r.records.Get(req.Context(), kindGrant, req.PathValue("id"))
	var g grant
	if err == nil {
		err = json.Unmarshal(rec.Data, &g)
	}
	switch {
	case errors.Is(err, partners.ErrNotFound):
		authError(w, http.StatusNotFound, "invalid_continuation", "no such grant")
		return nil, nil, false
	case err != nil:
		partners.SetCause(w, err)
		authError(w, http.StatusInternalServerError, "request_denied", "the grant could not be read")
		return nil, nil, false
	case value == "" || g.Hash != hashOf(value):
		authError(w, http.StatusUnauthorized, "invalid_client", "Authorization must carry the grant's continuation token")
		return nil, nil, false
	}
	if err := r.checkSigned(req, body, g.Client, g.Key); err != nil {
		partners.SetCause(w, err)
		authError(w, http.StatusUnauthorized, "invalid_client", "the request must be signed by the client: "+err.Error())
		return nil, nil, false
	}
	return rec, &g, true
}

// continueGrant answers POST {auth}/continue/{id}: grants here are issued
// at once, so there is nothing to continue.
func (r *Rail) continueGrant(w http.ResponseWriter, req *http.Request) {
	if _, _, ok := r.continuedGrant(w, req); !ok {
		return
	}
	authError(w, http.StatusBadRequest, "invalid_continuation", "the grant was issued at once: there is no interaction to continue")
}

// revokeGrant answers DELETE {auth}/continue/{id}: the grant and its
// access token end, in one commit.
func (r *Rail) revokeGrant(w http.ResponseWriter, req *http.Request) {
	rec, g, ok := r.continuedGrant(w, req)
	if !ok {
		return
	}
	if !g.Revoked {
		if err := r.endGrant(req.Context(), rec, g); err != nil {
			partners.SetCause(w, err)
			authError(w, http.StatusInternalServerError, "request_denied", "the grant could not be revoked; try again")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// endGrant revokes grant g (its record rec) and its access token.
func (r *Rail) endGrant(ctx context.Context, rec *partners.Record, g *grant) error {
	g.Revoked = true
	upd, err := grantRecord(rec.Key, g, rec.Version)
	if err != nil {
		return err
	}
	trec, err := r.records.Get(ctx, kindToken, g.Token)
	if err != nil {
		return err
	}
	var t token
	if err := json.Unmarshal(trec.Data, &t); err != nil {
		return err
	}
	t.Revoked = true
	tu, err := tokenRecord(trec.Key, &t, trec.Version)
	if err != nil {
		return err
	}
	return r.records.Commit(ctx, upd, tu)
}

// gnapDefaults fills and checks options.gnap.
func (r *Rail) gnapDefaults(development bool) error {
	g := &r.opts.GNAP
	if g.TokenTTL <= 0 {
		g.TokenTTL = 10 * time.Minute
	}
	if g.OutgoingPayments == "" {
		g.OutgoingPayments = "deny"
		if development {
			g.OutgoingPayments = "allow"
		}
	}
	if g.OutgoingPayments != "allow" && g.OutgoingPayments != "deny" {
		return fmt.Errorf("options.gnap.outgoing_payments %q: want allow or deny", g.OutgoingPayments)
	}
	for i, c := range g.Clients {
		if _, err := checkClientURL(c.WalletAddress); err != nil {
			return fmt.Errorf("options.gnap.clients[%d].wallet_address: %v", i, err)
		}
		if c.OutgoingPayments != "allow" && c.OutgoingPayments != "deny" {
			return fmt.Errorf("options.gnap.clients[%d].outgoing_payments %q: want allow or deny", i, c.OutgoingPayments)
		}
	}
	return nil
}
