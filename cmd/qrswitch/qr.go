package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/qrswitch/qrswitch/qr"
)

const qrUsage = `usage: qrswitch qr <command> [flags]

Commands:
  decode [PAYLOAD|-]   print every object of a payload (nested templates too)
                       as indented JSON; exit non-zero if it is invalid.
                       Without PAYLOAD, or with -, the payload is read from
                       standard input.
  encode [flags]       build a payload from flags or from JSON and print it;
                       --png writes the QR image as well.

Run "qrswitch qr <command> -h" for a command's flags.
`

// runQR runs "qrswitch qr ...": args are the arguments after "qr". Errors are
// returned for main to print and turn into a non-zero exit; usage goes to
// stderr.
func runQR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return qrCommand{stdin: os.Stdin, stdout: stdout, stderr: stderr}.run(ctx, args)
}

// qrCommand holds the streams of one run, so tests can feed standard input.
type qrCommand struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (c qrCommand) run(ctx context.Context, args []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(c.stderr, qrUsage)
		return errors.New("qr: missing command: decode or encode")
	}
	switch args[0] {
	case "decode":
		return c.decode(args[1:])
	case "encode":
		return c.encode(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, qrUsage)
		return nil
	default:
		fmt.Fprint(c.stderr, qrUsage)
		return fmt.Errorf("qr: unknown command %q: want decode or encode", args[0])
	}
}

// qrObject is one object as integrators read it.
type qrObject struct {
	Tag  string `json:"tag"`
	Name string `json:"name,omitempty"`
	// Length is the value's length in characters, as written in the
	// payload.
	Length   int        `json:"length"`
	Value    string     `json:"value"`
	Children []qrObject `json:"children,omitempty"`
}

// qrDecodeReport is what "qr decode" prints for a valid payload.
type qrDecodeReport struct {
	// Scheme is the layout the payload matches, when its fields have a
	// typed form.
	Scheme qr.Scheme `json:"scheme,omitempty"`
	// TranID is the Electrum tranId, when the payload carries one.
	TranID  string     `json:"tranId,omitempty"`
	Objects []qrObject `json:"objects"`
}

func (c qrCommand) decode(args []string) error {
	fs := flag.NewFlagSet("qrswitch qr decode", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: qrswitch qr decode [PAYLOAD|-]\n\nPrints the payload's objects as JSON; without PAYLOAD, or with -, reads it from standard input.\nQuote the payload: merchant names contain spaces and shell characters such as * and &.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var payload string
	switch {
	case fs.NArg() > 1:
		return fmt.Errorf("qr decode: %d arguments, want one payload (quote it: it may contain spaces)", fs.NArg())
	case fs.NArg() == 1 && fs.Arg(0) != "-":
		payload = fs.Arg(0)
	default:
		b, err := io.ReadAll(io.LimitReader(c.stdin, 64<<10))
		if err != nil {
			return fmt.Errorf("reading payload from standard input: %w", err)
		}
		// One line of input: the newline the shell or echo adds is not
		// part of the payload, any other character is.
		payload = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	d, err := qr.Decode(payload)
	if err != nil {
		return fmt.Errorf("decoding payload: %w", err)
	}
	report := qrDecodeReport{Objects: qrDescribe("", d.Objects)}
	if p, err := d.Payload(); err == nil {
		report.Scheme = p.Scheme
	}
	if id, err := qr.TranID(payload); err == nil {
		report.TranID = id
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(report)
}

func qrDescribe(parent string, objs []qr.Object) []qrObject {
	out := make([]qrObject, len(objs))
	for i, o := range objs {
		out[i] = qrObject{
			Tag:      o.Tag,
			Name:     qr.ObjectName(parent, o.Tag),
			Length:   len([]rune(o.Value)),
			Value:    o.Value,
			Children: qrDescribe(o.Tag, o.Children),
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// qrEncodeInput is the JSON "qr encode --json" reads. It is qr.Payload with
// the amount optional instead of HasAmount, and tranId as a shorthand for
// the Electrum template.
type qrEncodeInput struct {
	Scheme         qr.Scheme            `json:"scheme"`
	Static         bool                 `json:"static"`
	TranID         string               `json:"tranId"`
	Accounts       []qr.MerchantAccount `json:"accounts"`
	MCC            string               `json:"mcc"`
	Currency       string               `json:"currency"`
	Amount         *int64               `json:"amount"`
	Country        string               `json:"country"`
	MerchantName   string               `json:"merchantName"`
	City           string               `json:"city"`
	ReferenceLabel string               `json:"referenceLabel"`
	TerminalLabel  string               `json:"terminalLabel"`
}

const qrEncodeJSONHelp = `
The JSON of --json (a file, or - for standard input):
  {"scheme": "EMVCO_MERCHANT", "static": false, "tranId": "f82d...",
   "accounts": [{"tag": 27, "guid": "za.co.mp", "fields": [{"tag": "01", "value": "5169175130"}]}],
   "mcc": "5411", "currency": "710", "amount": 79995, "country": "ZA",
   "merchantName": "Corner Shop", "city": "Cape Town",
   "referenceLabel": "INV-1", "terminalLabel": "POS00042"}
Every key is optional but scheme; amount is in minor units; the tranId
template comes first, tag 0 or no tag means the next free tag from 26.
`

// qrProviderFlags collects repeated --provider values.
type qrProviderFlags []qr.MerchantAccount

func (p *qrProviderFlags) String() string { return "" }

// Set parses GUID or GUID:SUBTAG=VALUE,SUBTAG=VALUE.
func (p *qrProviderFlags) Set(v string) error {
	guid, rest, hasFields := strings.Cut(v, ":")
	if guid == "" {
		return errors.New("want GUID[:SUBTAG=VALUE,...]")
	}
	a := qr.MerchantAccount{GUID: guid}
	if hasFields {
		for _, kv := range strings.Split(rest, ",") {
			tag, value, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("%q is not SUBTAG=VALUE", kv)
			}
			a.Fields = append(a.Fields, qr.Field{Tag: tag, Value: value})
		}
	}
	*p = append(*p, a)
	return nil
}

func (c qrCommand) encode(args []string) error {
	fs := flag.NewFlagSet("qrswitch qr encode", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var (
		in        qrEncodeInput
		providers qrProviderFlags
		amount    int64
		jsonFile  string
		pngFile   string
		size      int
	)
	scheme := fs.String("scheme", string(qr.SchemeEMVCo), "layout: EMVCO_MERCHANT, PSEUDO_EMVCO_MERCHANT or ELECTRUM_MERCHANT_MINIMAL")
	fs.BoolVar(&in.Static, "static", false, "static code (01 = 11) instead of dynamic (12)")
	fs.StringVar(&in.TranID, "tran-id", "", "tranId for the Electrum template ("+qr.ElectrumProvider+", sub-tag 01)")
	fs.Var(&providers, "provider", "another merchant account template, GUID[:SUBTAG=VALUE,...]; repeatable")
	fs.StringVar(&in.MCC, "mcc", "", "merchant category code (merchantType), 4 digits")
	fs.StringVar(&in.Currency, "currency", "", "ISO 4217 currency, numeric (710) or alphabetic (ZAR)")
	fs.Int64Var(&amount, "amount", 0, "amount in minor units (R799.95 is 79995); omit for a code without an amount")
	fs.StringVar(&in.Country, "country", "", "ISO 3166-1 alpha-2 country, e.g. ZA")
	fs.StringVar(&in.MerchantName, "name", "", "merchant name, at most 25 characters")
	fs.StringVar(&in.City, "city", "", "merchant city, at most 15 characters")
	fs.StringVar(&in.ReferenceLabel, "reference", "", "reference label (62.05), at most 25 characters")
	fs.StringVar(&in.TerminalLabel, "terminal", "", "terminal label (62.07), at most 25 characters")
	fs.StringVar(&jsonFile, "json", "", "read the payload fields from this JSON file (- for standard input) instead of flags")
	fs.StringVar(&pngFile, "png", "", "also write the QR image to this PNG file (- for standard output, then the payload is not printed)")
	fs.IntVar(&size, "size", 256, fmt.Sprintf("PNG edge in pixels, %d to %d", qr.MinPNGSize, qr.MaxPNGSize))
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: qrswitch qr encode [flags]\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), qrEncodeJSONHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("qr encode: unexpected argument %q (fields are flags)", fs.Arg(0))
	}
	fieldFlags := 0
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "json", "png", "size":
		case "amount":
			in.Amount = &amount
			fieldFlags++
		default:
			fieldFlags++
		}
	})
	if jsonFile != "" {
		if fieldFlags > 0 {
			return errors.New("qr encode: --json replaces the field flags; give one or the other")
		}
		var err error
		if in, err = c.readInput(jsonFile); err != nil {
			return err
		}
	} else {
		in.Scheme = qr.Scheme(*scheme)
		in.Accounts = providers
	}

	payload, err := qr.Encode(in.payload())
	if err != nil {
		return fmt.Errorf("encoding payload: %w", err)
	}
	if pngFile == "" {
		_, err = fmt.Fprintln(c.stdout, payload)
		return err
	}
	img, err := qr.PNG(payload, size)
	if err != nil {
		return fmt.Errorf("rendering image: %w", err)
	}
	if pngFile == "-" {
		_, err = c.stdout.Write(img)
		return err
	}
	if err := os.WriteFile(pngFile, img, 0o644); err != nil {
		return fmt.Errorf("writing image: %w", err)
	}
	_, err = fmt.Fprintln(c.stdout, payload)
	return err
}

func (c qrCommand) readInput(file string) (qrEncodeInput, error) {
	var (
		b   []byte
		err error
	)
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(c.stdin, 1<<20))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return qrEncodeInput{}, fmt.Errorf("reading JSON: %w", err)
	}
	var in qrEncodeInput
	dec := json.NewDecoder(bytes.NewReader(b))
	// A misspelt key would otherwise drop a field from the code unnoticed.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return qrEncodeInput{}, fmt.Errorf("parsing JSON %s: %w", file, err)
	}
	if in.Scheme == "" {
		return qrEncodeInput{}, fmt.Errorf("JSON %s has no scheme", file)
	}
	return in, nil
}

// payload turns the input into a qr.Payload: the tranId template first, an
// alphabetic currency made numeric.
func (in qrEncodeInput) payload() *qr.Payload {
	p := &qr.Payload{
		Scheme: in.Scheme, Static: in.Static,
		MCC: in.MCC, Currency: in.Currency, Country: in.Country,
		MerchantName: in.MerchantName, City: in.City,
		ReferenceLabel: in.ReferenceLabel, TerminalLabel: in.TerminalLabel,
	}
	if in.TranID != "" {
		p.Accounts = append(p.Accounts, qr.ElectrumAccount(in.TranID))
	}
	p.Accounts = append(p.Accounts, in.Accounts...)
	if in.Amount != nil {
		p.Amount, p.HasAmount = *in.Amount, true
	}
	if n, ok := qr.CurrencyNumeric(p.Currency); ok {
		p.Currency = n
	}
	return p
}
