package openpayments

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTP message signatures (RFC 9421) as Open Payments profiles them: one
// signature, Ed25519, over @method and @target-uri, the Authorization
// header when there is one, and Content-Digest, Content-Length and
// Content-Type when there is a body; Content-Digest (RFC 9530) over the
// body with SHA-512 or SHA-256; the key named by keyid in the client's
// JSON Web Key Set.

// Errors of signature verification; each is a 401 to the client.
var (
	ErrNoSignature  = errors.New("no HTTP message signature")
	ErrBadSignature = errors.New("HTTP message signature does not verify")
)

// maxSkew bounds how far a signature's created may be from the switch's
// clock.
const maxSkew = 5 * time.Minute

// JWK is an Ed25519 public key in a JSON Web Key Set.
type JWK struct {
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
}

// key returns the JWK's public key, or an error naming what is wrong.
func (k *JWK) key() (ed25519.PublicKey, error) {
	if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Alg != "" && k.Alg != "EdDSA") {
		return nil, fmt.Errorf("key %q: want kty OKP, crv Ed25519, alg EdDSA", k.Kid)
	}
	x, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.X, "="))
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %q: x is not a base64url Ed25519 key", k.Kid)
	}
	return ed25519.PublicKey(x), nil
}

// sigInput is one parsed member of a Signature-Input header.
type sigInput struct {
	label      string
	components []string
	// raw is the member's value as sent: what @signature-params covers.
	raw     string
	keyID   string
	created int64
}

// parseSignatureInput reads the first member of a Signature-Input header
// (an RFC 8941 dictionary of inner lists with parameters).
func parseSignatureInput(h string) (*sigInput, error) {
	eq := strings.IndexByte(h, '=')
	if eq <= 0 {
		return nil, errors.New("Signature-Input: want label=(components);params")
	}
	in := &sigInput{label: strings.TrimSpace(h[:eq])}
	rest := h[eq+1:]
	if !strings.HasPrefix(rest, "(") {
		return nil, errors.New("Signature-Input: want an inner list of components")
	}
	end := strings.IndexByte(rest, ')')
	if end < 0 {
		return nil, errors.New("Signature-Input: unterminated inner list")
	}
	for _, c := range strings.Fields(rest[1:end]) {
		if len(c) < 2 || c[0] != '"' || c[len(c)-1] != '"' || strings.ContainsAny(c[1:len(c)-1], "\";\\") {
			return nil, fmt.Errorf("Signature-Input: component %q is not a quoted name", c)
		}
		in.components = append(in.components, c[1:len(c)-1])
	}
	params := rest[end+1:]
	// Only the first member: another one starts at a top-level comma.
	if i := strings.IndexByte(params, ','); i >= 0 {
		params = params[:i]
	}
	in.raw = rest[:end+1] + params
	for _, p := range strings.Split(params, ";")[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "keyid":
			v, err := strconv.Unquote(value)
			if err != nil || v == "" {
				return nil, errors.New("Signature-Input: keyid is not a quoted string")
			}
			in.keyID = v
		case "created":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return nil, errors.New("Signature-Input: created is not an integer")
			}
			in.created = n
		case "alg":
			if value != `"ed25519"` {
				return nil, fmt.Errorf("Signature-Input: alg %s, want \"ed25519\"", value)
			}
		}
	}
	if in.keyID == "" || in.created == 0 {
		return nil, errors.New("Signature-Input: keyid and created are required")
	}
	return in, nil
}

// signatureOf returns the signature of label in a Signature header.
func signatureOf(h, label string) ([]byte, error) {
	for _, m := range strings.Split(h, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(m), "=")
		if !ok || name != label {
			continue
		}
		if len(value) < 2 || value[0] != ':' || value[len(value)-1] != ':' {
			return nil, errors.New("Signature: want a byte sequence :base64:")
		}
		return base64.StdEncoding.DecodeString(value[1 : len(value)-1])
	}
	return nil, fmt.Errorf("Signature: no member %q", label)
}

// signedRequest is what a signature is checked over: the request, its
// body (already read) and its URL as the client addressed it.
type signedRequest struct {
	req    *http.Request
	body   []byte
	target string
}

// base builds the signature base of in over s (RFC 9421 §2.5).
func (s *signedRequest) base(in *sigInput) (string, error) {
	var b strings.Builder
	for _, c := range in.components {
		var v string
		switch c {
		case "@method":
			v = s.req.Method
		case "@target-uri":
			v = s.target
		default:
			if strings.HasPrefix(c, "@") {
				return "", fmt.Errorf("Signature-Input: component %s is not supported", c)
			}
			vals := s.req.Header.Values(c)
			if len(vals) == 0 {
				return "", fmt.Errorf("Signature-Input: covers %s, which the request lacks", c)
			}
			for i := range vals {
				vals[i] = strings.TrimSpace(vals[i])
			}
			v = strings.Join(vals, ", ")
		}
		fmt.Fprintf(&b, "%q: %s\n", c, v)
	}
	fmt.Fprintf(&b, "\"@signature-params\": %s", in.raw)
	return b.String(), nil
}

// verify checks s's signature with the key keys returns for its keyid, the
// coverage the profile requires, created against now, and Content-Digest
// against the body. It returns the keyid on success.
func (s *signedRequest) verify(now time.Time, keys func(kid string) (ed25519.PublicKey, error)) (string, error) {
	h := s.req.Header.Get("Signature-Input")
	if h == "" || s.req.Header.Get("Signature") == "" {
		return "", ErrNoSignature
	}
	in, err := parseSignatureInput(h)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	need := []string{"@method", "@target-uri"}
	if s.req.Header.Get("Authorization") != "" {
		need = append(need, "authorization")
	}
	if len(s.body) > 0 {
		need = append(need, "content-digest")
	}
	for _, c := range need {
		if !slices.Contains(in.components, c) {
			return "", fmt.Errorf("%w: the signature does not cover %s", ErrBadSignature, c)
		}
	}
	if d := now.Sub(time.Unix(in.created, 0)); d > maxSkew || d < -maxSkew {
		return "", fmt.Errorf("%w: created %d is more than %s from the switch's clock", ErrBadSignature, in.created, maxSkew)
	}
	if len(s.body) > 0 || s.req.Header.Get("Content-Digest") != "" {
		if err := checkDigest(s.req.Header.Get("Content-Digest"), s.body); err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
	}
	sig, err := signatureOf(s.req.Header.Get("Signature"), in.label)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	base, err := s.base(in)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	pub, err := keys(in.keyID)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if !ed25519.Verify(pub, []byte(base), sig) {
		return "", ErrBadSignature
	}
	return in.keyID, nil
}

// checkDigest checks a Content-Digest header against body: every member
// in SHA-512 or SHA-256 must match, and one must be there.
func checkDigest(h string, body []byte) error {
	if h == "" {
		return errors.New("a body without Content-Digest")
	}
	checked := false
	for _, m := range strings.Split(h, ",") {
		alg, value, ok := strings.Cut(strings.TrimSpace(m), "=")
		if !ok || len(value) < 2 || value[0] != ':' || value[len(value)-1] != ':' {
			return errors.New("Content-Digest: want alg=:base64:")
		}
		got, err := base64.StdEncoding.DecodeString(value[1 : len(value)-1])
		if err != nil {
			return errors.New("Content-Digest: not base64")
		}
		var want []byte
		switch alg {
		case "sha-512":
			d := sha512.Sum512(body)
			want = d[:]
		case "sha-256":
			d := sha256.Sum256(body)
			want = d[:]
		default:
			continue
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return fmt.Errorf("Content-Digest %s does not match the body", alg)
		}
		checked = true
	}
	if !checked {
		return errors.New("Content-Digest: neither sha-512 nor sha-256")
	}
	return nil
}

// keySets fetches and caches clients' JSON Web Key Sets from
// {wallet address}/jwks.json.
type keySets struct {
	client *http.Client
	mu     sync.Mutex
	cache  map[string]cachedKeys
}

type cachedKeys struct {
	keys []JWK
	at   time.Time
}

// keySetTTL is how long a fetched key set is used; a keyid missing from
// one older than keySetRefresh fetches it again (a rotated key).
const (
	keySetTTL     = 5 * time.Minute
	keySetRefresh = 10 * time.Second
)

// key returns the key kid of the client at walletAddress.
func (k *keySets) key(ctx context.Context, walletAddress, kid string, now time.Time) (ed25519.PublicKey, error) {
	k.mu.Lock()
	c, ok := k.cache[walletAddress]
	k.mu.Unlock()
	if !ok || now.Sub(c.at) > keySetTTL || (findKey(c.keys, kid) == nil && now.Sub(c.at) > keySetRefresh) {
		keys, err := k.fetch(ctx, walletAddress)
		if err != nil {
			return nil, err
		}
		c = cachedKeys{keys: keys, at: now}
		k.mu.Lock()
		if k.cache == nil {
			k.cache = map[string]cachedKeys{}
		}
		k.cache[walletAddress] = c
		k.mu.Unlock()
	}
	j := findKey(c.keys, kid)
	if j == nil {
		return nil, fmt.Errorf("no key %q in %s/jwks.json", kid, walletAddress)
	}
	return j.key()
}

func findKey(keys []JWK, kid string) *JWK {
	for i := range keys {
		if keys[i].Kid == kid {
			return &keys[i]
		}
	}
	return nil
}

func (k *keySets) fetch(ctx context.Context, walletAddress string) ([]JWK, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, walletAddress+"/jwks.json", nil)
	if err != nil {
		return nil, fmt.Errorf("fetching the client's keys: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the client's keys: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s/jwks.json: HTTP %d %v", walletAddress, resp.StatusCode, err)
	}
	var set struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decoding %s/jwks.json: %w", walletAddress, err)
	}
	return set.Keys, nil
}

// signRequest signs req (whose body is body) as an Open Payments client
// does: Content-Digest, -Length and -Type with a body, and the profile's
// components, by key kid. The development setup's simulated wallet signs
// its requests with it.
func signRequest(req *http.Request, body []byte, kid string, key ed25519.PrivateKey, now time.Time) {
	components := []string{"@method", "@target-uri"}
	if req.Header.Get("Authorization") != "" {
		components = append(components, "authorization")
	}
	if len(body) > 0 {
		d := sha512.Sum512(body)
		req.Header.Set("Content-Digest", "sha-512=:"+base64.StdEncoding.EncodeToString(d[:])+":")
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		req.Header.Set("Content-Type", "application/json")
		components = append(components, "content-digest", "content-length", "content-type")
	}
	quoted := make([]string, len(components))
	for i, c := range components {
		quoted[i] = strconv.Quote(c)
	}
	in := &sigInput{label: "sig1", components: components,
		raw: fmt.Sprintf("(%s);keyid=%s;created=%d", strings.Join(quoted, " "), strconv.Quote(kid), now.Unix())}
	base, _ := (&signedRequest{req: req, body: body, target: req.URL.String()}).base(in)
	req.Header.Set("Signature-Input", "sig1="+in.raw)
	req.Header.Set("Signature", "sig1=:"+base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(base)))+":")
}
