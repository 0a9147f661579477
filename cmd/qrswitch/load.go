package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/load"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// retailerFlags collects --retailer user:password:institution.
type retailerFlags []load.Retailer

func (r *retailerFlags) String() string { return fmt.Sprint(len(*r), " retailers") }

func (r *retailerFlags) Set(v string) error {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 || parts[0] == "" {
		return errors.New("want user:password:institution")
	}
	*r = append(*r, load.Retailer{Username: parts[0], Password: parts[1], InstitutionID: parts[2]})
	return nil
}

const loadUsage = `usage: qrswitch load [run|recovery|hold] [flags]

  run        complete flows (QR code, payment, scan, answer, confirmation or void)
             at --rate flows/s (open loop) or --concurrency at a time (closed loop);
             --baseline also measures the direct path to the simulator
  recovery   queue --advices confirmations while the simulator refuses them for
             --down, then time how long until all are final after its return
  hold       hold --requests payment requests open at once and read the switch's
             memory from its metrics

The switch and the simulator must be running (see scripts/bench).
`

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	mode := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mode, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("load "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, loadUsage); fs.PrintDefaults() }
	var o load.Options
	var retailers retailerFlags
	fs.StringVar(&o.SwitchURL, "switch", "https://127.0.0.1:8443", "switch base `URL`")
	fs.StringVar(&o.SimURL, "sim", "https://127.0.0.1:9443", "partner simulator base `URL`")
	fs.StringVar(&o.AdminURL, "admin", "http://127.0.0.1:9090", "switch admin `URL` (metrics)")
	ca := fs.String("ca", filepath.Join("var", "tls", "ca.pem"), "CA `file` trusted for the switch and the simulator")
	fs.Var(&retailers, "retailer", "retailer credentials `user:password:institution` (repeat; default the development demo-shop)")
	fs.IntVar(&o.Terminals, "terminals", 4, "terminals per retailer")
	fs.Float64Var(&o.Rate, "rate", 0, "target `flows/s` (open loop); 0 = closed loop")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "flows in flight at most")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "measured `duration`")
	fs.DurationVar(&o.Warmup, "warmup", 5*time.Second, "warm-up before measuring")
	fs.Float64Var(&o.VoidShare, "void", 0, "`fraction` of flows voided after approval")
	fs.Float64Var(&o.DeclineShare, "decline", 0, "`fraction` of flows the partner declines")
	fs.StringVar(&o.PartnerUsername, "partner-user", config.DevPartnerUsername, "Basic auth `user` the switch presents to the simulator (baseline)")
	fs.StringVar(&o.PartnerPassword, "partner-password", config.DevPartnerPassword, "its `password`")
	fs.IntVar(&o.Connections, "connections", 16, "connection pools to each of the switch and the simulator")
	fs.BoolVar(&o.HTTP2, "http2", mode == "hold", "speak HTTP/2")
	fs.BoolVar(&o.Baseline, "baseline", false, "run: measure the direct path to the simulator first")
	fs.Func("cpu-pid", "run: also report the CPU per flow of process `name=PID` (repeat; a redis-server, the simulator)", func(v string) error {
		name, pid, ok := strings.Cut(v, "=")
		n, err := strconv.Atoi(pid)
		if !ok || name == "" || err != nil || n <= 0 {
			return fmt.Errorf("want name=PID, got %q", v)
		}
		if o.Processes == nil {
			o.Processes = map[string]int{}
		}
		o.Processes[name] = n
		return nil
	})
	advices := fs.Int("advices", 10000, "recovery: advices to queue")
	down := fs.Duration("down", 5*time.Second, "recovery: how long the simulator refuses advices")
	requests := fs.Int("requests", 10000, "hold: payment requests to hold open")
	linger := fs.Duration("linger", 0, "hold: keep them held this long before ending them (to take profiles)")
	out := fs.String("out", "", "write the report as JSON to `file`")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("load: unexpected arguments %v", fs.Args())
	}
	o.Retailers = retailers
	if len(o.Retailers) == 0 {
		o.Retailers = []load.Retailer{{Username: config.DevRetailerUsername, Password: config.DevRetailerPassword, InstitutionID: config.DevRetailerInstitutionID}}
	}
	tlsConf, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: *ca})
	if err != nil {
		return fmt.Errorf("load: --ca: %w", err)
	}
	o.TLS = tlsConf
	if !*quiet {
		o.Progress = stderr
	}
	var rep *load.Report
	switch mode {
	case "run":
		rep, err = load.Run(ctx, o)
	case "recovery":
		rep, err = load.Recovery(ctx, o, *advices, *down)
	case "hold":
		rep, err = load.Hold(ctx, o, *requests, *linger)
	default:
		fmt.Fprint(stderr, loadUsage)
		return fmt.Errorf("load: unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	rep.WriteText(stdout)
	if *out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
