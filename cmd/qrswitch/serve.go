package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/server"
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
