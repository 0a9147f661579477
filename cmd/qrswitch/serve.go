package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/server"
	"github.com/qrswitch/qrswitch/internal/memlimit"
)

func runServe(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration `file` (none: the development setup)")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	accessLog := fs.Bool("access-log", false, "log every request, not only failures")
	pprof := fs.Bool("pprof", false, "serve net/http/pprof on the admin listener (/debug/pprof/)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %v", fs.Args())
	}
	lvl, err := zerolog.ParseLevel(*level)
	if err != nil {
		return fmt.Errorf("serve: --log-level: %w", err)
	}
	log := zerolog.New(stderr).Level(lvl).With().Timestamp().Logger()

	cfg, err := config.Load(*configFile, environ)
	if err != nil {
		return err
	}
	if err := setMemoryLimit(cfg, environ, "/", log); err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg, log, server.Options{AccessLog: *accessLog, Pprof: *pprof})
	if err != nil {
		return err
	}
	if cfg.Development {
		printDevBanner(stdout, cfg, srv)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := srv.ReloadTLS(); err != nil {
				log.Error().Err(err).Msg("SIGHUP: reloading the TLS certificate failed; the old one stays in use")
			} else {
				log.Info().Msg("SIGHUP: TLS certificate reloaded")
			}
		}
	}()
	return srv.Run(ctx)
}

// printDevBanner prints what var/dev.json holds: the development setup's
// listeners, CA, credentials and simulators.
func printDevBanner(w io.Writer, cfg *config.Config, srv *server.Server) {
	b, _ := json.MarshalIndent(srv.DevInfo(), "", "  ")
	fmt.Fprintf(w, "qrswitch development setup (no --config given; refused when env is production)\n"+
		"written to %s:\n%s\n", server.DevFile(cfg), b)
}

// setMemoryLimit applies memory_limit to the Go runtime and logs the limit
// and why it was chosen. root is where /proc and /sys are read ("/"). A
// container limit that cannot be read is logged and no limit is set: the
// switch runs as it did before the setting existed, rather than not at all.
func setMemoryLimit(cfg *config.Config, environ []string, root string, log zerolog.Logger) error {
	s, err := memlimit.Parse(cfg.MemoryLimit)
	if err != nil {
		return fmt.Errorf("memory_limit: %w", err) // Validate has refused it already
	}
	var env string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GOMEMLIMIT="); ok {
			env = v
			break
		}
	}
	d, err := memlimit.Decide(s, env, root)
	if err != nil {
		log.Warn().Err(err).Msg("memory_limit auto: the container's memory limit is unreadable; no limit set")
		d = memlimit.Decision{Bytes: math.MaxInt64, Source: "none (container limit unreadable)"}
	}
	if d.Bytes >= 0 {
		debug.SetMemoryLimit(d.Bytes)
	}
	ev := log.Info().Str("source", d.Source)
	switch limit := debug.SetMemoryLimit(-1); {
	case limit == math.MaxInt64:
		ev.Str("memory_limit", "none")
	default:
		ev.Int64("memory_limit_bytes", limit)
	}
	if d.Container > 0 {
		ev.Int64("container_limit_bytes", d.Container)
	}
	ev.Msg("memory limit")
	return nil
}
