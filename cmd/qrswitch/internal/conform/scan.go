package conform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/qrswitch/qrswitch/internal/openapi/contract"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum"
	"github.com/qrswitch/qrswitch/qr"
)

// maxScanBody bounds a scan notification's body, as the switch does.
const maxScanBody = 64 << 10

// scanned is a scan notification the kit received while a code waited for
// it, with what was wrong with it.
type scanned struct {
	notification *wire.ScanNotification // nil when it could not be read
	exchange     *Exchange
	problems     []string
}

// desk is the kit's notifyScan: it checks every notification as the switch
// would, answers it, and hands the first one that comes while a code waits
// to that code.
type desk struct {
	doc                 *contract.Document
	user, pass, partner string
	url                 string
	now                 func() time.Time
	mu                  sync.Mutex
	tranID              string        // the code waiting for its scan, "" when none
	got                 chan *scanned // its scan, buffered
	stray               []*Exchange
}

func newDesk(doc *contract.Document, o Options) *desk {
	return &desk{doc: doc, user: o.ScanUsername, pass: o.ScanPassword, partner: o.PartnerID,
		url: o.ScanURL + electrum.ScanPath, now: o.Now}
}

// expect makes tranID the code waiting for a scan, and returns the channel
// its scan arrives on.
func (d *desk) expect(tranID string) <-chan *scanned {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tranID, d.got = tranID, make(chan *scanned, 1)
	return d.got
}

// done ends the wait for a scan.
func (d *desk) done() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tranID, d.got = "", nil
}

func (d *desk) strays() []*Exchange {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stray
}

func (d *desk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.URL.Path != electrum.ScanPath {
		writeDetail(w, http.StatusNotFound, wire.NewErrorDetail(wire.FunctionNotSupported, "No such operation", "", ""))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeDetail(w, http.StatusMethodNotAllowed, wire.NewErrorDetail(wire.FunctionNotSupported, "Method not allowed", "", ""))
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxScanBody))
	x := &Exchange{Direction: "in", Operation: "notifyScan", Method: r.Method, URL: d.url, Request: body(raw)}

	d.mu.Lock()
	waiting, got := d.tranID, d.got
	if got != nil {
		d.tranID, d.got = "", nil // the first notification ends the wait
	}
	d.mu.Unlock()

	s := &scanned{exchange: x}
	status := http.StatusAccepted
	var detail *wire.ErrorDetail
	switch {
	case err != nil:
		s.problems = append(s.problems, "the notification could not be read: "+err.Error())
		status, detail = http.StatusBadRequest, wire.NewErrorDetail(wire.FormatError, "Request body unreadable", "", "")
	default:
		status, detail = d.check(r, raw, waiting, s)
	}
	var answer []byte
	if detail != nil {
		if len(s.problems) > 0 {
			detail.DetailMessage = wire.Detail(strings.Join(s.problems, "; "))
		}
		answer = writeDetail(w, status, detail)
	} else {
		w.WriteHeader(status)
	}
	x.Status, x.Answer, x.answer = status, body(answer), answer
	x.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	if got == nil {
		d.mu.Lock()
		d.stray = append(d.stray, x)
		d.mu.Unlock()
		return
	}
	got <- s
}

// check checks a scan notification as the switch does and against the
// interface, recording what is wrong in s, and returns the answer: 202 and
// no body when nothing is, else 401 or 400 and an ErrorDetail.
func (d *desk) check(r *http.Request, raw []byte, waiting string, s *scanned) (int, *wire.ErrorDetail) {
	user, pass, ok := r.BasicAuth()
	switch {
	case !ok:
		s.problems = append(s.problems, "the notification carries no HTTP Basic credentials; the interface requires them on every call")
	case d.user != "" && (user != d.user || pass != d.pass):
		s.problems = append(s.problems, fmt.Sprintf("the notification's credentials (user %q) are not the scan credentials given to the kit", user))
	}
	if len(s.problems) > 0 {
		return http.StatusUnauthorized, wire.NewErrorDetail(wire.GeneralError, "Invalid credentials", "", "")
	}
	if err := d.doc.CheckRequest(r, raw); err != nil {
		s.problems = append(s.problems, "against the interface: "+err.Error())
	}
	var n wire.ScanNotification
	if err := wire.Decode(raw, &n); err != nil {
		s.problems = append(s.problems, "malformed ScanNotification: "+err.Error())
		return http.StatusBadRequest, wire.FormatFailure(err, "").Detail
	}
	s.notification = &n
	if err := n.Validate(); err != nil {
		s.problems = append(s.problems, "invalid ScanNotification: "+err.Error())
	}
	errorType := wire.FormatError
	switch {
	case waiting == "":
		s.problems = append(s.problems, "no code is waiting for a scan")
		errorType = wire.UnableToLocateRecord
	case n.TranID != waiting:
		s.problems = append(s.problems, fmt.Sprintf("tranId %q is not the code's %q", n.TranID, waiting))
		errorType = wire.InvalidTranID
	}
	if d.partner != "" && n.Partner != nil && n.Partner.ID != d.partner {
		s.problems = append(s.problems, fmt.Sprintf("partner.id %q is not the partner's %q", n.Partner.ID, d.partner))
	}
	if len(s.problems) > 0 {
		return http.StatusBadRequest, wire.NewErrorDetail(errorType, "Scan refused by the conformance kit", n.ID, n.TranID)
	}
	return http.StatusAccepted, nil
}

// writeDetail answers with an ErrorDetail and returns the body written.
func writeDetail(w http.ResponseWriter, status int, d *wire.ErrorDetail) []byte {
	b, _ := json.Marshal(d) // an ErrorDetail always marshals
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
	return b
}

// code is a QR code the kit shows for a scan.
type code struct {
	tranID, payload string
}

// newCode builds a QR code as the switch issues them: a dynamic EMVCo
// merchant-presented code with the Electrum template carrying the tranId.
func (k *kit) newCode() (*code, error) {
	tranID := newTranID()
	payload, err := qr.Encode(&qr.Payload{
		Scheme:        qr.SchemeEMVCo,
		Accounts:      []qr.MerchantAccount{qr.ElectrumAccount(tranID)},
		MCC:           merchantType,
		Currency:      k.o.Currency,
		Amount:        k.o.Amount,
		HasAmount:     true,
		Country:       merchantCountry,
		MerchantName:  merchantName,
		City:          merchantCity,
		TerminalLabel: terminalID,
	})
	if err != nil {
		return nil, fmt.Errorf("building the QR code: %w", err)
	}
	return &code{tranID: tranID, payload: payload}, nil
}

// scan shows c, gets it scanned (by the person, or by the simulator at
// ScanBy) and returns the notification that came, recorded in cs. The
// notification is nil when none came or it could not be read.
func (k *kit) scan(ctx context.Context, cs *Case, c *code, which string) *wire.ScanNotification {
	got := k.desk.expect(c.tranID)
	defer k.desk.done()
	k.show(c, which)
	ctx, cancel := context.WithTimeout(ctx, k.o.ScanWait)
	defer cancel()
	delivered := make(chan error, 1)
	if k.o.ScanBy != "" {
		go func() { delivered <- k.scanBy(ctx, c) }()
	}
	for {
		select {
		case s := <-got:
			cs.Exchanges = append(cs.Exchanges, s.exchange)
			cs.Problems = append(cs.Problems, s.problems...)
			if s.notification != nil && s.notification.PartnerPaymentToken != "" {
				cs.Notes = append(cs.Notes, "the scan carries a partnerPaymentToken; the kit echoes it in the payment request")
			}
			return s.notification
		case err := <-delivered:
			if err != nil {
				cs.Problems = append(cs.Problems, err.Error())
				return nil
			}
			delivered = nil // answered: the notification is in got
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				cs.Problems = append(cs.Problems, fmt.Sprintf("no scan notification within %s", k.o.ScanWait))
			} else {
				cs.Problems = append(cs.Problems, "the run was stopped while waiting for the scan")
			}
			return nil
		}
	}
}

// show prints the code for the person scanning.
func (k *kit) show(c *code, which string) {
	out := k.o.Out
	fmt.Fprintf(out, "\nScan %s with the partner's app (tranId %s):\n\n", which, c.tranID)
	if art, err := terminalQR(c.payload); err == nil {
		fmt.Fprint(out, art)
	}
	fmt.Fprintf(out, "\npayload: %s\n", c.payload)
	if k.o.QRFile != "" {
		if png, err := qr.PNG(c.payload, 512); err == nil {
			if err := os.WriteFile(k.o.QRFile, png, 0o644); err == nil {
				fmt.Fprintf(out, "image:   %s\n", k.o.QRFile)
			}
		}
	}
	fmt.Fprintf(out, "The app must send its ScanNotification to POST %s within %s.\n", k.desk.url, k.o.ScanWait)
}

// scanBy asks a simulator's customer app to scan c. Its answer is the
// kit's own answer to the notification, passed through; an answer of its
// own (no notification delivered) is an error.
func (k *kit) scanBy(ctx context.Context, c *code) error {
	b, _ := json.Marshal(map[string]string{"qrCode": c.payload, "partnerPaymentToken": "conform-" + newTranID()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.o.ScanBy, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("asking %s to scan: %w", k.o.ScanBy, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.scanner.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return fmt.Errorf("asking %s to scan: %w", k.o.ScanBy, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxScanBody))
	if resp.Header.Get("X-Sim-Error") != "" || resp.StatusCode >= 500 {
		return fmt.Errorf("%s could not deliver the scan: %d %s", k.o.ScanBy, resp.StatusCode, answer)
	}
	return nil
}
