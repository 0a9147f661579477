package server

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

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
//
// Lines are sampled: at most errorLogBurst a minute, then one summary of how
// many were dropped, because every failed TLS handshake writes one and a
// port scanner (or testssl.sh) would otherwise fill the log.
func stdLogger(l zerolog.Logger, name string) *log.Logger {
	return log.New(&sampledWriter{log: l.With().Str("listener", name).Logger()}, "", 0)
}

// errorLogBurst is how many lines a listener's error log writes a minute.
const errorLogBurst = 20

type sampledWriter struct {
	log     zerolog.Logger
	mu      sync.Mutex
	window  time.Time
	written int
	dropped int
}

func (w *sampledWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if now.Sub(w.window) >= time.Minute {
		if w.dropped > 0 {
			w.log.Warn().Int("dropped", w.dropped).Msg("listener errors dropped in the last minute (sampled)")
		}
		w.window, w.written, w.dropped = now, 0, 0
	}
	if w.written >= errorLogBurst {
		w.dropped++
		return len(p), nil
	}
	w.written++
	w.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
