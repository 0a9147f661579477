// Package server wires one switch process from its configuration: the
// store, the partner rails, the engine, the HTTPS listener (retailers, the
// rails' surfaces, support) and the plain-HTTP admin listener (health,
// readiness, metrics), and in the development setup every simulated rail's
// partner simulator, described in var/dev.json. It owns start-up order and
// graceful shutdown. cmd/qrswitch is a thin shell around it, and
// integration tests run whole switches with it (see switchtest).
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/openapi"
	"github.com/qrswitch/qrswitch/partners"
	_ "github.com/qrswitch/qrswitch/partners/rails" // every rail registers itself
	"github.com/qrswitch/qrswitch/retailers"
	"github.com/qrswitch/qrswitch/retailers/checkout"
	"github.com/qrswitch/qrswitch/store"
	_ "github.com/qrswitch/qrswitch/store/backends" // every store backend registers itself
	"github.com/qrswitch/qrswitch/support"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// Options adjust a server beyond its configuration, for tests and tools.
type Options struct {
	// Node names the process as owner of held requests and leases.
	// Default: random per start.
	Node string
	// DrainTimeout bounds a graceful shutdown. Default: the scan wait plus
	// the longest partner timeout plus 10 s, so every request in flight can
	// end normally.
	DrainTimeout time.Duration
	// AccessLog logs every request, not only failures.
	AccessLog bool
	// LateWindow overrides the engine's late-answer window (tests).
	LateWindow time.Duration
	// SAFPoll overrides how often idle SAF queues are polled (tests).
	SAFPoll time.Duration
	// LeaseMargin overrides the margin of SAF leases beyond a partner's
	// timeout (tests: the advices of a replica killed mid-send are taken
	// over sooner).
	LeaseMargin time.Duration
	// Recheck overrides how often a request held on a shared store re-reads
	// it in case a wake-up from another replica was lost (tests).
	Recheck time.Duration
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin
	// listener. Off by default: profiles reveal internals.
	Pprof bool
	// ControlRefresh overrides how often the partner controls (paused
	// queues) are read again from the store (tests).
	ControlRefresh time.Duration
	// StorePause overrides how long a failed store write waits before it is
	// tried again (tests).
	StorePause time.Duration
}

// Server is one running switch process.
type Server struct {
	cfg    *config.Config
	log    zerolog.Logger
	opts   Options
	store  qrswitch.Store
	engine *qrswitch.Engine
	tls    *tlsconfig.Server

	host  host
	rails []*rail
	sims  []*simulator

	checkout    *checkout.Surface // nil when no retailer has a checkout
	checkoutSrv *http.Server
	checkoutLn  net.Listener

	api, admin     *http.Server
	apiLn, adminLn net.Listener
	devCA          string
	metrics        *metrics
	ready          func(context.Context) error
	closeOnce      sync.Once
}

// New builds a server from a validated configuration and opens its
// listeners, so that Addr is known before Run. On error everything opened so
// far is closed again.
func New(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log, opts: opts}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := s.setupTLS(); err != nil {
		return nil, err
	}
	b, err := store.Open(ctx, cfg.Store.URL, store.Options{
		Retention: cfg.Store.Retention.D(), WaitReplicas: cfg.Store.WaitReplicas, WaitTimeout: cfg.Store.WaitTimeout.D(),
	})
	if err != nil {
		return nil, err
	}
	s.store = b.Store
	s.metrics = newMetrics()
	// The listener first: rails publish URLs of the switch.
	if s.apiLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	if s.rails, err = s.buildRails(); err != nil {
		return nil, err
	}
	if b.Sharded {
		// A sharded store keeps a retailer's payments apart from other
		// records: only rails that say they keep to that run on it
		// (partners.ShardSafe; docs/redis-cluster.md).
		for i, r := range s.rails {
			if ss, ok := r.partner.Rail.(partners.ShardSafe); !ok || !ss.ShardSafe() {
				return nil, fmt.Errorf("partners[%d] (%s): rail %s commits records with payments that a store spread over shards (store.url shards=N) keeps apart; use shards=1 (the default) with this rail",
					i, r.cfg.ID, cmp.Or(r.cfg.Rail, "electrum"))
			}
		}
	}
	ps := make([]*partners.Partner, len(s.rails))
	for i, r := range s.rails {
		ps[i] = r.partner
	}
	auth, err := s.authenticator()
	if err != nil {
		return nil, err
	}
	if s.checkout, err = s.buildCheckout(auth); err != nil {
		return nil, err
	}
	var dests []qrswitch.Destination
	if s.checkout != nil {
		dests = s.checkout.Destinations()
	}
	offers := map[string][]string{}
	for _, r := range cfg.Retailers {
		if r.Offers != nil {
			offers[r.ID] = r.Offers
		}
	}
	s.engine, err = qrswitch.New(qrswitch.Options{
		Store:           s.store,
		Partners:        ps,
		Destinations:    dests,
		Offers:          offers,
		Logger:          log,
		Node:            opts.Node,
		ScanWait:        cfg.ScanWait.D(),
		RetailerTimeout: cfg.RetailerTimeout.D(),
		EarlyScanGrace:  cfg.EarlyScanGrace.D(),
		AdviceDeadline:  cfg.AdviceDeadline.D(),
		QRTTL:           cfg.QRTTL.D(),
		LateWindow:      opts.LateWindow,
		SAF: qrswitch.SAFOptions{
			InitialInterval: cfg.SAF.InitialInterval.D(),
			MaxInterval:     cfg.SAF.MaxInterval.D(),
			GiveUpAfter:     cfg.SAF.GiveUpAfter.D(),
			Workers:         cfg.SAF.Workers,
			Poll:            opts.SAFPoll,
			LeaseMargin:     opts.LeaseMargin,
		},
		Notifier:       b.Notifier,
		Recheck:        cmp.Or(opts.Recheck, b.Recheck),
		SoleOwner:      b.SoleOwner,
		Observer:       s.metrics,
		ControlRefresh: opts.ControlRefresh,
		StorePause:     opts.StorePause,
	})
	if err != nil {
		return nil, err
	}
	s.host.e.Store(s.engine)
	if s.checkout != nil {
		s.checkout.SetEngine(s.engine)
		if err := s.setupCheckoutListener(); err != nil {
			return nil, err
		}
	}
	s.metrics.watch(s.engine, log)
	router, err := httpapi.NewRouter(httpapi.Options{Logger: log, AccessLog: opts.AccessLog, Observer: s.metrics, TrustedProxies: cfg.TrustedProxies})
	if err != nil {
		return nil, err
	}
	router.GET(openapi.Path, gin.WrapH(openapi.Handler())) // the OpenAPI document of every surface mounted here
	retailers.Mount(router, s.engine, auth)
	support.Mount(router, s.engine, auth)
	if err := s.mountRails(router, s.rails, auth); err != nil {
		return nil, err
	}

	maxTimeout := time.Duration(0)
	for _, p := range cfg.Partners {
		maxTimeout = max(maxTimeout, p.Timeout.D())
	}
	if s.opts.DrainTimeout <= 0 {
		s.opts.DrainTimeout = cfg.ScanWait.D() + maxTimeout + 10*time.Second
	}
	tlsConf := s.tls.Config()
	s.api = &http.Server{
		Handler:           router,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A payment request is held for its scan and then for the partner:
		// the write deadline must outlast both.
		WriteTimeout:   cfg.ScanWait.D() + maxTimeout + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       stdLogger(log, "https"),
	}
	s.ready = s.store.Ping
	s.admin = &http.Server{
		Handler:           s.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          stdLogger(log, "admin"),
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		return nil, fmt.Errorf("listening on %s (admin): %w", cfg.AdminListen, err)
	}
	if cfg.Development {
		if err := s.setupSimulators(); err != nil {
			return nil, err
		}
		if err := s.writeDevFile(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Addr is the address of the HTTPS listener.
func (s *Server) Addr() string { return s.apiLn.Addr().String() }

// AdminAddr is the address of the admin listener.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Engine is the server's engine.
func (s *Server) Engine() *qrswitch.Engine { return s.engine }

// Store is the server's store.
func (s *Server) Store() qrswitch.Store { return s.store }

// DevCAFile is the development CA certificate clients must trust, or "" when
// the server has a configured certificate.
func (s *Server) DevCAFile() string { return s.devCA }

// ReloadTLS reloads the certificate files (SIGHUP).
func (s *Server) ReloadTLS() error { return s.tls.Reload() }

// Run serves until ctx ends, then shuts down gracefully: it stops accepting,
// lets requests in flight finish (up to DrainTimeout), stops the engine's
// background work after its sends in flight, and closes the store.
func (s *Server) Run(ctx context.Context) error {
	engineCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	var wg sync.WaitGroup
	wg.Go(func() { s.engine.Run(engineCtx) })
	railsCtx, stopRails := context.WithCancel(context.Background())
	defer stopRails()
	if err := s.startRails(railsCtx); err != nil {
		stopRails()
		s.closeRails()
		stopEngine()
		wg.Wait()
		s.close()
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if s.cfg.TLS.CertFile != "" {
		wg.Go(func() { s.tls.Watch(watchCtx, s.cfg.TLS.ReloadInterval.D()) })
	}
	errs := make(chan error, 3+len(s.sims))
	serve := func(name string, srv *http.Server, ln net.Listener, tls bool) {
		var err error
		if tls {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("%s listener: %w", name, err)
		}
	}
	go serve("https", s.api, s.apiLn, true)
	go serve("admin", s.admin, s.adminLn, false)
	if s.checkoutSrv != nil {
		go serve("checkout", s.checkoutSrv, s.checkoutLn, s.cfg.Checkout.TLS)
	}
	for _, sim := range s.sims {
		go serve("simulator "+sim.partner, sim.srv, sim.ln, true)
	}
	s.log.Info().Str("listen", s.Addr()).Str("admin", s.AdminAddr()).Str("store", s.cfg.Redacted().Store.URL).
		Str("node", s.engine.Node()).Msg("qrswitch serving")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	s.log.Info().Dur("drain_timeout", s.opts.DrainTimeout).Int("held", s.engine.Held()).
		Msg("shutting down: refusing new payments, finishing those in flight")
	drainCtx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	// Keep serving scans and advices while held payment requests finish:
	// closing the listener now would strand every one of them.
	s.engine.Drain()
	for s.engine.Held() > 0 && drainCtx.Err() == nil {
		sleep(drainCtx, 20*time.Millisecond)
	}
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	if err := s.api.Shutdown(shutCtx); err != nil || drainCtx.Err() != nil {
		s.log.Warn().Err(err).Int("held", s.engine.Held()).
			Msg("requests still in flight at the drain deadline; recovery finishes them at the next start")
	}
	if s.checkoutSrv != nil {
		s.checkoutSrv.Shutdown(shutCtx)
	}
	s.stopSimulators(shutCtx)
	stopRails()
	s.closeRails()
	stopEngine()
	stopWatch()
	wg.Wait()
	s.admin.Shutdown(shutCtx)
	s.close()
	s.log.Info().Msg("qrswitch stopped")
	return runErr
}

// close releases what New opened. Safe to call more than once.
func (s *Server) close() {
	s.closeOnce.Do(func() {
		for _, ln := range []net.Listener{s.apiLn, s.adminLn, s.checkoutLn} {
			if ln != nil {
				ln.Close()
			}
		}
		for _, sim := range s.sims {
			sim.ln.Close()
			sim.sim.Close()
		}
		if s.store != nil {
			if err := s.store.Close(); err != nil {
				s.log.Error().Err(err).Msg("closing the store")
			}
		}
	})
}

func (s *Server) setupTLS() error {
	certFile, keyFile := s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile
	if certFile == "" {
		if s.cfg.Production() {
			return errors.New("tls.cert_file is required in production: the development certificate is refused")
		}
		ca, err := tlsconfig.OpenDevCA(filepath.Join(s.cfg.DataDir, "tls"))
		if err != nil {
			return err
		}
		s.devCA = ca.CertFile()
		if certFile, keyFile, err = ca.Issue(filepath.Join(s.cfg.DataDir, "tls"), "switch", nil); err != nil {
			return err
		}
	} else if s.cfg.Production() {
		dev, err := tlsconfig.IsDevCertificate(certFile)
		if err != nil {
			return err
		}
		if dev {
			return fmt.Errorf("tls.cert_file %s is a development certificate, refused in production", certFile)
		}
	}
	srv, err := tlsconfig.NewServer(tlsconfig.ServerOptions{
		CertFile: certFile, KeyFile: keyFile, ClientCAFile: s.cfg.TLS.ClientCAFile,
	}, func(err error) { s.log.Error().Err(err).Msg("reloading the TLS certificate; the old one stays in use") })
	if err != nil {
		return err
	}
	s.tls = srv
	return nil
}

// authenticator builds the Basic-auth accounts of every principal. A
// plaintext password (development only) is hashed here, once.
func (s *Server) authenticator() (*httpapi.Authenticator, error) {
	var accounts []httpapi.Account
	add := func(username, hash, plain string, p httpapi.Principal) error {
		h := []byte(hash)
		if hash == "" {
			var err error
			if h, err = bcrypt.GenerateFromPassword([]byte(plain), bcrypt.MinCost); err != nil {
				return err
			}
		}
		accounts = append(accounts, httpapi.Account{Username: username, Hash: h, Principal: p})
		return nil
	}
	for _, r := range s.cfg.Retailers {
		if err := add(r.Username, r.PasswordHash, r.Password, httpapi.Principal{Kind: httpapi.KindRetailer, ID: r.ID, InstitutionID: r.InstitutionID, ClientCert: r.ClientCert}); err != nil {
			return nil, err
		}
	}
	for _, p := range s.cfg.Partners {
		if p.ScanUsername == "" {
			continue // a partner that never calls the switch
		}
		if err := add(p.ScanUsername, p.ScanPasswordHash, p.ScanPassword, httpapi.Principal{Kind: httpapi.KindPartner, ID: p.ID, ClientCert: p.ClientCert}); err != nil {
			return nil, err
		}
	}
	for _, u := range s.cfg.Support {
		if err := add(u.Username, u.PasswordHash, u.Password, httpapi.Principal{Kind: httpapi.KindSupport, ID: u.Username, Role: u.Role}); err != nil {
			return nil, err
		}
	}
	return httpapi.NewAuthenticator(accounts, httpapi.AuthOptions{Logger: s.log})
}

func (s *Server) devCertFiles(name string) (string, string, error) {
	ca, err := tlsconfig.OpenDevCA(filepath.Join(s.cfg.DataDir, "tls"))
	if err != nil {
		return "", "", err
	}
	return ca.Issue(filepath.Join(s.cfg.DataDir, "tls"), name, nil)
}

// dialable turns a listen address into one a client can dial.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
