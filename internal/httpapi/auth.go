package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/qrswitch/qrswitch/internal/wire"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// Principal kinds.
const (
	KindRetailer = "retailer"
	KindPartner  = "partner"
	KindSupport  = "support"
)

// Support roles.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// Principal is who an authenticated request comes from.
type Principal struct {
	Kind          string // KindRetailer, KindPartner or KindSupport
	ID            string // retailer id, partner id, or support username
	Role          string // support only
	InstitutionID string // retailer only
	// ClientCert, when set, names the client certificate the principal
	// must present as well (subject common name or a DNS name), verified
	// by the listener against its client CAs: mutual TLS per principal.
	ClientCert string
}

// Account is one set of Basic-auth credentials.
type Account struct {
	Username string
	// Hash is the bcrypt hash of the password.
	Hash      []byte
	Principal Principal
}

// Errors of Verify.
var (
	ErrBadCredentials = errors.New("bad credentials")
)

// ThrottledError says too many failed attempts came from a user or address.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed attempts; retry after %s", e.RetryAfter)
}

// Authenticator checks HTTP Basic credentials. bcrypt is paid once per
// distinct (user, password) pair: a verified password is remembered as an
// HMAC under a key born with the process, and later requests are checked
// against that in constant time. Failed attempts are counted per username
// and per client address and throttled past a limit.
type Authenticator struct {
	realm    string
	accounts map[string]*account
	key      []byte
	dummy    []byte
	throttle *throttle
	log      zerolog.Logger
}

type account struct {
	Account
	verified atomic.Pointer[[sha256.Size]byte]
}

// AuthOptions configure an Authenticator. Zero values take the defaults.
type AuthOptions struct {
	// Realm is named in WWW-Authenticate. Default "qrswitch".
	Realm string
	// MaxFailures is how many failed attempts per username, and four times
	// as many per client address, are allowed in Window. Default 10.
	MaxFailures int
	// Window is the throttling window. Default 1 minute.
	Window time.Duration
	Logger zerolog.Logger
}

// NewAuthenticator builds an authenticator over accounts. Usernames must be
// unique.
func NewAuthenticator(accounts []Account, o AuthOptions) (*Authenticator, error) {
	if o.Realm == "" {
		o.Realm = "qrswitch"
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 10
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	key := make([]byte, 32)
	rand.Read(key)
	// A hash to compare against for unknown usernames, so that they take
	// as long as known ones: at the highest cost of the accounts, or a
	// fast unknown user tells a slow known one apart.
	cost := bcrypt.MinCost
	for _, acc := range accounts {
		if c, err := bcrypt.Cost(acc.Hash); err == nil {
			cost = max(cost, c)
		}
	}
	if len(accounts) == 0 {
		cost = bcrypt.DefaultCost
	}
	dummy, err := bcrypt.GenerateFromPassword(key[:16], cost)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{
		realm:    o.Realm,
		accounts: make(map[string]*account, len(accounts)),
		key:      key,
		dummy:    dummy,
		throttle: newThrottle(o.MaxFailures, o.Window),
		log:      o.Logger,
	}
	for _, acc := range accounts {
		if acc.Username == "" {
			return nil, errors.New("httpapi: an account has no username")
		}
		if _, dup := a.accounts[acc.Username]; dup {
			return nil, fmt.Errorf("httpapi: username %q given twice", acc.Username)
		}
		if _, err := bcrypt.Cost(acc.Hash); err != nil {
			return nil, fmt.Errorf("httpapi: account %q: %w", acc.Username, err)
		}
		a.accounts[acc.Username] = &account{Account: acc}
	}
	return a, nil
}

func (a *Authenticator) digest(username, password string) *[sha256.Size]byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(username))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var d [sha256.Size]byte
	m.Sum(d[:0])
	return &d
}

// Verify checks credentials from a client address. It returns
// ErrBadCredentials or a *ThrottledError on failure.
func (a *Authenticator) Verify(username, password, remote string) (Principal, error) {
	now := time.Now()
	if wait := a.throttle.blocked(username, remote, now); wait > 0 {
		return Principal{}, &ThrottledError{RetryAfter: wait}
	}
	acc := a.accounts[username]
	if acc == nil {
		bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		a.failed(username, remote, now)
		return Principal{}, ErrBadCredentials
	}
	d := a.digest(username, password)
	if v := acc.verified.Load(); v != nil && hmac.Equal(v[:], d[:]) {
		return acc.Principal, nil
	}
	if bcrypt.CompareHashAndPassword(acc.Hash, []byte(password)) != nil {
		a.failed(username, remote, now)
		return Principal{}, ErrBadCredentials
	}
	acc.verified.Store(d)
	return acc.Principal, nil
}

func (a *Authenticator) failed(username, remote string, now time.Time) {
	a.throttle.fail(username, remote, now)
	a.log.Warn().Str("username", username).Str("remote", remote).Msg("authentication failed")
}

// Require is middleware that admits only requests with valid credentials
// of one of the kinds, and records the principal for PrincipalOf.
func (a *Authenticator) Require(kinds ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		user, pass, ok := c.Request.BasicAuth()
		if !ok {
			a.challenge(c, "Authentication required")
			return
		}
		p, err := a.Verify(user, pass, c.ClientIP())
		var throttled *ThrottledError
		switch {
		case errors.As(err, &throttled):
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(throttled.RetryAfter.Seconds()))))
			d := wire.NewErrorDetail(wire.GeneralError, "Too many failed attempts", "", "")
			Fail(c, http.StatusTooManyRequests, d)
			return
		case err != nil:
			a.challenge(c, "Invalid credentials")
			return
		}
		for _, k := range kinds {
			if p.Kind != k {
				continue
			}
			if p.ClientCert != "" && !certNamed(tlsconfig.VerifiedClient(c.Request.TLS), p.ClientCert) {
				a.log.Warn().Str("principal", p.Kind+":"+p.ID).Str("remote", c.ClientIP()).
					Msg("right password without the client certificate the principal must present")
				d := wire.NewErrorDetail(wire.GeneralError, "Client certificate required", "", "")
				d.DetailMessage = wire.Detail("this principal must present the client certificate " + p.ClientCert + ", signed by the switch's client CA")
				Fail(c, http.StatusForbidden, d)
				return
			}
			c.Set(keyPrincipal, p)
			c.Next()
			return
		}
		// Valid credentials of another kind (a partner calling a retailer
		// operation): as unauthorised here as wrong ones.
		a.challenge(c, "Invalid credentials")
	}
}

// certNamed reports whether a verified client certificate carries name as
// its subject common name or one of its DNS names.
func certNamed(leaf *x509.Certificate, name string) bool {
	return leaf != nil && (leaf.Subject.CommonName == name || slices.Contains(leaf.DNSNames, name))
}

func (a *Authenticator) challenge(c *gin.Context, msg string) {
	c.Header("WWW-Authenticate", `Basic realm="`+a.realm+`", charset="UTF-8"`)
	Fail(c, http.StatusUnauthorized, wire.NewErrorDetail(wire.GeneralError, msg, "", ""))
}

// RequireRole is middleware, after Require(KindSupport), that admits only
// support users with one of the roles.
func RequireRole(roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, _ := PrincipalOf(c)
		for _, r := range roles {
			if p.Role == r {
				c.Next()
				return
			}
		}
		Fail(c, http.StatusForbidden, wire.NewErrorDetail(wire.FunctionNotSupported, "Role not allowed", "", ""))
	}
}

// PrincipalOf returns the authenticated principal of the request.
func PrincipalOf(c *gin.Context) (Principal, bool) {
	v, ok := c.Get(keyPrincipal)
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok
}

// throttle counts failed attempts in fixed windows.
type throttle struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	counts map[string]*window
}

type window struct {
	start time.Time
	n     int
}

func newThrottle(max int, w time.Duration) *throttle {
	return &throttle{max: max, window: w, counts: make(map[string]*window)}
}

func (t *throttle) limit(key string) int {
	if key[0] == 'a' { // per address: shared by every user behind a NAT
		return 4 * t.max
	}
	return t.max
}

// blocked returns how long the user or address must wait, or 0.
func (t *throttle) blocked(username, remote string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range [2]string{"u" + username, "a" + remote} {
		if w := t.counts[k]; w != nil && now.Sub(w.start) < t.window && w.n >= t.limit(k) {
			wait = max(wait, w.start.Add(t.window).Sub(now))
		}
	}
	return wait
}

func (t *throttle) fail(username, remote string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.counts) > 100_000 {
		for k, w := range t.counts {
			if now.Sub(w.start) >= t.window {
				delete(t.counts, k)
			}
		}
	}
	for _, k := range [2]string{"u" + username, "a" + remote} {
		w := t.counts[k]
		if w == nil || now.Sub(w.start) >= t.window {
			w = &window{start: now}
			t.counts[k] = w
		}
		w.n++
	}
}
