package ilpinvoice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/qr"
)

// Kinds of the rail's records.
const (
	kindInvoice  = "invoice"
	kindAccount  = "account"
	kindTransfer = "transfer"
)

// The statuses of an invoice.
const (
	statusUnpaid    = "unpaid"
	statusPaid      = "paid"
	statusExpired   = "expired"
	statusCancelled = "cancelled"
)

// invoice is an invoice the merchant's DFSP issued for a QR code.
type invoice struct {
	ID       string `json:"id"`
	TranID   string `json:"tranId"`
	Merchant string `json:"merchant"` // the retailer: its ledger account's name
	Name     string `json:"name"`
	Amount   int64  `json:"amount"` // minor units of the ledger's currency
	Status   string `json:"status"` // unpaid, paid or cancelled (expired is read off ExpiresAt)
	Info     string `json:"info,omitempty"`
	// Customer is the identifier the POS named, to notify its DFSP.
	Customer  string    `json:"customer,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Transfer and PaidBy say which transfer paid it, from which DFSP.
	Transfer string    `json:"transfer,omitempty"`
	PaidBy   string    `json:"paidBy,omitempty"`
	PaidAt   time.Time `json:"paidAt,omitzero"`
	Closed   bool      `json:"closed,omitempty"` // the POS confirmed the sale
	Refunded string    `json:"refunded,omitempty"`
	// Refused are the transfers this invoice refused for good (rejected
	// while executing): none of them can pay it afterwards.
	Refused []string `json:"refused,omitempty"`
	Version int64    `json:"-"`
}

// status is the invoice's status at now.
func (v *invoice) status(now time.Time) string {
	if v.Status == statusUnpaid && !now.Before(v.ExpiresAt) {
		return statusExpired
	}
	return v.Status
}

func (r *Rail) invoiceURL(id string) string { return r.base + "/invoice/" + id }

// newInvoiceID is a short random id: the invoice's URL must fit the QR
// code's merchant-account template with room to spare.
func newInvoiceID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// customerOf reads the identifier a customer is known by in the directory
// from a createQrCode request's customer: profileId, else msisdn.
func customerOf(raw json.RawMessage) string {
	var c struct {
		ProfileID string `json:"profileId"`
		Msisdn    string `json:"msisdn"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &c) != nil {
		return ""
	}
	if c.ProfileID != "" {
		return c.ProfileID
	}
	return c.Msisdn
}

// Offer issues the invoice of a new QR code: its URL goes in the code's
// template, and a notification to the customer's DFSP is queued when the
// POS named the customer.
func (r *Rail) Offer(_ context.Context, o *partners.OfferRequest) (*partners.Offer, error) {
	if o.Amount == nil || o.Amount.Amount <= 0 {
		return nil, fmt.Errorf("%w: an invoice needs an amount", partners.ErrNotOffered)
	}
	if o.Amount.Currency != r.opts.Currency {
		return nil, fmt.Errorf("%w: the ledger settles in %s, the code is in %s", partners.ErrNotOffered, r.opts.Currency, o.Amount.Currency)
	}
	if !validName(o.RetailerID) || o.RetailerID == feeAccount {
		return nil, fmt.Errorf("%w: retailer id %q cannot name a ledger account (letters, digits, '_', '-', '~')", partners.ErrNotOffered, o.RetailerID)
	}
	name := o.RetailerID
	if o.Merchant != nil && o.Merchant.MerchantName.Name != "" {
		name = o.Merchant.MerchantName.Name
	}
	v := &invoice{
		ID: newInvoiceID(), TranID: o.TranID, Merchant: o.RetailerID, Name: name, Amount: o.Amount.Amount,
		Status: statusUnpaid, Customer: customerOf(o.Customer), ExpiresAt: o.ExpiresAt,
	}
	v.Info = "Payment " + o.TranID + " at " + name
	rec, err := r.record(kindInvoice, v.ID, v, "tran:"+o.TranID)
	if err != nil {
		return nil, err
	}
	// The invoice is the retailer's (the switch would say so too): on a
	// store spread over shards it lives with the retailer's payments, and
	// is committed with the approval of one. Every later write of it is of
	// the record read back, so it keeps this Retailer.
	rec.Retailer = o.RetailerID
	offer := &partners.Offer{
		Accounts:  []qr.MerchantAccount{{GUID: GUID, Fields: []qr.Field{{Tag: "01", Value: r.invoiceURL(v.ID)}}}},
		Reference: r.invoiceURL(v.ID),
		Display:   map[string]string{"invoiceUrl": r.invoiceURL(v.ID)},
		Records:   []*partners.Record{rec},
	}
	if v.Customer != "" && r.opts.DirectoryURL != "" {
		payload, _ := json.Marshal(notification{Invoice: v.ID, Customer: v.Customer})
		offer.Advices = append(offer.Advices, &partners.NewAdvice{Kind: partners.KindNotification, Payload: payload})
	}
	return offer, nil
}

// record encodes v as one of the rail's records.
func (r *Rail) record(kind, key string, v any, index ...string) (*partners.Record, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &partners.Record{Kind: kind, Key: key, Data: b, Index: index}, nil
}

// invoiceRecord reads an invoice. Every write of an invoice is of the
// record it returns, with new Data: it keeps its Retailer (and its index).
func (r *Rail) invoiceRecord(ctx context.Context, id string) (*invoice, *partners.Record, error) {
	rec, err := r.records.Get(ctx, kindInvoice, id)
	if err != nil {
		return nil, nil, err
	}
	var v invoice
	if err := json.Unmarshal(rec.Data, &v); err != nil {
		return nil, nil, fmt.Errorf("decoding invoice %s: %w", id, err)
	}
	v.Version = rec.Version
	return &v, rec, nil
}

// invoiceOfTran finds the invoice of a QR code.
func (r *Rail) invoiceOfTran(ctx context.Context, tranID string) (*invoice, *partners.Record, error) {
	rs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindInvoice, Index: "tran:" + tranID, Limit: 1})
	if err != nil {
		return nil, nil, err
	}
	if len(rs) == 0 {
		return nil, nil, partners.ErrNotFound
	}
	return r.invoiceRecord(ctx, rs[0].Key)
}

// invoiceView is GET …/invoice/{id}: the document's shape (section 4.2).
type invoiceView struct {
	Account        string `json:"account"`
	Name           string `json:"name"`
	CurrencyCode   string `json:"currencyCode"`
	CurrencySymbol string `json:"currencySymbol"`
	Amount         string `json:"amount"`
	Status         string `json:"status"`
	InvoiceInfo    string `json:"invoiceInfo"`
}

func (r *Rail) accountURL(name string) string { return r.base + "/ledger/accounts/" + name }

func (r *Rail) view(v *invoice) *invoiceView {
	return &invoiceView{
		Account: r.accountURL(v.Merchant), Name: v.Name, CurrencyCode: r.alpha, CurrencySymbol: symbol(r.alpha),
		Amount: qr.FormatMinor(v.Amount, r.exp), Status: v.status(r.now()), InvoiceInfo: v.Info,
	}
}

func (r *Rail) getInvoice(w http.ResponseWriter, req *http.Request) {
	v, _, err := r.invoiceRecord(req.Context(), req.PathValue("id"))
	if errors.Is(err, partners.ErrNotFound) {
		writeError(w, http.StatusNotFound, "NotFoundError", "no invoice has this id")
		return
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	writeJSON(w, http.StatusOK, r.view(v))
}

// receiverView is GET …/receivers/{id} (the document's section 1.7 shape),
// for an invoice: who is paid, to which ledger account and ILP address.
type receiverView struct {
	Type           string `json:"type"`
	Name           string `json:"name"`
	Account        string `json:"account"`
	CurrencyCode   string `json:"currencyCode"`
	CurrencySymbol string `json:"currencySymbol"`
	ImageURL       string `json:"imageUrl,omitempty"`
	// What the document's receiver lacks and a payer needs for an invoice.
	Address string `json:"address"`
	Amount  string `json:"amount"`
	Status  string `json:"status"`
}

func (r *Rail) getReceiver(w http.ResponseWriter, req *http.Request) {
	v, _, err := r.invoiceRecord(req.Context(), req.PathValue("id"))
	if errors.Is(err, partners.ErrNotFound) {
		writeError(w, http.StatusNotFound, "NotFoundError", "no receiver has this id")
		return
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	writeJSON(w, http.StatusOK, &receiverView{
		Type: "invoice", Name: v.Name, Account: r.accountURL(v.Merchant), CurrencyCode: r.alpha, CurrencySymbol: symbol(r.alpha),
		Address: r.address(v), Amount: qr.FormatMinor(v.Amount, r.exp), Status: v.status(r.now()),
	})
}

// address is the ILP address of an invoice: the merchant's account under
// the ledger's prefix, and the invoice (RFC 15 segments).
func (r *Rail) address(v *invoice) string { return r.opts.LedgerPrefix + v.Merchant + "." + v.ID }

// quote answers GET …/quoteDestinationAmount?receiver=URL&destinationAmount=D
// with the source amount a DFSP debits its customer: the destination amount
// and the configured fees, rounded up to the currency's minor unit.
func (r *Rail) quote(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	dest, err := parseMoney(q.Get("destinationAmount"), r.exp)
	if err != nil || dest <= 0 {
		writeError(w, http.StatusBadRequest, "InvalidQueryParameterError", "destinationAmount must be a positive decimal amount")
		return
	}
	if rcv := q.Get("receiver"); rcv != "" {
		id := rcv[strings.LastIndex(rcv, "/")+1:]
		if _, _, err := r.invoiceRecord(req.Context(), id); errors.Is(err, partners.ErrNotFound) {
			writeError(w, http.StatusNotFound, "NotFoundError", "no receiver "+rcv)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"sourceAmount": qr.FormatMinor(dest+r.feeFor(dest), r.exp), "destinationAmount": qr.FormatMinor(dest, r.exp),
		"feeAccount": r.accountURL(feeAccount),
	})
}

// closeInvoice marks the invoice of a code closed (the POS confirmed).
func (r *Rail) closeInvoice(ctx context.Context, tranID string) error {
	for range 16 {
		v, rec, err := r.invoiceOfTran(ctx, tranID)
		if errors.Is(err, partners.ErrNotFound) {
			return nil // a code paid on this rail always has one; nothing to close
		}
		if err != nil {
			return err
		}
		if v.Closed {
			return nil
		}
		v.Closed = true
		rec.Data, _ = json.Marshal(v)
		if err = r.records.Commit(ctx, rec); !errors.Is(err, partners.ErrConflict) {
			return err
		}
	}
	return errors.New("closing the invoice: too many concurrent changes")
}

// notification is the payload of an invoice's notification advice.
type notification struct {
	Invoice  string `json:"invoice"`
	Customer string `json:"customer"`
}

// Deliver sends an invoice's notification to the customer's DFSP: it looks
// the customer up in the central directory, then posts the invoice's URL to
// the DFSP's SPSP server. A customer the directory does not know, or a DFSP
// that refuses, ends it (failed); anything else is repeated.
func (r *Rail) Deliver(ctx context.Context, a *partners.Advice) *partners.Answer {
	start := time.Now()
	ans := &partners.Answer{Outcome: outcome.Unknown}
	defer func() { ans.Latency = time.Since(start) }()
	if a.Kind != partners.KindNotification {
		ans.Outcome, ans.Err = outcome.Failed, fmt.Errorf("the invoice rail delivers no %s advice", a.Kind)
		return ans
	}
	var n notification
	if err := json.Unmarshal(a.Payload, &n); err != nil {
		ans.Outcome, ans.Err = outcome.Failed, fmt.Errorf("notification payload: %w", err)
		return ans
	}
	v, _, err := r.invoiceRecord(ctx, n.Invoice)
	if err != nil {
		ans.Err = fmt.Errorf("reading invoice %s: %w: %w", n.Invoice, err, outcome.ErrNotSent)
		return ans
	}
	q := url.Values{"identifier": {n.Customer}, "identifierType": {r.opts.IdentifierType}}
	status, body, err := r.call(ctx, http.MethodGet, strings.TrimRight(r.opts.DirectoryURL, "/")+"/resources?"+q.Encode(), nil)
	ans.Code = "DIRECTORY " + strconv.Itoa(status)
	switch {
	case err != nil:
		ans.Err = fmt.Errorf("looking up %s: %w", n.Customer, err)
		return ans
	case status == http.StatusNotFound:
		ans.Outcome, ans.Err = outcome.Failed, fmt.Errorf("the directory does not know %s", n.Customer)
		return ans
	case status != http.StatusOK:
		ans.Err = fmt.Errorf("the directory answered %d", status)
		return ans
	}
	var found struct {
		SPSPServer   string `json:"spspServer"`
		SPSPReceiver string `json:"spspReceiver"` // the document's examples use both names
	}
	if json.Unmarshal(body, &found) != nil || found.SPSPServer+found.SPSPReceiver == "" {
		ans.Err = fmt.Errorf("the directory's answer names no SPSP server: %s", body)
		return ans
	}
	server := found.SPSPServer
	if server == "" {
		server = found.SPSPReceiver
	}
	msg, _ := json.Marshal(map[string]string{
		"invoiceUrl": r.invoiceURL(v.ID), "senderIdentifier": n.Customer,
		"memo": fmt.Sprintf("Invoice from %s for %s %s", v.Name, qr.FormatMinor(v.Amount, r.exp), r.alpha),
	})
	ans.Sent = msg
	status, body, err = r.call(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/invoices", msg)
	ans.Received = body
	ans.Code = "HTTP " + strconv.Itoa(status)
	switch {
	case err != nil:
		ans.Code, ans.Err = "", err
	case status >= 200 && status < 300:
		ans.Outcome = outcome.Successful
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		ans.Err = fmt.Errorf("the DFSP answered %d", status)
	default:
		ans.Outcome, ans.Err = outcome.Failed, fmt.Errorf("the DFSP refused the notification: %d", status)
	}
	return ans
}

// call makes one outbound request and reads its answer.
func (r *Rail) call(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", err, outcome.ErrNotSent)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, err
}

// --- money ------------------------------------------------------------------

// parseMoney reads a decimal amount (a JSON number's or a string's text)
// into minor units of exp decimals.
func parseMoney(s string, exp int) (int64, error) {
	s = strings.TrimSpace(strings.Trim(strings.TrimSpace(s), `"`))
	rat, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, "eE/") {
		return 0, fmt.Errorf("amount %q is not a decimal", s)
	}
	minor := new(big.Rat).Mul(rat, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)))
	if !minor.IsInt() || !minor.Num().IsInt64() {
		return 0, fmt.Errorf("amount %q is finer than the currency's %d decimals, or too large", s, exp)
	}
	return minor.Num().Int64(), nil
}

// symbol is a currency's symbol, for the invoice's currencySymbol; its
// alphabetic code when it has no common one.
func symbol(alpha string) string {
	if s, ok := map[string]string{"USD": "$", "EUR": "€", "GBP": "£", "ZAR": "R", "JPY": "¥", "INR": "₹", "KES": "KSh", "NGN": "₦", "BRL": "R$"}[alpha]; ok {
		return s
	}
	return alpha
}

// --- answers ----------------------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeError answers as five-bells ledgers do: {"id": error name,
// "message": …}.
func writeError(w http.ResponseWriter, status int, id, msg string) {
	writeJSON(w, status, map[string]string{"id": id, "message": msg})
}

func (r *Rail) storeDown(w http.ResponseWriter, err error) {
	partners.SetCause(w, err)
	writeError(w, http.StatusServiceUnavailable, "UnavailableError", "the ledger's store is unavailable; try again")
}
