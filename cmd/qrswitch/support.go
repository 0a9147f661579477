package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// The support commands talk to a switch's support API as a support user.
// Their credentials come from flags or from QRS_* variables — not QRSWITCH_*,
// which `serve` reads as configuration and refuses when they name no key.
const (
	envSwitch   = "QRS_SWITCH"
	envCA       = "QRS_CA"
	envUser     = "QRS_SUPPORT_USER"
	envPassword = "QRS_SUPPORT_PASSWORD"
)

// supportClient is a support user's connection to one switch.
type supportClient struct {
	base       string
	user, pass string
	http       *http.Client
	json       bool
	out        io.Writer
}

// supportFlags adds the connection flags to fs; connect builds the client
// once fs is parsed.
func supportFlags(fs *flag.FlagSet, environ []string, stdout io.Writer) func() (*supportClient, error) {
	env := func(name string) string {
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && k == name {
				return v
			}
		}
		return ""
	}
	base := fs.String("switch", cmp.Or(env(envSwitch), "https://127.0.0.1:8443"), "the switch's HTTPS `URL` ($"+envSwitch+")")
	ca := fs.String("ca", env(envCA), "PEM `file` of the CA to trust for the switch's certificate ($"+envCA+"; default: the development CA in ./var/tls/ca.pem if present, else the system roots)")
	user := fs.String("user", env(envUser), "support `username` ($"+envUser+")")
	pass := fs.String("password", "", "support password: visible to other users in the process list; prefer $"+envPassword+" or --password-file")
	passFile := fs.String("password-file", "", "read the support password from the first line of `file`")
	asJSON := fs.Bool("json", false, "print the support API's JSON answer instead of text")
	return func() (*supportClient, error) {
		password := cmp.Or(*pass, env(envPassword))
		if *passFile != "" {
			b, err := os.ReadFile(*passFile)
			if err != nil {
				return nil, err
			}
			password = strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
		}
		if *user == "" || password == "" {
			return nil, fmt.Errorf("a support username and password are needed: --user and $%s (or --password-file)", envPassword)
		}
		caFile := *ca
		if caFile == "" {
			if _, err := os.Stat("var/tls/ca.pem"); err == nil {
				caFile = "var/tls/ca.pem"
			}
		}
		tlsConf, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: caFile})
		if err != nil {
			return nil, err
		}
		return &supportClient{
			base: strings.TrimRight(*base, "/"), user: *user, pass: password, json: *asJSON, out: stdout,
			http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}},
		}, nil
	}
}

// call sends one support API request and decodes a 2xx answer into out;
// with --json it prints the answer as it came instead.
func (c *supportClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var d wire.ErrorDetail
		if json.Unmarshal(raw, &d) == nil && d.ErrorType != "" {
			msg := fmt.Sprintf("%s %s: %d %s: %s", method, path, resp.StatusCode, d.ErrorType, d.ErrorMessage)
			if m := d.DetailMessage.Message(); m != "" {
				msg += " (" + m + ")"
			}
			return errors.New(msg)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if c.json {
		var pretty bytes.Buffer
		if json.Indent(&pretty, raw, "", "  ") != nil {
			pretty.Reset()
			pretty.Write(raw)
		}
		fmt.Fprintln(c.out, pretty.String())
		return nil
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

const txnUsage = `usage: qrswitch txn show KEY [flags]      a payment's story: record, advices, attempts, message flow
       qrswitch txn search [filters] [flags]  payments, newest first

KEY is any id: payment request id (or RETAILER/REQUESTID), tranId, advice id or rrn.
Connection flags (every command): --switch URL --ca FILE --user NAME, the password in $QRS_SUPPORT_PASSWORD
or --password-file FILE; --json prints the API's answer.
`

// runTxn runs `qrswitch txn show|search`.
func runTxn(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "search") {
		fmt.Fprint(stderr, txnUsage)
		return errors.New("txn: show or search")
	}
	fs := flag.NewFlagSet("txn "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	connect := supportFlags(fs, environ, stdout)
	if args[0] == "show" {
		// The key may come before or after the flags.
		rest := args[1:]
		var key string
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			key, rest = rest[0], rest[1:]
		}
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if key == "" && fs.NArg() > 0 {
			key = fs.Arg(0)
		}
		if key == "" {
			return errors.New("txn show: give the id of a transaction")
		}
		c, err := connect()
		if err != nil {
			return err
		}
		var ans struct{ Results []qrswitch.Story }
		if err := c.call(ctx, http.MethodGet, "/support/v1/transactions/"+pathKey(key), nil, &ans); err != nil || c.json {
			return err
		}
		for i, s := range ans.Results {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			printStory(stdout, s)
		}
		return nil
	}
	params := map[string]*string{}
	for _, name := range []string{"requestId", "tranId", "adviceId", "rrn", "stan", "retailer", "merchant", "terminal",
		"partner", "state", "outcome", "minAmount", "maxAmount", "from", "to", "limit", "cursor"} {
		params[name] = fs.String(name, "", "search by "+name)
	}
	all := fs.Bool("all", false, "follow the cursor through every page")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := connect()
	if err != nil {
		return err
	}
	q := url.Values{}
	for name, v := range params {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !c.json {
		fmt.Fprintln(tw, "CREATED (UTC)\tKEY\tSTATE\tOUTCOME\tPARTNER\tAMOUNT\tTERMINAL\tRRN")
	}
	for {
		var ans struct {
			Results []qrswitch.PaymentSummary
			Next    string
		}
		if err := c.call(ctx, http.MethodGet, "/support/v1/transactions?"+q.Encode(), nil, &ans); err != nil {
			return err
		}
		if c.json {
			return nil // one page as it came; --cursor pages on
		}
		for _, p := range ans.Results {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.CreatedAt.Format("2006-01-02 15:04:05.000"), p.Key, p.State,
				dash(p.Outcome), dash(p.PartnerID), amount(p.Amount, p.Currency), dash(p.TerminalID), dash(p.Rrn))
		}
		if ans.Next == "" {
			break
		}
		if !*all {
			tw.Flush()
			fmt.Fprintf(stdout, "more: --cursor %s (or --all)\n", ans.Next)
			return nil
		}
		q.Set("cursor", ans.Next)
	}
	return tw.Flush()
}

// pathKey escapes each part of a key (a payment key has a slash).
func pathKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func amount(minor int64, currency string) string {
	if minor == 0 {
		return "-"
	}
	return fmt.Sprintf("%d.%02d %s", minor/100, minor%100, currency)
}

// printStory prints a payment's story for people: the record, its advices
// and their attempts, then the message flow as lines of a sequence
// diagram.
func printStory(w io.Writer, s qrswitch.Story) {
	if p := s.Payment; p != nil {
		fmt.Fprintf(w, "payment   %s\n", p.Key())
		fmt.Fprintf(w, "state     %s (payment outcome: %s)\n", p.State, dash(p.LegOutcome()))
		fmt.Fprintf(w, "tranId    %s\n", dash(p.TranID))
		fmt.Fprintf(w, "partner   %s\n", dash(p.PartnerID()))
		if r := p.Request; r != nil && r.Amounts != nil && r.Amounts.RequestAmount != nil {
			fmt.Fprintf(w, "amount    %s\n", amount(r.Amounts.RequestAmount.Amount, r.Amounts.RequestAmount.Currency))
		}
		if p.Status != 0 {
			ans := fmt.Sprint(p.Status)
			if p.Error != nil {
				ans += " " + p.Error.ErrorType + ": " + p.Error.ErrorMessage
			}
			fmt.Fprintf(w, "answered  %s\n", ans)
		}
		fmt.Fprintf(w, "created   %s UTC\n", p.CreatedAt.Format("2006-01-02 15:04:05.000"))
	} else if s.QR != nil {
		fmt.Fprintf(w, "QR code   %s (no payment request used it yet)\n", s.QR.TranID)
	}
	if len(s.Advices) > 0 {
		fmt.Fprintln(w, "\nadvices")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KEY\tKIND\tSTATE\tOUTCOME\tATTEMPTS\tLAST\tNOTE")
		for _, a := range s.Advices {
			out := "-"
			if a.State == qrswitch.AdviceDone {
				out = a.Outcome.String()
			}
			last := dash(strings.TrimSpace(fmt.Sprintf("%s %s", a.LastCode, a.LastError)))
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Key(), a.Kind, a.State, out, a.Attempts, last, dash(a.Note))
		}
		tw.Flush()
	}
	if len(s.Attempts) > 0 {
		fmt.Fprintln(w, "\nattempts")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, a := range s.Attempts {
			fmt.Fprintf(tw, "  %s #%d\t%s\t%s\t%s\t%.0f ms\t%s\n", a.AdviceKey, a.N, a.At.Format("15:04:05.000"),
				dash(a.Code), a.Outcome, a.LatencyMS, a.Note)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nmessage flow (retailer <-> switch <-> partner)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range s.Trace {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.At.Format("15:04:05.000"), arrow(t), t.Operation, describe(t))
	}
	tw.Flush()
}

// arrow draws where a traced message went.
func arrow(t qrswitch.TraceEntry) string {
	who, _, _ := strings.Cut(t.Peer, ":")
	switch {
	case t.Kind == qrswitch.KindEvent && who == "operator":
		return "[" + t.Peer + "]"
	case t.Kind == qrswitch.KindEvent:
		return "[switch]"
	case who == "retailer" && t.Direction == qrswitch.Inbound:
		return t.Peer + " --> switch"
	case who == "retailer":
		return t.Peer + " <-- switch"
	case t.Direction == qrswitch.Inbound:
		return "switch <-- " + t.Peer
	default:
		return "switch --> " + t.Peer
	}
}

func describe(t qrswitch.TraceEntry) string {
	var parts []string
	if t.Status != 0 {
		parts = append(parts, fmt.Sprint(t.Status))
	}
	if t.Code != "" {
		parts = append(parts, t.Code)
	}
	if t.Outcome != "" {
		parts = append(parts, t.Outcome)
	}
	if t.LatencyMS != 0 {
		parts = append(parts, fmt.Sprintf("%.0f ms", t.LatencyMS))
	}
	if t.Note != "" {
		parts = append(parts, t.Note)
	}
	return strings.Join(parts, " · ")
}

const safUsage = `usage: qrswitch saf list [flags]                        every partner's queue
       qrswitch saf dead PARTNER [--state S] [flags]   a partner's dead letters (or PENDING, HELD advices)
       qrswitch saf pause|resume|retry PARTNER --reason TEXT [flags]
       qrswitch saf replay ADVICE --reason TEXT [flags]      ADVICE is SENDER/ID, e.g. shop-1/3f2a…
       qrswitch saf retry ADVICE --reason TEXT [flags]
       qrswitch saf final ADVICE --outcome successful|failed --reason TEXT [flags]

Operator actions need the operator role and a reason, which is kept in the audit trail.
`

// runSAF runs `qrswitch saf …`.
func runSAF(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, safUsage)
		return errors.New("saf: a subcommand is needed")
	}
	verb := args[0]
	fs := flag.NewFlagSet("saf "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	connect := supportFlags(fs, environ, stdout)
	reason := fs.String("reason", "", "why (required for actions; kept in the audit trail)")
	outcome := fs.String("outcome", "", "final outcome for final: successful or failed")
	state := fs.String("state", "DEAD", "advices to list for dead: DEAD, PENDING or HELD")
	// The target may come before or after the flags.
	rest := args[1:]
	var target string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		target, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
	}
	needTarget := func(what string) error {
		if target == "" {
			fmt.Fprint(stderr, safUsage)
			return fmt.Errorf("saf %s: give the %s", verb, what)
		}
		return nil
	}
	switch verb {
	case "list":
		c, err := connect()
		if err != nil {
			return err
		}
		var ans struct{ Partners []qrswitch.PartnerQueue }
		if err := c.call(ctx, http.MethodGet, "/support/v1/saf", nil, &ans); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTNER\tQUEUE\tPENDING\tOLDEST\tHELD\tDEAD\tSENDING\tATTEMPTS (pending)")
		for _, q := range ans.Partners {
			st := "running"
			if q.Paused {
				st = "paused by " + q.Control.By + ": " + q.Control.Reason
			}
			oldest := "-"
			if q.Pending > 0 {
				oldest = time.Since(q.OldestQueuedAt).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n", q.Destination, st, q.Pending, oldest, q.Held, q.Dead, q.Sending, histogram(q.Attempts))
		}
		return tw.Flush()
	case "dead":
		if err := needTarget("partner"); err != nil {
			return err
		}
		c, err := connect()
		if err != nil {
			return err
		}
		var ans struct{ Advices []*qrswitch.Advice }
		if err := c.call(ctx, http.MethodGet, "/support/v1/saf/"+url.PathEscape(target)+"/advices?state="+url.QueryEscape(*state), nil, &ans); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADVICE\tKIND\tTRANID\tSTATE\tATTEMPTS\tQUEUED (UTC)\tLAST\tNOTE")
		for _, a := range ans.Advices {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.Key(), a.Kind, dash(a.TranID), a.State, a.Attempts,
				a.QueuedAt.Format("2006-01-02 15:04:05"), dash(strings.TrimSpace(a.LastCode+" "+a.LastError)), dash(a.Note))
		}
		return tw.Flush()
	case "pause", "resume", "retry", "replay", "final":
	default:
		fmt.Fprint(stderr, safUsage)
		return fmt.Errorf("saf: unknown subcommand %q", verb)
	}
	if err := needTarget("partner or advice"); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return fmt.Errorf("saf %s: --reason is required: it is kept in the audit trail", verb)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	body := map[string]string{"reason": *reason}
	var path string
	advice := strings.Contains(target, "/")
	switch {
	case verb == "replay" || verb == "final" || verb == "retry" && advice:
		if !advice {
			return fmt.Errorf("saf %s: %q is not an advice key (SENDER/ID)", verb, target)
		}
		sender, id, _ := strings.Cut(target, "/")
		path = "/support/v1/advices/" + url.PathEscape(sender) + "/" + url.PathEscape(id) + "/" + verb
		if verb == "final" {
			body["outcome"] = *outcome
		}
	default:
		path = "/support/v1/saf/" + url.PathEscape(target) + "/" + verb
	}
	var ans json.RawMessage
	if err := c.call(ctx, http.MethodPost, path, body, &ans); err != nil || c.json {
		return err
	}
	switch {
	case advice:
		var a qrswitch.Advice
		json.Unmarshal(ans, &a)
		fmt.Fprintf(stdout, "%s %s: advice %s is %s", verb, "done", a.Key(), a.State)
		if a.State == qrswitch.AdviceDone {
			fmt.Fprintf(stdout, " (%s)", a.Outcome)
		}
		fmt.Fprintln(stdout)
	case verb == "retry":
		fmt.Fprintf(stdout, "retry done: every queued advice of %s is being sent now\n", target)
	default:
		var ctl qrswitch.QueueControl
		json.Unmarshal(ans, &ctl)
		st := "running"
		if ctl.Paused {
			st = "paused"
		}
		fmt.Fprintf(stdout, "%s done: the queue of %s is %s (by %s: %s)\n", verb, ctl.Destination, st, ctl.By, ctl.Reason)
	}
	return nil
}

// histogram prints attempts counts compactly: "0:3 2:1 7:1".
func histogram(m map[int]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
