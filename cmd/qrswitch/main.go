// Command qrswitch is the retailer QR payment switch: one binary with
// subcommands for running the switch, the partner simulator, and the tools
// integrators and support staff use.
//
//	qrswitch serve [--config FILE]    run the switch
//	qrswitch partnersim [flags]       run a simulated Electrum partner
//	qrswitch qr decode|encode ...     inspect and build QR payloads
//	qrswitch load [run|recovery|hold]  measure a running switch
//	qrswitch passwd < FILE            hash a password for the configuration
//	qrswitch txn show|search ...      support: a transaction's story, searches
//	qrswitch saf list|dead|pause|resume|retry|replay|final ...  support: the advice queues
//	qrswitch conform --partner-url URL ...  partner vendors: the conformance kit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal starts a graceful stop, restore the
		// default so a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "qrswitch:", err)
		os.Exit(1)
	}
}

const usage = `usage: qrswitch <command> [flags]

commands:
  serve        run the switch (no --config: the development setup)
  partnersim   run a simulated Electrum partner (a wallet)
  qr           decode or encode EMVCo QR payloads
  load         drive payment flows against a running switch and measure them
  passwd       print the bcrypt hash of a password read from stdin, for *_hash keys
  txn          support: show a transaction's story, search transactions (txn show KEY, txn search --retailer …)
  saf          support: the advice queues (saf list, dead, pause, resume, retry, replay, final)
  conform      partner vendors: play the switch against a partner's implementation and report (conform --partner-url …)
`

// run dispatches a subcommand. environ is the process environment, passed
// in so tests can run commands with their own.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], environ, stdout, stderr)
	case "partnersim":
		return runPartnersim(ctx, args[1:], stdout, stderr)
	case "qr":
		return runQR(ctx, args[1:], stdout, stderr)
	case "load":
		return runLoad(ctx, args[1:], stdout, stderr)
	case "passwd":
		return runPasswd(ctx, args[1:], stdin, stdout, stderr)
	case "txn":
		return runTxn(ctx, args[1:], environ, stdout, stderr)
	case "saf":
		return runSAF(ctx, args[1:], environ, stdout, stderr)
	case "conform":
		return runConform(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
