package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// The rails' side of the wiring: building each partner's rail from its
// configuration, mounting the rails' surfaces, starting and stopping the
// rails that watch something, and the partner simulators of the
// development setup. Nothing here knows a rail by name: the capabilities
// of package partners say what each one needs.

// host is the engine as the rails' Host. Rails are built before the engine
// (the engine needs them) and may not report until the switch runs, by
// which time the engine is set.
type host struct {
	e atomic.Pointer[qrswitch.Engine]
}

func (h *host) engine() *qrswitch.Engine {
	e := h.e.Load()
	if e == nil {
		panic("server: a rail reported to the engine before the switch started")
	}
	return e
}

func (h *host) Scanned(ctx context.Context, partnerID string, s *wire.ScanNotification, raw []byte) *wire.Failure {
	return h.engine().Scanned(ctx, partnerID, s, raw)
}
func (h *host) Paid(ctx context.Context, p *partners.Paid) error { return h.engine().Paid(ctx, p) }
func (h *host) Seen(ctx context.Context, s *partners.Seen) error { return h.engine().Seen(ctx, s) }
func (h *host) OfferEnded(ctx context.Context, tranID, partnerID, reason string) error {
	return h.engine().OfferEnded(ctx, tranID, partnerID, reason)
}

var _ partners.Host = (*host)(nil)

// rail is one configured partner with its rail.
type rail struct {
	cfg     *config.Partner
	partner *partners.Partner
}

// buildRails builds every partner's rail. Each gets the partner's own
// options, the engine (through s.host), its records in the store, and an
// outbound transport trusting the partner's CA.
func (s *Server) buildRails() ([]*rail, error) {
	var out []*rail
	for i := range s.cfg.Partners {
		pc := &s.cfg.Partners[i]
		caFile := pc.CAFile
		if caFile == "" && s.cfg.Development && s.devCA != "" {
			caFile = s.devCA // the built-in simulators' certificates
		}
		tlsConf, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: caFile})
		if err != nil {
			return nil, fmt.Errorf("partner %s: %w", pc.ID, err)
		}
		var opts *yaml.Node
		if pc.Options.Kind != 0 {
			opts = &pc.Options
		}
		r, err := partners.New(pc.Rail, partners.Config{
			PartnerID: pc.ID, Name: pc.Name, BaseURL: pc.BaseURL,
			Username: pc.Username, Password: pc.Password,
			Timeout: pc.Timeout.D(), Options: opts,
			Host: &s.host, Records: qrswitch.RailRecords(s.store, pc.ID),
			Transport: newTransport(tlsConf), TLS: tlsConf,
			PublicURL: s.publicURL(), Development: s.cfg.Development,
			Logger: s.log.With().Str("partner", pc.ID).Logger(),
		})
		if err != nil {
			return nil, err
		}
		if sf, ok := r.(partners.Surface); ok && pc.ScanUsername == "" {
			for _, rt := range sf.Routes() {
				if rt.Auth == partners.AuthPartner {
					return nil, fmt.Errorf("partners[%d].scan_username: required: rail %s takes calls from its partner (%s %s), who authenticates with it", i, pc.Rail, rt.Method, rt.Path)
				}
			}
		}
		out = append(out, &rail{cfg: pc, partner: &partners.Partner{ID: pc.ID, Name: pc.Name, Timeout: pc.Timeout.D(), Rail: r}})
	}
	return out, nil
}

// publicURL is the switch's base URL as the outside world reaches it.
func (s *Server) publicURL() string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	return "https://" + dialable(s.Addr())
}

// newTransport is the outbound transport of one partner: its own pool, so
// one partner's slow connections never starve another's.
func newTransport(tlsConf *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
}

// pattern turns a net/http pattern's wildcards into gin's: {id} → :id,
// {rest...} → *rest.
var wildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

func ginPath(p string) string {
	return wildcard.ReplaceAllStringFunc(p, func(m string) string {
		sub := wildcard.FindStringSubmatch(m)
		if sub[2] != "" {
			return "*" + sub[1]
		}
		return ":" + sub[1]
	})
}

// mountRails mounts every rail's surface on router. Routes of several
// partners' rails may share a method and path when their partners
// authenticate (AuthPartner): each request goes to the rail of the partner
// that authenticated. Any other collision is a start-up error.
func (s *Server) mountRails(router *gin.Engine, rails []*rail, auth *httpapi.Authenticator) error {
	type key struct{ method, path string }
	type mount struct {
		auth     partners.Auth
		byCaller map[string]http.Handler // AuthPartner: partner id → handler
		handler  http.Handler            // AuthRail
		owner    string
	}
	mounts := map[key]*mount{}
	var order []key
	for _, r := range rails {
		sf, ok := r.partner.Rail.(partners.Surface)
		if !ok {
			continue
		}
		for _, rt := range sf.Routes() {
			k := key{rt.Method, ginPath(rt.Path)}
			m, seen := mounts[k]
			if !seen {
				m = &mount{auth: rt.Auth, byCaller: map[string]http.Handler{}, owner: r.partner.ID}
				mounts[k] = m
				order = append(order, k)
			}
			switch {
			case rt.Auth != m.auth:
				return fmt.Errorf("partner %s: route %s %s is mounted by partner %s with another authentication", r.partner.ID, rt.Method, rt.Path, m.owner)
			case rt.Auth == partners.AuthPartner:
				m.byCaller[r.partner.ID] = rt.Handler
			case seen:
				return fmt.Errorf("partner %s: route %s %s is already mounted by partner %s", r.partner.ID, rt.Method, rt.Path, m.owner)
			default:
				m.handler = rt.Handler
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].path < order[j].path })
	for _, k := range order {
		m := mounts[k]
		if m.auth == partners.AuthPartner {
			router.Handle(k.method, k.path, auth.Require(httpapi.KindPartner), func(c *gin.Context) {
				p, _ := httpapi.PrincipalOf(c)
				h, ok := m.byCaller[p.ID]
				if !ok {
					// A partner of another rail: as unauthorised here as
					// a stranger.
					httpapi.Fail(c, http.StatusForbidden, wire.NewErrorDetail(wire.FunctionNotSupported, "Not a partner of this rail", "", ""))
					return
				}
				serveRail(c, h, partners.WithCaller(c.Request.Context(), p.ID))
			})
			continue
		}
		router.Handle(k.method, k.path, func(c *gin.Context) { serveRail(c, m.handler, c.Request.Context()) })
	}
	return nil
}

// serveRail runs a rail's handler inside gin, with the request's path
// values set for http.Request.PathValue and a writer that takes the
// private cause of a failure (partners.SetCause) to the request's log.
func serveRail(c *gin.Context, h http.Handler, ctx context.Context) {
	r := c.Request.WithContext(ctx)
	for _, p := range c.Params {
		r.SetPathValue(p.Key, p.Value)
	}
	w := &causeWriter{ResponseWriter: c.Writer}
	h.ServeHTTP(w, r)
	if w.cause != nil {
		httpapi.Logger(c).Error().Err(w.cause).Int("status", c.Writer.Status()).Msg("request failed")
	}
}

type causeWriter struct {
	http.ResponseWriter
	cause error
}

func (w *causeWriter) SetCause(err error)          { w.cause = err }
func (w *causeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// startRails starts the rails that watch something, after the engine runs.
func (s *Server) startRails(ctx context.Context) error {
	for _, r := range s.rails {
		if st, ok := r.partner.Rail.(partners.Starter); ok {
			if err := st.Start(ctx); err != nil {
				return fmt.Errorf("starting partner %s: %w", r.partner.ID, err)
			}
		}
	}
	return nil
}

// closeRails stops them again, before the engine stops.
func (s *Server) closeRails() {
	for _, r := range s.rails {
		if st, ok := r.partner.Rail.(partners.Starter); ok {
			if err := st.Close(); err != nil {
				s.log.Error().Err(err).Str("partner", r.partner.ID).Msg("closing a rail")
			}
		}
	}
}

// simulator is one partner simulator of the development setup, on its own
// TLS listener where the partner's base_url points.
type simulator struct {
	partner string
	rail    string
	sim     partners.Simulator
	srv     *http.Server
	ln      net.Listener
}

// setupSimulators starts the simulator of every simulated rail whose
// partner has a base_url, listening on its host, so that the development
// setup demonstrates every rail with nothing else installed.
func (s *Server) setupSimulators() error {
	switchTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: s.devCA})
	if err != nil {
		return err
	}
	for _, r := range s.rails {
		sd, ok := r.partner.Rail.(partners.Simulated)
		if !ok || r.cfg.BaseURL == "" {
			continue
		}
		u, err := url.Parse(r.cfg.BaseURL)
		if err != nil {
			return fmt.Errorf("partner %s base_url: %w", r.partner.ID, err)
		}
		sim, err := sd.Simulator(partners.SimEnv{
			SwitchURL: "https://" + dialable(s.Addr()), SwitchTLS: switchTLS, Listen: u.Host,
			PartnerUsername: r.cfg.ScanUsername, PartnerPassword: r.cfg.ScanPassword,
			DataDir: filepath.Join(s.cfg.DataDir, "sim", r.partner.ID),
			Logger:  s.log.With().Str("simulator", r.partner.ID).Logger(),
		})
		if err != nil {
			return fmt.Errorf("partner %s: building its simulator: %w", r.partner.ID, err)
		}
		certFile, keyFile, err := s.devCertFiles("sim-" + r.partner.ID)
		if err != nil {
			return err
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		simTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
		tlsconfig.Harden(simTLS)
		ln, err := net.Listen("tcp", u.Host)
		if err != nil {
			sim.Close()
			return fmt.Errorf("the simulator of partner %s cannot listen on %s (its base_url): %w; "+
				"stop whatever uses that port (a separate `qrswitch partnersim` is not needed in the development setup)", r.partner.ID, u.Host, err)
		}
		s.sims = append(s.sims, &simulator{partner: r.partner.ID, rail: r.cfg.Rail, sim: sim, ln: ln, srv: &http.Server{
			Handler: sim.Handler(), TLSConfig: simTLS,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
			ErrorLog: stdLogger(s.log, "simulator "+r.partner.ID),
		}})
	}
	return nil
}

// stopSimulators shuts the simulators down.
func (s *Server) stopSimulators(ctx context.Context) {
	for _, sim := range s.sims {
		sim.srv.Shutdown(ctx)
		if err := sim.sim.Close(); err != nil {
			s.log.Warn().Err(err).Str("partner", sim.partner).Msg("closing a simulator")
		}
	}
}
