// Package dfspsim owns the simulator of the ilpinvoice rail's other side:
// the central directory and the customers' DFSPs of seed 001. A DFSP here
// takes invoice notifications from the merchant's DFSP (the switch) on its
// SPSP server, keeps them as its customers' pending invoices, and pays an
// invoice on the switch's two-phase ledger the way the document's DFSPs do:
// it reads the invoice and the receiver, asks for a quote, prepares a
// transfer from its own account with a PREIMAGE-SHA-256 condition and an
// expiry, and executes it with the fulfillment. Faults make it misbehave
// the ways a real DFSP can (never fulfil, fulfil wrong, fulfil too late,
// repeat itself, pay short), so tests and people can watch the ledger
// refuse each.
//
// # Endpoints
//
//	GET  /directory/resources?identifier=…&identifierType=…   the central directory
//	POST /dfsp/{id}/spsp/invoices                              a DFSP's SPSP server: invoice notifications
//	GET  /sim/v1/dfsps/{id}/invoices                           the notifications a DFSP holds
//	POST /sim/v1/pay      {"invoiceUrl"|"qrCode", "dfsp", "fault", "ilpOnly"}   pay an invoice
//	POST /sim/v1/customers {"identifier", "dfsp"}              register a customer in the directory
//	POST /sim/v1/faults   {"notifications": "down"|""}         refuse notifications with 503
//	GET  /sim/v1/ledger                                        every transfer the DFSPs made
//	POST /sim/v1/reset                                         forget notifications, transfers and faults
package dfspsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/cond"
	"github.com/qrswitch/qrswitch/qr"
)

// GUID is the provider id of the invoice rail's template in a QR code
// (sub-tag 01 holds the invoice's URL). It is the rail's ilpinvoice.GUID.
const GUID = "org.interledger.invoice"

// Faults of a payment (PayRequest.Fault).
const (
	// FaultNone pays properly.
	FaultNone = ""
	// FaultNeverFulfil prepares the transfer and walks away: the ledger
	// rejects it at its expiry and gives the funds back.
	FaultNeverFulfil = "never_fulfil"
	// FaultWrongFulfillment sends a fulfillment that does not meet the
	// condition.
	FaultWrongFulfillment = "wrong_fulfillment"
	// FaultLate prepares with a short expiry, waits until the ledger has
	// rejected the transfer, then fulfils.
	FaultLate = "late"
	// FaultDuplicate sends the prepare and the fulfillment twice.
	FaultDuplicate = "duplicate"
	// FaultShort credits the merchant one minor unit less than asked.
	FaultShort = "short"
)

// DFSP is a customer's DFSP the simulator plays: its credentials on the
// switch's ledger and its account there.
type DFSP struct {
	ID, Name           string
	Username, Password string
	Account            string
}

// Config sets up a Sim.
type Config struct {
	// LedgerURL is the rail's base URL on the switch
	// ({switch}/ilpinvoice/{partner}); ledger calls go below it.
	LedgerURL string
	// SwitchTLS trusts the switch. Nil: the system roots.
	SwitchTLS *tls.Config
	// BaseURL is the simulator's own URL, for the SPSP server URLs the
	// directory answers.
	BaseURL string
	// DFSPs are the DFSPs played; the first takes unregistered customers.
	DFSPs []DFSP
	// Customers maps identifiers to DFSP ids in the directory. Default:
	// the document's customers 26547070 and 92806391 at the first DFSP.
	Customers map[string]string
	// TransferLife is the expiry of a prepared transfer. Default 30 s;
	// FaultLate uses 1 s.
	TransferLife time.Duration
}

// Sim is the directory and the DFSPs. It is safe for concurrent use.
type Sim struct {
	cfg    Config
	client *http.Client

	mu        sync.Mutex
	customers map[string]string
	notes     map[string][]Notification // by DFSP id
	transfers []Transfer
	down      bool
	changed   chan struct{} // closed and replaced on every change
}

// Notification is an invoice notification a DFSP received.
type Notification struct {
	InvoiceURL       string    `json:"invoiceUrl"`
	SenderIdentifier string    `json:"senderIdentifier"`
	Memo             string    `json:"memo"`
	ReceivedAt       time.Time `json:"receivedAt"`
	Count            int       `json:"count"` // deliveries of the same invoice
}

// Transfer is what a DFSP did to pay an invoice, and how the ledger
// answered each step.
type Transfer struct {
	ID          string    `json:"id"`
	DFSP        string    `json:"dfsp"`
	InvoiceURL  string    `json:"invoiceUrl"`
	Amount      string    `json:"amount"`
	Fault       string    `json:"fault,omitempty"`
	Prepare     Step      `json:"prepare"`
	Fulfil      *Step     `json:"fulfil,omitempty"`
	State       string    `json:"state"` // the ledger's state of the transfer at the end
	Fulfillment string    `json:"fulfillment,omitempty"`
	At          time.Time `json:"at"`
}

// Step is one ledger call: its status and answer.
type Step struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// New returns a simulator.
func New(cfg Config) *Sim {
	if cfg.TransferLife <= 0 {
		cfg.TransferLife = 30 * time.Second
	}
	s := &Sim{
		cfg:       cfg,
		customers: map[string]string{},
		notes:     map[string][]Notification{},
		changed:   make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: cfg.SwitchTLS, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 16,
		}},
	}
	first := ""
	if len(cfg.DFSPs) > 0 {
		first = cfg.DFSPs[0].ID
	}
	if cfg.Customers == nil {
		cfg.Customers = map[string]string{"26547070": first, "92806391": first}
	}
	for k, v := range cfg.Customers {
		s.customers[k] = v
	}
	return s
}

// Handler serves the directory, the DFSPs' SPSP servers and the controls.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /directory/resources", s.lookup)
	mux.HandleFunc("POST /dfsp/{id}/spsp/invoices", s.notify)
	mux.HandleFunc("GET /sim/v1/dfsps/{id}/invoices", s.pending)
	mux.HandleFunc("POST /sim/v1/pay", s.payHandler)
	mux.HandleFunc("POST /sim/v1/customers", s.addCustomer)
	mux.HandleFunc("POST /sim/v1/faults", s.faults)
	mux.HandleFunc("GET /sim/v1/ledger", s.ledger)
	mux.HandleFunc("POST /sim/v1/reset", s.reset)
	return mux
}

// Close releases idle connections.
func (s *Sim) Close() { s.client.CloseIdleConnections() }

// SPSPServer is the SPSP server URL of a DFSP, as the directory names it.
func (s *Sim) SPSPServer(dfspID string) string {
	return strings.TrimRight(s.cfg.BaseURL, "/") + "/dfsp/" + dfspID + "/spsp"
}

func (s *Sim) dfsp(id string) (DFSP, bool) {
	if id == "" && len(s.cfg.DFSPs) > 0 {
		return s.cfg.DFSPs[0], true
	}
	for _, d := range s.cfg.DFSPs {
		if d.ID == id {
			return d, true
		}
	}
	return DFSP{}, false
}

// touch wakes whoever waits for a change. Called with s.mu held.
func (s *Sim) touch() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// lookup is the central directory (the document's 1.2 shape).
func (s *Sim) lookup(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("identifier")
	s.mu.Lock()
	dfspID, ok := s.customers[id]
	s.mu.Unlock()
	d, known := s.dfsp(dfspID)
	if !ok || !known {
		writeJSON(w, http.StatusNotFound, map[string]string{"id": "NotFoundError", "message": "no user has identifier " + id})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"spspReceiver": s.SPSPServer(d.ID), "type": "payee", "name": "customer " + id, "account": d.Account,
	})
}

// notify is a DFSP's SPSP server taking an invoice notification (the
// document's 3.2 shape).
func (s *Sim) notify(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := s.dfsp(id); !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"id": "NotFoundError", "message": "no DFSP " + id})
		return
	}
	var n Notification
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&n); err != nil || n.InvoiceURL == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"id": "InvalidBodyError", "message": "invoiceUrl is required"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"id": "UnavailableError", "message": "notifications are down (fault)"})
		return
	}
	for i, old := range s.notes[id] {
		if old.InvoiceURL == n.InvoiceURL {
			s.notes[id][i].Count++
			s.touch()
			writeJSON(w, http.StatusOK, s.notes[id][i])
			return
		}
	}
	n.ReceivedAt, n.Count = time.Now().UTC(), 1
	s.notes[id] = append(s.notes[id], n)
	s.touch()
	writeJSON(w, http.StatusCreated, n)
}

// Notifications returns what a DFSP was notified of.
func (s *Sim) Notifications(dfspID string) []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.notes[dfspID])
}

// Changed returns a channel closed at the next change (a notification, a
// transfer): tests wait on events, not on time.
func (s *Sim) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Sim) pending(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"invoices": s.Notifications(r.PathValue("id"))})
}

func (s *Sim) addCustomer(w http.ResponseWriter, r *http.Request) {
	var c struct{ Identifier, DFSP string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&c); err != nil || c.Identifier == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "identifier is required"})
		return
	}
	d, ok := s.dfsp(c.DFSP)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "no DFSP " + c.DFSP})
		return
	}
	s.mu.Lock()
	s.customers[c.Identifier] = d.ID
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"identifier": c.Identifier, "dfsp": d.ID})
}

// SetNotificationsDown makes every DFSP refuse notifications with 503
// (down) or take them again.
func (s *Sim) SetNotificationsDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *Sim) faults(w http.ResponseWriter, r *http.Request) {
	var f struct {
		Notifications string `json:"notifications"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&f); err != nil || (f.Notifications != "" && f.Notifications != "down") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"notifications": "down"} or {"notifications": ""}`})
		return
	}
	s.SetNotificationsDown(f.Notifications == "down")
	writeJSON(w, http.StatusOK, f)
}

// Transfers returns every transfer the DFSPs made.
func (s *Sim) Transfers() []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transfers)
}

func (s *Sim) ledger(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"transfers": s.Transfers()})
}

func (s *Sim) reset(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.notes, s.transfers, s.down = map[string][]Notification{}, nil, false
	s.touch()
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// PayRequest asks a DFSP to pay an invoice.
type PayRequest struct {
	// InvoiceURL is the invoice, or QRCode a payload whose invoice
	// template holds it.
	InvoiceURL string `json:"invoiceUrl,omitempty"`
	QRCode     string `json:"qrCode,omitempty"`
	// DFSP pays (default the first).
	DFSP  string `json:"dfsp,omitempty"`
	Fault string `json:"fault,omitempty"`
	// ILPOnly names the invoice by the ILP packet in the credit's memo
	// only, not by its URL.
	ILPOnly bool `json:"ilpOnly,omitempty"`
}

func (s *Sim) payHandler(w http.ResponseWriter, r *http.Request) {
	var p PayRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&p); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	t, err := s.Pay(r.Context(), p)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error(), "transfer": t})
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// invoiceURL reads the invoice's URL from a payment request.
func invoiceURL(p PayRequest) (string, error) {
	if p.InvoiceURL != "" {
		return p.InvoiceURL, nil
	}
	if p.QRCode == "" {
		return "", errors.New("invoiceUrl or qrCode is required")
	}
	doc, err := qr.Decode(p.QRCode)
	if err != nil {
		return "", fmt.Errorf("reading the QR code: %w", err)
	}
	acct, ok := doc.Account(GUID)
	if !ok {
		return "", errors.New("the QR code carries no invoice template (" + GUID + ")")
	}
	for _, f := range acct.Fields {
		if f.Tag == "01" {
			return f.Value, nil
		}
	}
	return "", errors.New("the invoice template has no URL in sub-tag 01")
}

// Pay pays an invoice from a DFSP's account, as the fault says, and
// returns what the ledger answered. An error says the payment could not
// be attempted (no invoice, an unreadable answer); a ledger's refusal is
// in the Transfer, not an error.
func (s *Sim) Pay(ctx context.Context, p PayRequest) (*Transfer, error) {
	d, ok := s.dfsp(p.DFSP)
	if !ok {
		return nil, fmt.Errorf("no DFSP %q", p.DFSP)
	}
	u, err := invoiceURL(p)
	if err != nil {
		return nil, err
	}
	var inv struct {
		Account, Amount, Status string
	}
	if st, err := s.get(ctx, u, nil, &inv); err != nil || st != http.StatusOK {
		return nil, fmt.Errorf("reading invoice %s: %d %v", u, st, err)
	}
	id := u[strings.LastIndex(u, "/")+1:]
	ledger := strings.TrimRight(s.cfg.LedgerURL, "/")
	var rcv struct{ Address string }
	if st, err := s.get(ctx, ledger+"/receivers/"+id, nil, &rcv); err != nil || st != http.StatusOK {
		return nil, fmt.Errorf("reading receiver %s: %d %v", id, st, err)
	}
	var quote struct {
		SourceAmount, DestinationAmount, FeeAccount string
	}
	q := url.Values{"receiver": {ledger + "/receivers/" + id}, "destinationAmount": {inv.Amount}}
	if st, err := s.get(ctx, ledger+"/quoteDestinationAmount?"+q.Encode(), nil, &quote); err != nil || st != http.StatusOK {
		return nil, fmt.Errorf("quoting %s: %d %v", inv.Amount, st, err)
	}
	debit, credit, fee, err := split(quote.SourceAmount, inv.Amount, p.Fault == FaultShort)
	if err != nil {
		return nil, err
	}

	var preimage [32]byte
	rand.Read(preimage[:])
	ff := cond.Fulfillment{Preimage: preimage[:]}
	life := s.cfg.TransferLife
	if p.Fault == FaultLate {
		life = time.Second
	}
	expires := time.Now().Add(life).UTC()
	tid := newUUID()
	packet, err := (&ilp.Prepare{Amount: minor(inv.Amount), ExpiresAt: expires, ExecutionCondition: sha256.Sum256(preimage[:]), Destination: ilp.Address(rcv.Address)}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding the ILP packet: %w", err)
	}
	memo := map[string]string{"ilp": base64.RawURLEncoding.EncodeToString(packet)}
	if !p.ILPOnly {
		memo["invoice"] = u
	}
	credits := []map[string]any{{"account": inv.Account, "amount": credit, "memo": memo}}
	if fee != "" {
		credits = append(credits, map[string]any{"account": quote.FeeAccount, "amount": fee})
	}
	body, _ := json.Marshal(map[string]any{
		"id": ledger + "/ledger/transfers/" + tid, "ledger": ledger + "/ledger",
		"debits":              []map[string]any{{"account": ledger + "/ledger/accounts/" + d.Account, "amount": debit, "authorized": true}},
		"credits":             credits,
		"execution_condition": ff.Condition().String(),
		"expires_at":          expires.Format("2006-01-02T15:04:05.000Z07:00"),
	})
	t := &Transfer{ID: tid, DFSP: d.ID, InvoiceURL: u, Amount: debit, Fault: p.Fault, At: time.Now().UTC()}
	defer s.keep(t)

	t.Prepare = s.put(ctx, d, ledger+"/ledger/transfers/"+tid, body)
	if p.Fault == FaultDuplicate {
		t.Prepare = s.put(ctx, d, ledger+"/ledger/transfers/"+tid, body)
	}
	if t.Prepare.Status != http.StatusCreated && t.Prepare.Status != http.StatusOK {
		t.State = "refused"
		return t, nil
	}
	switch p.Fault {
	case FaultNeverFulfil:
		t.State = s.state(ctx, d, ledger, tid)
		return t, nil
	case FaultWrongFulfillment:
		rand.Read(preimage[:])
		ff = cond.Fulfillment{Preimage: preimage[:]}
	case FaultLate:
		if err := s.awaitState(ctx, d, ledger, tid, "rejected"); err != nil {
			return t, err
		}
	}
	fb, _ := json.Marshal(map[string]string{"transferId": tid, "fulfillment": ff.String(), "condition": ff.Condition().String()})
	step := s.fulfil(ctx, d, ledger+"/ledger/transfers/"+tid+"/fulfillment", fb)
	if p.Fault == FaultDuplicate {
		step = s.fulfil(ctx, d, ledger+"/ledger/transfers/"+tid+"/fulfillment", fb)
	}
	t.Fulfil = &step
	if step.Status == http.StatusOK {
		t.Fulfillment = ff.String()
	}
	t.State = s.state(ctx, d, ledger, tid)
	return t, nil
}

// split divides a quote's source amount (the debit) into the merchant's
// credit (the invoice's amount) and the fee ("" when none). Short takes
// one minor unit off the debit and the credit.
func split(source, amount string, short bool) (debit, credit, fee string, err error) {
	src, amt := minor(source), minor(amount)
	if src < amt || amt == 0 || decimals(source) != decimals(amount) {
		return "", "", "", fmt.Errorf("quote %s for invoice amount %s", source, amount)
	}
	exp := decimals(amount)
	debit, credit = source, amount
	if short {
		debit, credit = format(src-1, exp), format(amt-1, exp)
	}
	if src > amt {
		fee = format(src-amt, exp)
	}
	return debit, credit, fee, nil
}

// fulfil sends the fulfillment, again while the ledger says the invoice's
// payment request has not reached the switch yet (503 with Retry-After).
func (s *Sim) fulfil(ctx context.Context, d DFSP, u string, body []byte) Step {
	for {
		st := s.put(ctx, d, u, body)
		if st.Status != http.StatusServiceUnavailable {
			return st
		}
		select {
		case <-ctx.Done():
			return st
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// state reads the ledger's state of a transfer.
func (s *Sim) state(ctx context.Context, d DFSP, ledger, id string) string {
	var t struct{ State string }
	if st, err := s.get(ctx, ledger+"/ledger/transfers/"+id, &d, &t); err != nil || st != http.StatusOK {
		return fmt.Sprintf("unknown (%d %v)", st, err)
	}
	return t.State
}

// awaitState reads the transfer until the ledger reports want.
func (s *Sim) awaitState(ctx context.Context, d DFSP, ledger, id, want string) error {
	for {
		if s.state(ctx, d, ledger, id) == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transfer %s never became %s: %w", id, want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Sim) keep(t *Transfer) {
	s.mu.Lock()
	s.transfers = append(s.transfers, *t)
	s.touch()
	s.mu.Unlock()
}

func (s *Sim) get(ctx context.Context, u string, d *DFSP, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	if d != nil {
		req.SetBasicAuth(d.Username, d.Password)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s: %w", u, err)
		}
	}
	return resp.StatusCode, nil
}

func (s *Sim) put(ctx context.Context, d DFSP, u string, body []byte) Step {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return Step{Error: err.Error()}
	}
	req.SetBasicAuth(d.Username, d.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return Step{Error: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	st := Step{Status: resp.StatusCode}
	if json.Valid(b) {
		st.Body = b
	} else {
		st.Error = string(b)
	}
	return st
}

// --- amounts as the ledger writes them ---------------------------------------

func decimals(s string) int {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// minor reads a non-negative decimal as an integer of its own decimals.
func minor(s string) uint64 {
	var n uint64
	for _, c := range s {
		if c >= '0' && c <= '9' {
			n = n*10 + uint64(c-'0')
		}
	}
	return n
}

func format(n uint64, exp int) string {
	s := fmt.Sprintf("%0*d", exp+1, n)
	if exp == 0 {
		return s
	}
	return s[:len(s)-exp] + "." + s[len(s)-exp:]
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
