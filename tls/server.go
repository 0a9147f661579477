package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Client authentication modes for ServerOptions.ClientAuth.
const (
	// ClientAuthNone does not ask clients for a certificate.
	ClientAuthNone = "none"
	// ClientAuthRequest asks for a client certificate and verifies it against
	// the client CAs when one is sent; a client without one is still served.
	// A certificate that does not verify fails the handshake: a connection
	// never carries an unverified client identity.
	ClientAuthRequest = "request"
	// ClientAuthRequire refuses a client without a certificate that verifies
	// against the client CAs.
	ClientAuthRequire = "require"
)

// DefaultWatchInterval is how often Watch polls when given no interval.
const DefaultWatchInterval = 10 * time.Second

// ServerOptions configures NewServer.
type ServerOptions struct {
	// CertFile is the PEM certificate chain, leaf first. Required.
	CertFile string
	// KeyFile is the PEM private key of the leaf. Required.
	KeyFile string
	// ClientCAFile is a PEM bundle of the CAs that sign client certificates.
	// Empty disables mutual TLS. It is read once and changing it needs a
	// restart: http.Server serves a copy of Config, which a new pool could
	// reach only through GetConfigForClient, and that would drop the ALPN
	// protocols net/http adds to the copy.
	ClientCAFile string
	// ClientAuth is ClientAuthNone, ClientAuthRequest or ClientAuthRequire
	// ("require-and-verify" is accepted for ClientAuthRequire). Empty means
	// ClientAuthRequest when ClientCAFile is set, ClientAuthNone otherwise:
	// one listener serves retailers too, who need not hold certificates.
	ClientAuth string
	// OnReload, if not nil, is called with the new leaf after every
	// successful load: the first, by NewServer, then every Reload, including
	// those started by Watch. It must not block.
	OnReload func(leaf *x509.Certificate)
}

// Server serves a certificate that can be replaced while connections are
// open. It is safe for concurrent use.
type Server struct {
	opts       ServerOptions
	onError    func(error)
	clientAuth tls.ClientAuthType
	clientCAs  *x509.CertPool
	cert       atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serializes reloads so seen matches what was loaded
	seen stamp      // the files as they were at the last load attempt
}

// NewServer loads the certificate and key named in o and returns a Server
// serving them. onError receives the errors of reloads started by Watch
// (those of Reload are returned to its caller); nil discards them.
func NewServer(o ServerOptions, onError func(error)) (*Server, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("tlsconfig: certificate file and key file are both required")
	}
	s := &Server{opts: o, onError: onError}
	mode := o.ClientAuth
	if mode == "" {
		mode = ClientAuthNone
		if o.ClientCAFile != "" {
			mode = ClientAuthRequest
		}
	}
	switch mode {
	case ClientAuthNone:
		if o.ClientCAFile != "" {
			return nil, fmt.Errorf("tlsconfig: client CA file %s given with client auth %q",
				o.ClientCAFile, mode)
		}
		s.clientAuth = tls.NoClientCert
	case ClientAuthRequest:
		s.clientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire, "require-and-verify":
		s.clientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("tlsconfig: unknown client auth %q, want %q, %q or %q",
			o.ClientAuth, ClientAuthNone, ClientAuthRequest, ClientAuthRequire)
	}
	if s.clientAuth != tls.NoClientCert {
		if o.ClientCAFile == "" {
			return nil, fmt.Errorf("tlsconfig: client auth %q needs a client CA file", mode)
		}
		pool, err := readPool(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconfig: loading client CAs: %w", err)
		}
		s.clientCAs = pool
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns a new hardened server config that serves the current
// certificate on every handshake and applies the client auth mode. Each call
// returns a fresh config the caller may change, but not its Certificates
// (see the package comment).
func (s *Server) Config() *tls.Config {
	c := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
		ClientAuth: s.clientAuth,
		ClientCAs:  s.clientCAs,
	}
	Harden(c)
	return c
}

// Reload reads the certificate and key files again and serves them from the
// next handshake on. On error the current certificate stays in service.
// Open connections are never affected.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Stat before reading: a change landing between the two is then seen
	// again by Watch, rather than recorded as loaded and missed.
	s.seen = stampOf(s.opts.CertFile, s.opts.KeyFile)
	cert, err := loadKeyPair(s.opts.CertFile, s.opts.KeyFile, time.Now())
	if err != nil {
		return fmt.Errorf("tlsconfig: loading certificate: %w", err)
	}
	s.cert.Store(cert)
	if s.opts.OnReload != nil {
		s.opts.OnReload(cert.Leaf)
	}
	return nil
}

// Watch polls the certificate and key files every interval (DefaultWatchInterval
// when not positive) and reloads when either changes: a new file, size or
// modification time. A reload that fails is reported to onError once per
// change, not on every poll. Watch returns when ctx is done.
//
// Replacing files by rename, as Kubernetes secret volumes and certbot do, is
// always seen; an in-place rewrite of the same size within the file system's
// timestamp resolution is not, and SIGHUP (Reload) covers it.
func (s *Server) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stampOf(s.opts.CertFile, s.opts.KeyFile)
		s.mu.Lock()
		changed := !now.equal(s.seen)
		s.mu.Unlock()
		if !changed {
			continue
		}
		if err := s.Reload(); err != nil && s.onError != nil {
			s.onError(err)
		}
	}
}

// Leaf returns the certificate being served.
func (s *Server) Leaf() *x509.Certificate { return s.cert.Load().Leaf }

// NotAfter returns when the certificate being served expires, for expiry
// metrics and alerts.
func (s *Server) NotAfter() time.Time { return s.Leaf().NotAfter }

// loadKeyPair reads a certificate chain and its key, and refuses an expired
// leaf: no client would accept it, so failing at load time names the cause.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", certFile, err)
		}
	}
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired at %s",
			certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// stamp identifies the versions of the certificate and key files. A nil entry
// is a file that could not be read.
type stamp struct{ cert, key os.FileInfo }

func stampOf(certFile, keyFile string) stamp {
	var s stamp
	s.cert, _ = os.Stat(certFile)
	s.key, _ = os.Stat(keyFile)
	return s
}

func (a stamp) equal(b stamp) bool {
	return sameVersion(a.cert, b.cert) && sameVersion(a.key, b.key)
}

func sameVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
