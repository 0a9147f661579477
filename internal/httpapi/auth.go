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

// ThrottledError says too many failed attempts came from the client's
// address, for this username or for any.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed attempts; retry after %s", e.RetryAfter)
}

// Authenticator checks HTTP Basic credentials. bcrypt is paid once per
// distinct (user, password) pair: a verified password is remembered as an
// HMAC under a key born with the process, and later requests are checked
// against that in constant time. Failed attempts are throttled per client
// address and username pair and per client address (see throttle), never
// per username alone, so a guesser slows itself down and nobody else.
type Authenticator struct {
	realm    string
	accounts map[string]*account
	key      []byte
	dummy    []byte
	throttle *throttle
	now      func() time.Time
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
	// MaxFailures is how many failed attempts one client address may make
	// for one username before each further failure locks that pair out,
	// for Delay, then twice as long after every failure, up to MaxDelay.
	// The address as a whole, across usernames, gets four times as many.
	// Default 10.
	MaxFailures int
	// Delay is the first lock. Default 1s.
	Delay time.Duration
	// MaxDelay caps a lock. Default 15m.
	MaxDelay time.Duration
	// Window is how long after its last failure (or the end of its lock)
	// a pair's or an address's failures are forgotten. Default 1h.
	Window time.Duration
	// TableSize bounds the pairs and addresses remembered; past it the
	// least recently seen is forgotten. Default 65536 (about 14 MB).
	TableSize int
	// Now is the clock of the throttle. Default time.Now.
	Now    func() time.Time
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
	if o.Delay <= 0 {
		o.Delay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 15 * time.Minute
	}
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.TableSize <= 0 {
		o.TableSize = 1 << 16
	}
	if o.Now == nil {
		o.Now = time.Now
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
		throttle: newThrottle(o.MaxFailures, 4*o.MaxFailures, o.Delay, o.MaxDelay, o.Window, o.TableSize),
		now:      o.Now,
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
// ErrBadCredentials or a *ThrottledError on failure. A client whose address
// is not locked, for this username or as a whole, always gets its right
// password accepted; a password this process already verified is accepted
// without bcrypt.
func (a *Authenticator) Verify(username, password, remote string) (Principal, error) {
	now := a.now()
	source, pair := keys(username, remote)
	if wait := a.throttle.wait(source, pair, now); wait > 0 {
		return Principal{}, &ThrottledError{RetryAfter: wait}
	}
	acc := a.accounts[username]
	var d *[sha256.Size]byte
	if acc != nil {
		d = a.digest(username, password)
		if v := acc.verified.Load(); v != nil && hmac.Equal(v[:], d[:]) {
			a.throttle.proved(source, pair, false)
			return acc.Principal, nil
		}
	}
	// bcrypt from here: the attempt counts as a failure until it proves
	// right, so that parallel guesses are throttled as they arrive.
	if wait := a.throttle.attempt(source, pair, now); wait > 0 {
		return Principal{}, &ThrottledError{RetryAfter: wait}
	}
	if acc == nil {
		bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		a.failed(username, remote)
		return Principal{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword(acc.Hash, []byte(password)) != nil {
		a.failed(username, remote)
		return Principal{}, ErrBadCredentials
	}
	acc.verified.Store(d)
	a.throttle.proved(source, pair, true)
	return acc.Principal, nil
}

func (a *Authenticator) failed(username, remote string) {
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
