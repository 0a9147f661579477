package protocol

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Version is the only ipp_version of the seed.
const Version = "0.1"

// The verification schemes the rail speaks (section 6's examples; their
// procedures are the rail's decisions, docs/ipp.md).
const (
	SchemeQuery = "http://tyaga.org/ipp/xotaur-sha1-query.html"
	SchemeRSA   = "http://tyaga.org/ipp/xotaur-sha1-rsa.html"
)

// Limits on a notification, so a parser of outside bytes bounds its work.
const (
	maxBody   = 8 << 10
	maxParams = 32
	maxMemo   = 256
	maxRelay  = 64
	maxVer    = 2048
	maxBrand  = 190
)

// Notification is one IPP notification (section 5): an offer or a
// decision, with its verification and record parameters.
type Notification struct {
	Version string
	Code    Code
	Status  string
	Relay   string

	Scheme  string
	VerData string

	XTime  int64
	Amount string // a decimal, as sent (negative: a reversal offer)
	Unit   string
	From   string
	To     string
	Memo   string

	RefXTime  int64 // 0: absent
	RefAmount string
	RefMemo   string
}

// ParamError is a notification the rail cannot take, with the code to
// answer and the parameter at fault.
type ParamError struct {
	Code  Code
	Param string
	Msg   string
}

// Error names the parameter at fault, if any, and the cause.
func (e *ParamError) Error() string {
	if e.Param == "" {
		return e.Msg
	}
	return e.Param + ": " + e.Msg
}

// ErrBadRequest is what every malformed notification unwraps to.
var ErrBadRequest = errors.New("malformed IPP notification")

// Unwrap gives ErrBadRequest for an 800.
func (e *ParamError) Unwrap() error {
	if e.Code == CodeBadRequest {
		return ErrBadRequest
	}
	return nil
}

func bad(param, format string, a ...any) *ParamError {
	return &ParamError{Code: CodeBadRequest, Param: param, Msg: fmt.Sprintf(format, a...)}
}

// known are the parameters of sections 5.1–5.3.
var known = map[string]bool{
	"ipp_version": true, "ipp_code": true, "ipp_status": true, "ipp_relay": true,
	"ver_scheme": true, "ver_data": true,
	"xtime": true, "amount": true, "unit": true, "from": true, "to": true, "memo": true,
	"ref_xtime": true, "ref_amount": true, "ref_memo": true,
}

// ParseNotification reads a URL-encoded notification and validates every
// parameter of sections 5.1–5.3. Parameters the seed does not name are
// ignored (a ver_scheme may define its own); a known one given twice is
// refused.
func ParseNotification(body []byte) (*Notification, error) {
	if len(body) > maxBody {
		return nil, bad("", "notification longer than %d bytes", maxBody)
	}
	if strings.Count(string(body), "&") >= maxParams {
		return nil, bad("", "more than %d parameters", maxParams)
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, bad("", "not URL-encoded: %v", err)
	}
	for k, vs := range v {
		if known[k] && len(vs) > 1 {
			return nil, bad(k, "given %d times", len(vs))
		}
	}
	return FromValues(v)
}

// FromValues validates a notification's parameters.
func FromValues(v url.Values) (*Notification, error) {
	n := &Notification{
		Version: v.Get("ipp_version"), Status: v.Get("ipp_status"), Relay: v.Get("ipp_relay"),
		Scheme: v.Get("ver_scheme"), VerData: v.Get("ver_data"),
		Amount: v.Get("amount"), Unit: v.Get("unit"), From: v.Get("from"), To: v.Get("to"),
		Memo: v.Get("memo"), RefAmount: v.Get("ref_amount"), RefMemo: v.Get("ref_memo"),
	}
	if n.Version != Version {
		return nil, bad("ipp_version", "want %s, got %q", Version, n.Version)
	}
	code, err := strconv.Atoi(v.Get("ipp_code"))
	if err != nil || len(v.Get("ipp_code")) != 3 {
		return nil, bad("ipp_code", "want a three-digit code, got %q", v.Get("ipp_code"))
	}
	n.Code = Code(code)
	if n.Code != CodeOffer && !(n.Code == CodeApproved || n.Code == CodeReset || n.Code.Voided()) {
		return nil, bad("ipp_code", "%d is not an offer (600) or a decision (620, 640, 660-699)", code)
	}
	if n.Status == "" || len(n.Status) > 64 || !printable(n.Status) {
		return nil, bad("ipp_status", "want the code's text, at most 64 printable characters")
	}
	if len(n.Relay) > maxRelay || !printable(n.Relay) {
		return nil, bad("ipp_relay", "at most %d printable characters", maxRelay)
	}
	if u, err := url.Parse(n.Scheme); err != nil || !u.IsAbs() || u.Host == "" {
		return nil, bad("ver_scheme", "want an absolute URI, got %q", n.Scheme)
	}
	if len(n.VerData) > maxVer || !printable(n.VerData) {
		return nil, bad("ver_data", "at most %d printable characters", maxVer)
	}
	if n.XTime, err = parseXTime(v.Get("xtime")); err != nil || n.XTime == 0 {
		return nil, bad("xtime", "want seconds since the epoch, got %q", v.Get("xtime"))
	}
	if !validAmount(n.Amount) || isZero(n.Amount) {
		return nil, bad("amount", "want a non-zero decimal, got %q", n.Amount)
	}
	if !validUnit(n.Unit) {
		return nil, bad("unit", "want an accounting unit of 1 to 16 letters or digits, got %q", n.Unit)
	}
	if !ValidBrand(n.From) {
		return nil, bad("from", "want a brand [subdomain.]domain[/path], got %q", n.From)
	}
	if !ValidBrand(n.To) {
		return nil, bad("to", "want a brand [subdomain.]domain[/path], got %q", n.To)
	}
	if n.From == n.To {
		return nil, bad("to", "the same brand as from")
	}
	if len(n.Memo) > maxMemo || !utf8.ValidString(n.Memo) {
		return nil, bad("memo", "at most %d bytes of UTF-8", maxMemo)
	}
	if len(n.RefMemo) > maxMemo || !utf8.ValidString(n.RefMemo) {
		return nil, bad("ref_memo", "at most %d bytes of UTF-8", maxMemo)
	}
	if s := v.Get("ref_xtime"); s != "" {
		if n.RefXTime, err = parseXTime(s); err != nil || n.RefXTime == 0 {
			return nil, bad("ref_xtime", "want seconds since the epoch, got %q", s)
		}
	}
	if n.RefAmount != "" && (!validAmount(n.RefAmount) || isZero(n.RefAmount)) {
		return nil, bad("ref_amount", "want a non-zero decimal, got %q", n.RefAmount)
	}
	reversal := strings.HasPrefix(n.Amount, "-")
	switch {
	case reversal && n.Code == CodeOffer && n.RefXTime == 0:
		return nil, bad("ref_xtime", "required in a reversal offer")
	case reversal && n.Code == CodeOffer && n.RefAmount == "":
		return nil, bad("ref_amount", "required in a reversal offer")
	case reversal && n.Code == CodeOffer && strings.HasPrefix(n.RefAmount, "-"):
		return nil, bad("ref_amount", "a reversal offer refers to a positive payment")
	case n.Code == CodeReset && n.RefXTime == 0 && n.RefAmount == "" && n.RefMemo == "":
		return nil, bad("ref_amount", "a reset names what it reset (ref_xtime, ref_amount or ref_memo)")
	case !reversal && n.Code == CodeOffer && (n.RefXTime != 0 || n.RefAmount != ""):
		return nil, bad("ref_amount", "only a reversal offer refers to another record")
	}
	return n, nil
}

// Values returns the notification's parameters.
func (n *Notification) Values() url.Values {
	v := url.Values{}
	for _, kv := range n.params(true) {
		v.Set(kv[0], kv[1])
	}
	return v
}

// Encode returns the notification URL-encoded, in the canonical order.
func (n *Notification) Encode() string { return encodeParams(n.params(true)) }

// Canonical is the record as it is hashed and signed: every parameter but
// the verification ones, present ones only, in the order of sections 5.1
// and 5.3, each key=value URL-encoded, joined by '&' (docs/ipp.md).
func (n *Notification) Canonical() string { return encodeParams(n.params(false)) }

// SHA1 is the record's SHA1 in lowercase hex: what query verification
// looks up.
func (n *Notification) SHA1() string {
	s := sha1.Sum([]byte(n.Canonical()))
	return hex.EncodeToString(s[:])
}

func (n *Notification) params(ver bool) [][2]string {
	ps := [][2]string{{"ipp_version", n.Version}, {"ipp_code", strconv.Itoa(int(n.Code))}, {"ipp_status", n.Status}, {"ipp_relay", n.Relay}}
	if ver {
		ps = append(ps, [2]string{"ver_scheme", n.Scheme}, [2]string{"ver_data", n.VerData})
	}
	ps = append(ps, [2]string{"xtime", strconv.FormatInt(n.XTime, 10)}, [2]string{"amount", n.Amount}, [2]string{"unit", n.Unit},
		[2]string{"from", n.From}, [2]string{"to", n.To}, [2]string{"memo", n.Memo})
	if n.RefXTime != 0 {
		ps = append(ps, [2]string{"ref_xtime", strconv.FormatInt(n.RefXTime, 10)})
	}
	ps = append(ps, [2]string{"ref_amount", n.RefAmount}, [2]string{"ref_memo", n.RefMemo})
	return ps
}

func encodeParams(ps [][2]string) string {
	var b strings.Builder
	for _, kv := range ps {
		if kv[1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[1]))
	}
	return b.String()
}

// Reversal reports whether the notification is about a reversal (a
// negative amount).
func (n *Notification) Reversal() bool { return strings.HasPrefix(n.Amount, "-") }

// OriginalKey names the payment a notification is about: its offer's
// relay, from, to, xtime, amount, unit and memo. A reset names the
// original through ref_xtime, ref_amount and ref_memo; an approval or
// voidance repeats it exactly.
func (n *Notification) OriginalKey() string {
	xtime, amount, memo := n.XTime, n.Amount, n.Memo
	if n.Code == CodeReset {
		if n.RefXTime != 0 {
			xtime = n.RefXTime
		}
		if n.RefAmount != "" {
			amount = n.RefAmount
		}
		if n.RefMemo != "" {
			memo = n.RefMemo
		}
	}
	return PaymentKey(n.Relay, n.From, n.To, xtime, amount, n.Unit, memo)
}

// PaymentKey is the key of a payment record: a hash of its offer's
// identifying parameters, so that both accountants compute the same.
func PaymentKey(relay, from, to string, xtime int64, amount, unit, memo string) string {
	s := sha1.Sum([]byte(strings.Join([]string{relay, from, to, strconv.FormatInt(xtime, 10), canonicalAmount(amount), unit, memo}, "\n")))
	return hex.EncodeToString(s[:])
}

func parseXTime(s string) (int64, error) {
	if s == "" || len(s) > 12 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a unixtime")
	}
	return strconv.ParseInt(s, 10, 64)
}

// validAmount reports whether s is a decimal: an optional '-', digits, and
// optionally '.' and digits; no exponent, no '+', at most 18 digits.
func validAmount(s string) bool {
	s = strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || len(whole)+len(frac) > 18 {
		return false
	}
	return strings.TrimLeft(whole, "0123456789") == "" && strings.TrimLeft(frac, "0123456789") == ""
}

func isZero(s string) bool { return strings.Trim(s, "-0.") == "" }

// canonicalAmount strips a decimal's insignificant zeros, so that 100,
// 100.0 and 100.00 name the same payment.
func canonicalAmount(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	if whole == "" {
		whole = "0"
	}
	if frac != "" {
		whole += "." + frac
	}
	if neg {
		return "-" + whole
	}
	return whole
}

// ToMinor converts a decimal amount to minor units of exp decimals; ok is
// false when it is finer than the unit or too large.
func ToMinor(s string, exp int) (int64, bool) {
	if !validAmount(s) {
		return 0, false
	}
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > exp {
		return 0, false
	}
	digits := whole + frac + strings.Repeat("0", exp-len(frac))
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

func validUnit(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidBrand reports whether s is a brand as section 1 names them,
// [subdomain.]domain[/path]: a host of DNS labels (an IP address and a
// port are allowed, for tests and private deployments), then an optional
// path of unreserved characters and '/', lowercase, no query, no scheme.
func ValidBrand(s string) bool {
	if s == "" || len(s) > maxBrand || s != strings.ToLower(s) {
		return false
	}
	host, path, _ := strings.Cut(s, "/")
	if h, port, ok := strings.Cut(host, ":"); ok {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strings.TrimLeft(port, "0123456789") != "" {
			return false
		}
		host = h
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	for _, c := range path {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~/", c)) {
			return false
		}
	}
	return !strings.Contains(path, "//") && !strings.Contains("/"+path+"/", "/../") && !strings.Contains("/"+path+"/", "/./")
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
