package server

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/store/sqlite"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// openStore opens the store a URL names. soleOwner reports that the backend
// guarantees no other process uses it.
func openStore(ctx context.Context, url string) (st qrswitch.Store, soleOwner bool, err error) {
	switch {
	case strings.HasPrefix(url, "sqlite://"):
		st, err := sqlite.Open(ctx, url, sqlite.Options{})
		if err != nil {
			return nil, false, fmt.Errorf("opening the store: %w", err)
		}
		return st, true, nil
	default:
		return nil, false, fmt.Errorf("store.url %q: this build has no backend for its scheme", url)
	}
}

// adminHandler serves /healthz (the process answers), /readyz (it can do
// its work: the store answers) and /metrics.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.engine.Draining() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: shutting down")
			return
		}
		if err := s.ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: store: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	if s.opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// stdLogger adapts zerolog for net/http's error log (TLS handshake errors
// and the like), at warn level.
func stdLogger(l zerolog.Logger, name string) *log.Logger {
	return log.New(l.With().Str("listener", name).Logger(), "", 0)
}
