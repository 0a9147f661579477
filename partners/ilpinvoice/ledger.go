package ilpinvoice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/cond"
	"github.com/qrswitch/qrswitch/qr"
)

// The ledger: accounts and two-phase transfers, each a record. A prepared
// transfer has already taken its amount from its debit accounts (held), so
// no later prepare can spend it again; executing credits it to the credit
// accounts, rejecting (or expiring) gives it back. Every move of money is
// one commit of the transfer and the accounts it moves, at the versions
// read, so concurrent steps on one account never lose an update nor take
// it below zero.
//
// Where the records live. The whole ledger — every account, the merchants'
// included, and every transfer — is records of no retailer: on a store
// spread over shards (partners.ShardSafe, docs/redis-cluster.md) it lives
// in the home slot, in one place, because its accounts are shared: a DFSP's
// account is debited for every retailer's invoices, and the fee account is
// credited by all of them. Only invoices carry their retailer (they are
// created with its QR code) and live with its payments. So the approval of
// a payment (the retailer's shard) and the move of the money (the home
// slot) cannot be one commit; execution is three steps instead, the same on
// every store (SQLite, one Redis, a cluster in one slot or in shards), so
// that every test of the rail proves the path a sharded store takes:
//
//  1. Fence (home slot): the transfer goes prepared → executing, with the
//     verified fulfillment recorded. Neither expiry nor a rejection touches
//     an executing transfer (reject moves prepared transfers only): what
//     decides its fate from now on is the invoice.
//  2. Approval (the retailer's shard): Host.Paid approves the held payment
//     and marks the invoice paid by the transfer, in one commit whose only
//     rail record is the invoice. If the payment or the invoice refuses
//     the money, the transfer is rejected instead (executing → rejected,
//     the DFSP's funds back), after the invoice was made to refuse it for
//     good (cancelled, paid by another transfer, or the transfer named in
//     its Refused list: one versioned write, so that no approval by that
//     transfer can commit afterwards).
//  3. Credit (home slot): executing → executed, the merchant's and the fee
//     account credited, in one versioned commit, repeated on conflict and
//     done once (an executed transfer is never executed again).
//
// The invoice is the one record that decides: paid by the transfer means
// the transfer executes; refusing it means the transfer is rejected; both
// are written to it with a version check, so they exclude each other. A
// crash between the steps leaves an executing transfer, due (DueAt) a few
// seconds after its fulfillment arrived: Sweep, every sweep_interval and
// at start, resolves it — step 3 when its invoice is paid by it, else step
// 2 again, which approves or refuses — as does the DFSP sending its
// fulfillment again. A payment request that has not reached the switch yet
// (Host.Paid's ErrNoRequestYet) leaves the transfer executing, due at its
// expiry, and the DFSP is told to send the fulfillment again (503), as
// before: a resend, or the sweep at its expiry, tries step 2 again, and a
// transfer past its expiry whose payment request never came is rejected
// (expired). To the DFSPs an executing transfer is still prepared: it has
// no fulfillment to read until it is executed.
//
// The price: the ledger's traffic (prepares, the credits, refunds) stays on
// the home slot's master, whatever the number of shards; only the invoice
// and the approval are spread with the retailers.

// account is a ledger account: a merchant's (a retailer's) or a DFSP's.
type account struct {
	Name    string `json:"name"`
	Balance int64  `json:"balance"` // minor units; never below zero
	Owner   string `json:"owner,omitempty"`
}

// The states of a transfer.
const (
	statePrepared = "prepared"
	// stateExecuting is internal: the fulfillment was verified and the
	// invoice's payment is being approved (see the steps above). DFSPs see
	// it as prepared.
	stateExecuting = "executing"
	stateExecuted  = "executed"
	stateRejected  = "rejected"
)

// resolveAfter is how long after its fulfillment an executing transfer
// becomes due to the sweep: the handler that made it executing normally
// finishes it within milliseconds, and a sweep meanwhile would only repeat
// its steps (safely, but for nothing). After a crash, the sweep resolves it
// this long after the fulfillment arrived, or the DFSP's resend does.
const resolveAfter = 2 * time.Second

// transfer is a ledger transfer as it is stored.
type transfer struct {
	ID          string          `json:"id"`
	Debits      []movement      `json:"debits"`
	Credits     []movement      `json:"credits"`
	Condition   string          `json:"execution_condition"`
	ExpiresAt   time.Time       `json:"expires_at"`
	State       string          `json:"state"`
	Fulfillment string          `json:"fulfillment,omitempty"` // base64url DER, once executing
	Rejection   string          `json:"rejection_reason,omitempty"`
	PreparedBy  string          `json:"prepared_by"` // the DFSP that prepared it
	Invoice     string          `json:"invoice,omitempty"`
	Refund      bool            `json:"refund,omitempty"`
	Timeline    timeline        `json:"timeline"`
	Request     json.RawMessage `json:"request,omitempty"` // the prepare as received, for idempotency
	// FulfilledAt is when the fulfillment was verified (the transfer went
	// executing); ResolveAt is when an executing transfer is due to the
	// sweep (its record's DueAt).
	FulfilledAt time.Time `json:"fulfilled_at,omitzero"`
	ResolveAt   time.Time `json:"resolve_at,omitzero"`
}

type movement struct {
	Account    string          `json:"account"`
	Amount     int64           `json:"amount"`
	Authorized bool            `json:"authorized,omitempty"`
	Memo       json.RawMessage `json:"memo,omitempty"`
}

type timeline struct {
	PreparedAt time.Time `json:"prepared_at,omitzero"`
	ExecutedAt time.Time `json:"executed_at,omitzero"`
	RejectedAt time.Time `json:"rejected_at,omitzero"`
}

// maxPrepare bounds a prepare's body.
const maxPrepare = 64 << 10

// openAccounts opens every DFSP's account with its opening balance, once.
func (r *Rail) openAccounts(ctx context.Context) error {
	for _, d := range r.opts.DFSPs {
		if _, err := r.records.Get(ctx, kindAccount, d.Account); err == nil {
			continue
		} else if !errors.Is(err, partners.ErrNotFound) {
			return fmt.Errorf("opening account %s: %w", d.Account, err)
		}
		bal, _ := parseMoney(d.Balance, r.exp)
		rec, _ := r.record(kindAccount, d.Account, &account{Name: d.Account, Balance: bal, Owner: d.ID})
		if err := r.records.Commit(ctx, rec); err != nil && !errors.Is(err, partners.ErrDuplicate) {
			return fmt.Errorf("opening account %s: %w", d.Account, err)
		}
	}
	return nil
}

// accountName reads an account reference: a bare name or an account URL.
func accountName(ref string) string {
	ref = strings.TrimRight(ref, "/")
	return ref[strings.LastIndex(ref, "/")+1:]
}

// prepareRequest is a prepare as DFSPs send it (the document's 5.4 shape:
// amounts as numbers or decimal strings, accounts as names or URLs).
type prepareRequest struct {
	ID     string `json:"id"`
	Ledger string `json:"ledger"`
	Debits []struct {
		Account    string          `json:"account"`
		Amount     json.RawMessage `json:"amount"`
		Authorized bool            `json:"authorized"`
		Memo       json.RawMessage `json:"memo"`
	} `json:"debits"`
	Credits []struct {
		Account string          `json:"account"`
		Amount  json.RawMessage `json:"amount"`
		Memo    json.RawMessage `json:"memo"`
	} `json:"credits"`
	Condition string `json:"execution_condition"`
	ExpiresAt string `json:"expires_at"`
}

// parsePrepare checks a prepare and turns it into a transfer. It names
// what is wrong.
func (r *Rail) parsePrepare(id string, body []byte, by *dfsp, now time.Time) (*transfer, error) {
	var p prepareRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("body: %v", err)
	}
	if p.ID != "" && accountName(p.ID) != id {
		return nil, fmt.Errorf("id %q is not the transfer's id %q in the URL", p.ID, id)
	}
	if len(p.Debits) == 0 || len(p.Credits) == 0 {
		return nil, errors.New("debits and credits: at least one of each is required")
	}
	t := &transfer{ID: id, State: statePrepared, PreparedBy: by.ID, Request: body}
	var sumD, sumC int64
	for i, d := range p.Debits {
		amt, err := parseMoney(string(d.Amount), r.exp)
		if err != nil || amt <= 0 {
			return nil, fmt.Errorf("debits[%d].amount: a positive decimal amount is required", i)
		}
		name := accountName(d.Account)
		if name != by.Account {
			return nil, fmt.Errorf("debits[%d].account %q: a DFSP debits its own account (%s) only", i, d.Account, by.Account)
		}
		if !d.Authorized {
			return nil, fmt.Errorf("debits[%d].authorized: must be true", i)
		}
		t.Debits = append(t.Debits, movement{Account: name, Amount: amt, Authorized: true, Memo: d.Memo})
		sumD += amt
	}
	for i, c := range p.Credits {
		amt, err := parseMoney(string(c.Amount), r.exp)
		if err != nil || amt <= 0 {
			return nil, fmt.Errorf("credits[%d].amount: a positive decimal amount is required", i)
		}
		name := accountName(c.Account)
		if !validName(name) {
			return nil, fmt.Errorf("credits[%d].account %q: not an account of this ledger", i, c.Account)
		}
		t.Credits = append(t.Credits, movement{Account: name, Amount: amt, Memo: c.Memo})
		sumC += amt
	}
	if sumD != sumC {
		return nil, fmt.Errorf("debits (%s) and credits (%s) must add up to the same amount", qr.FormatMinor(sumD, r.exp), qr.FormatMinor(sumC, r.exp))
	}
	c, err := cond.ParseCondition(p.Condition)
	if err != nil {
		return nil, fmt.Errorf("execution_condition: %v", err)
	}
	t.Condition = c.String()
	exp, err := time.Parse(time.RFC3339Nano, p.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("expires_at: an RFC 3339 time is required")
	}
	if !exp.After(now) || exp.Sub(now) > r.opts.MaxTransferLife {
		return nil, fmt.Errorf("expires_at: must be in the future and at most %s away", r.opts.MaxTransferLife)
	}
	t.ExpiresAt = exp.UTC()
	t.Timeline.PreparedAt = now
	if t.Invoice = r.invoiceOf(t.Credits); t.Invoice == "" {
		return nil, errors.New(`credits: a memo must name the invoice paid ("invoice": its URL, or "ilp": an ILP packet to its address)`)
	}
	return t, nil
}

// feeAccount is the ledger account quoted fees are credited to.
const feeAccount = "qrswitch-fees"

// feeFor is the fee quoted on top of a destination amount.
func (r *Rail) feeFor(amount int64) int64 {
	return r.fee + (amount*r.opts.FeeBPS+9_999)/10_000
}

// checkPays says what keeps a prepared transfer from paying invoice v: it
// must credit the invoice's merchant at least the invoice's amount, and
// the fee account at least the quoted fee, and no other account.
func (r *Rail) checkPays(t *transfer, v *invoice, now time.Time) error {
	if st := v.status(now); st != statusUnpaid {
		return fmt.Errorf("invoice %s is %s", v.ID, st)
	}
	var merchant, fees int64
	for i, c := range t.Credits {
		switch c.Account {
		case v.Merchant:
			merchant += c.Amount
		case feeAccount:
			fees += c.Amount
		default:
			return fmt.Errorf("credits[%d].account %q: invoice %s pays account %s (and fees to %s) only", i, c.Account, v.ID, v.Merchant, feeAccount)
		}
	}
	if merchant < v.Amount {
		return fmt.Errorf("the transfer credits %s to %s, invoice %s asks %s", qr.FormatMinor(merchant, r.exp), v.Merchant, v.ID, qr.FormatMinor(v.Amount, r.exp))
	}
	if want := r.feeFor(v.Amount); fees < want {
		return fmt.Errorf("the transfer credits %s to %s, the quoted fee is %s", qr.FormatMinor(fees, r.exp), feeAccount, qr.FormatMinor(want, r.exp))
	}
	return nil
}

// invoiceOf finds the invoice a transfer pays: named by a credit's memo
// ("invoice": the invoice's URL or id), or by the ILP address of the ILP
// packet in a credit's memo ("ilp", base64url OER) — the invoice's own
// address under the ledger's prefix.
func (r *Rail) invoiceOf(credits []movement) string {
	for _, c := range credits {
		var memo struct {
			Invoice string `json:"invoice"`
			ILP     string `json:"ilp"`
		}
		if len(c.Memo) == 0 || json.Unmarshal(c.Memo, &memo) != nil {
			continue
		}
		if memo.Invoice != "" {
			return accountName(memo.Invoice)
		}
		if memo.ILP == "" {
			continue
		}
		if dest, err := destinationOf(memo.ILP); err == nil {
			// {prefix}{merchant}.{invoice}[.more]: the invoice's address.
			if rest, ok := strings.CutPrefix(dest, r.opts.LedgerPrefix); ok {
				if _, after, ok := strings.Cut(rest, "."); ok {
					id, _, _ := strings.Cut(after, ".")
					return id
				}
			}
		}
	}
	return ""
}

// readAccounts reads the accounts of a transfer, by name.
func (r *Rail) readAccounts(ctx context.Context, t *transfer) (map[string]*account, map[string]*partners.Record, error) {
	accts, recs := map[string]*account{}, map[string]*partners.Record{}
	for _, m := range append(append([]movement(nil), t.Debits...), t.Credits...) {
		if _, ok := accts[m.Account]; ok {
			continue
		}
		rec, err := r.records.Get(ctx, kindAccount, m.Account)
		if errors.Is(err, partners.ErrNotFound) {
			// A merchant's account opens with its first credit; a debit
			// account must exist.
			rec = &partners.Record{Kind: kindAccount, Key: m.Account}
			rec.Data, _ = json.Marshal(&account{Name: m.Account})
		} else if err != nil {
			return nil, nil, err
		}
		var a account
		json.Unmarshal(rec.Data, &a)
		accts[m.Account], recs[m.Account] = &a, rec
	}
	return accts, recs, nil
}

// moveRecords are a transfer's record and those of the accounts it moved,
// to commit together (all or none) at the versions read. Ledger records
// are created with no Retailer (they live in the home slot of a sharded
// store) and keep what they were read with.
func (r *Rail) moveRecords(t *transfer, accts map[string]*account, recs map[string]*partners.Record) ([]*partners.Record, error) {
	var out []*partners.Record
	tr, err := r.record(kindTransfer, t.ID, t, "invoice:"+t.Invoice)
	if err != nil {
		return nil, err
	}
	switch t.State {
	case statePrepared:
		tr.DueAt = t.ExpiresAt
	case stateExecuting:
		tr.DueAt = t.ResolveAt
	}
	out = append(out, tr)
	for name, a := range accts {
		rec := recs[name]
		rec.Data, _ = json.Marshal(a)
		out = append(out, rec)
	}
	return out, nil
}

// withVersion sets a transfer record's version to the stored one.
func withVersion(rs []*partners.Record, version int64) []*partners.Record {
	rs[0].Version = version
	return rs
}

// putTransfer prepares a transfer: PUT …/ledger/transfers/{id}. A repeat
// of the same prepare answers the transfer again (200); a prepare that
// changes it is refused.
func (r *Rail) putTransfer(w http.ResponseWriter, req *http.Request) {
	by, ok := r.authenticate(req)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="qrswitch ledger"`)
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "a DFSP's credentials are required")
		return
	}
	id := req.PathValue("id")
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxPrepare))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidBodyError", "the body is larger than 64 KiB")
		return
	}
	ctx := req.Context()
	for range 16 {
		now := r.now().UTC()
		if rec, err := r.records.Get(ctx, kindTransfer, id); err == nil {
			var old transfer
			json.Unmarshal(rec.Data, &old)
			if old.PreparedBy == by.ID && sameJSON(old.Request, body) {
				writeJSON(w, http.StatusOK, r.transferView(&old))
				return
			}
			writeError(w, http.StatusUnprocessableEntity, "AlreadyExistsError", "transfer "+id+" exists: a prepare cannot change it")
			return
		} else if !errors.Is(err, partners.ErrNotFound) {
			r.storeDown(w, err)
			return
		}
		t, err := r.parsePrepare(id, body, by, now)
		if err != nil {
			writeError(w, http.StatusBadRequest, "InvalidBodyError", err.Error())
			return
		}
		v, _, err := r.invoiceRecord(ctx, t.Invoice)
		if errors.Is(err, partners.ErrNotFound) {
			writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "the transfer names invoice "+t.Invoice+", which this ledger never issued")
			return
		}
		if err != nil {
			r.storeDown(w, err)
			return
		}
		if err := r.checkPays(t, v, now); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "InvoiceNotPayableError", err.Error())
			return
		}
		accts, recs, err := r.readAccounts(ctx, t)
		if err != nil {
			r.storeDown(w, err)
			return
		}
		for _, d := range t.Debits {
			if recs[d.Account].Version == 0 {
				writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "debit account "+d.Account+" does not exist")
				return
			}
			a := accts[d.Account]
			if a.Balance < d.Amount {
				writeError(w, http.StatusUnprocessableEntity, "InsufficientFundsError",
					fmt.Sprintf("account %s holds %s, the transfer debits %s", d.Account, qr.FormatMinor(a.Balance, r.exp), qr.FormatMinor(d.Amount, r.exp)))
				return
			}
			a.Balance -= d.Amount // held until the transfer executes or is rejected
		}
		rs, err := r.moveRecords(t, onlyDebits(accts, t), recs)
		if err != nil {
			r.storeDown(w, err)
			return
		}
		switch err := r.records.Commit(ctx, rs...); {
		case err == nil:
			writeJSON(w, http.StatusCreated, r.transferView(t))
			return
		case errors.Is(err, partners.ErrConflict), errors.Is(err, partners.ErrDuplicate):
			continue // an account moved, or the same id was prepared meanwhile: decide again
		default:
			r.storeDown(w, err)
			return
		}
	}
	writeError(w, http.StatusServiceUnavailable, "UnavailableError", "too many concurrent changes; try again")
}

// onlyDebits keeps the debit accounts: a prepare moves nothing else.
func onlyDebits(accts map[string]*account, t *transfer) map[string]*account {
	out := map[string]*account{}
	for _, d := range t.Debits {
		out[d.Account] = accts[d.Account]
	}
	return out
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// transferView is a transfer as GET and PUT answer it.
func (r *Rail) transferView(t *transfer) map[string]any {
	mv := func(ms []movement) []map[string]any {
		var out []map[string]any
		for _, m := range ms {
			e := map[string]any{"account": r.accountURL(m.Account), "amount": qr.FormatMinor(m.Amount, r.exp)}
			if m.Authorized {
				e["authorized"] = true
			}
			if len(m.Memo) > 0 {
				e["memo"] = m.Memo
			}
			out = append(out, e)
		}
		return out
	}
	v := map[string]any{
		"id": r.base + "/ledger/transfers/" + t.ID, "ledger": r.base + "/ledger",
		"debits": mv(t.Debits), "credits": mv(t.Credits), "execution_condition": t.Condition,
		"cancellation_condition": nil, "state": publicState(t.State), "expires_at": t.ExpiresAt.Format(time.RFC3339Nano),
		"timeline": t.Timeline,
	}
	if t.Rejection != "" {
		v["rejection_reason"] = t.Rejection
	}
	return v
}

// publicState is a transfer's state as DFSPs see it: an executing transfer
// is prepared until its credit is done (the five-bells states have no
// other; its fulfillment is not readable before).
func publicState(state string) string {
	if state == stateExecuting {
		return statePrepared
	}
	return state
}

// readTransfer reads a transfer.
func (r *Rail) readTransfer(ctx context.Context, id string) (*transfer, *partners.Record, error) {
	rec, err := r.records.Get(ctx, kindTransfer, id)
	if err != nil {
		return nil, nil, err
	}
	var t transfer
	if err := json.Unmarshal(rec.Data, &t); err != nil {
		return nil, nil, fmt.Errorf("decoding transfer %s: %w", id, err)
	}
	return &t, rec, nil
}

func (r *Rail) getTransfer(w http.ResponseWriter, req *http.Request) {
	by, ok := r.authenticate(req)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="qrswitch ledger"`)
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "a DFSP's credentials are required")
		return
	}
	t, _, err := r.readTransfer(req.Context(), req.PathValue("id"))
	if errors.Is(err, partners.ErrNotFound) || err == nil && t.PreparedBy != by.ID && !r.credits(t, by) {
		writeError(w, http.StatusNotFound, "NotFoundError", "no transfer has this id")
		return
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	writeJSON(w, http.StatusOK, r.transferView(t))
}

// credits reports whether a transfer credits the DFSP's account (a refund).
func (r *Rail) credits(t *transfer, by *dfsp) bool {
	for _, c := range t.Credits {
		if c.Account == by.Account {
			return true
		}
	}
	return false
}

func (r *Rail) getFulfillment(w http.ResponseWriter, req *http.Request) {
	if _, ok := r.authenticate(req); !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="qrswitch ledger"`)
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "a DFSP's credentials are required")
		return
	}
	t, _, err := r.readTransfer(req.Context(), req.PathValue("id"))
	switch {
	case errors.Is(err, partners.ErrNotFound):
		writeError(w, http.StatusNotFound, "NotFoundError", "no transfer has this id")
	case err != nil:
		r.storeDown(w, err)
	case t.State != stateExecuted:
		writeError(w, http.StatusNotFound, "MissingFulfillmentError", "transfer "+t.ID+" is "+publicState(t.State)+": it has no fulfillment")
	default:
		writeJSON(w, http.StatusOK, t.Fulfillment)
	}
}

// fulfillmentOf reads a fulfillment PUT's body: the document's object
// ({"transferId", "fulfillment", "condition"}), a JSON string, or the bare
// base64url text (five-bells ledgers take text/plain).
func fulfillmentOf(body []byte) (string, error) {
	text := strings.TrimSpace(string(body))
	var obj struct {
		Fulfillment string `json:"fulfillment"`
	}
	var s string
	switch {
	case strings.HasPrefix(text, "{"):
		if err := json.Unmarshal(body, &obj); err != nil || obj.Fulfillment == "" {
			return "", errors.New(`the body's "fulfillment" is required`)
		}
		return obj.Fulfillment, nil
	case strings.HasPrefix(text, `"`):
		if err := json.Unmarshal(body, &s); err != nil {
			return "", errors.New("the body is not a JSON string")
		}
		return s, nil
	}
	return text, nil
}

// putFulfillment executes a prepared transfer with its fulfillment: PUT
// …/ledger/transfers/{id}/fulfillment. It executes only when the
// fulfillment meets the condition; a transfer that pays an invoice pays it
// and approves the held POS payment — or, when no payment can take the
// money any more, is rejected and its funds released. The steps (fence,
// approval, credit) are in the comment at the top of this file; a
// fulfillment sent again for an executing transfer resolves it.
func (r *Rail) putFulfillment(w http.ResponseWriter, req *http.Request) {
	by, ok := r.authenticate(req)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="qrswitch ledger"`)
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "a DFSP's credentials are required")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxPrepare))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidBodyError", "the body is larger than 64 KiB")
		return
	}
	text, err := fulfillmentOf(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidBodyError", err.Error())
		return
	}
	ff, err := parseFulfillment(text)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidBodyError", "fulfillment: "+err.Error())
		return
	}
	ctx := req.Context()
	id := req.PathValue("id")
	for range 16 {
		now := r.now().UTC()
		t, rec, err := r.readTransfer(ctx, id)
		if errors.Is(err, partners.ErrNotFound) || err == nil && t.PreparedBy != by.ID {
			writeError(w, http.StatusNotFound, "NotFoundError", "no transfer has this id")
			return
		}
		if err != nil {
			r.storeDown(w, err)
			return
		}
		switch {
		case t.State == stateExecuted && t.Fulfillment == ff.String():
			writeJSON(w, http.StatusOK, t.Fulfillment) // the same fulfillment again
			return
		case t.State == stateExecuted:
			writeError(w, http.StatusUnprocessableEntity, "UnmetConditionError", "transfer "+id+" is already executed")
			return
		case t.State == stateRejected:
			writeError(w, http.StatusUnprocessableEntity, "TransferStateError", "transfer "+id+" was rejected ("+t.Rejection+")")
			return
		case t.State == statePrepared && !now.Before(t.ExpiresAt):
			// Past its expiry, not yet swept: it can only be rejected.
			r.reject(ctx, id, "expired")
			writeError(w, http.StatusUnprocessableEntity, "ExpiredTransferError", "transfer "+id+" expired at "+t.ExpiresAt.Format(time.RFC3339))
			return
		}
		if c, err := cond.ParseCondition(t.Condition); err != nil || c.Verify(ff) != nil {
			writeError(w, http.StatusUnprocessableEntity, "UnmetConditionError", "the fulfillment does not meet the transfer's condition")
			return
		}
		if t.State == statePrepared {
			// Step 1, the fence: from now on the invoice decides.
			switch err := r.fence(ctx, t, rec.Version, ff.String(), now); {
			case errors.Is(err, partners.ErrConflict):
				continue // rejected at its expiry, or fulfilled, meanwhile: read again
			case err != nil:
				r.storeDown(w, err)
				return
			}
		}
		expires := t.ExpiresAt
		t, err = r.resolve(ctx, id)
		var refuse *refusal
		switch {
		case errors.As(err, &refuse) && refuse.reason == "expired":
			writeError(w, http.StatusUnprocessableEntity, "ExpiredTransferError", "transfer "+id+" expired at "+expires.Format(time.RFC3339)+": "+refuse.why)
		case errors.As(err, &refuse):
			writeError(w, http.StatusUnprocessableEntity, "InvoiceNotPayableError", refuse.why)
		case errors.Is(err, errNoRequestYet):
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "UnavailableError", "the invoice's payment request has not reached the switch yet: send the fulfillment again")
		case err != nil:
			r.storeDown(w, err)
		case t.State == stateExecuted:
			writeJSON(w, http.StatusOK, t.Fulfillment)
		default: // rejected by another process meanwhile
			writeError(w, http.StatusUnprocessableEntity, "TransferStateError", "transfer "+id+" was rejected ("+t.Rejection+")")
		}
		return
	}
	writeError(w, http.StatusServiceUnavailable, "UnavailableError", "too many concurrent changes; try again")
}

// parseFulfillment reads a fulfillment: the DER form in base64url (as
// five-bells ledgers take it), or a raw 32-octet preimage in base64url (as
// ILPv4 reports it).
func parseFulfillment(text string) (cond.Fulfillment, error) {
	ff, err := cond.ParseFulfillment(text)
	if err == nil {
		return ff, nil
	}
	if pf, perr := cond.ParsePreimage(text, 32); perr == nil {
		return pf, nil
	}
	return cond.Fulfillment{}, err
}

// refusal says why an executing transfer was rejected instead (its
// invoice cannot be paid, or it expired before its payment request came).
type refusal struct{ reason, why string }

func (e *refusal) Error() string { return e.why }

// errNoRequestYet says the invoice's payment request has not arrived.
var errNoRequestYet = errors.New("no payment request yet")

// fence is step 1: prepared transfer t (read at version) goes executing
// with its verified fulfillment ff, due to the sweep resolveAfter from now.
// From then on only its invoice decides it: reject leaves it alone.
// ErrConflict: it moved meanwhile (rejected at its expiry, fulfilled).
func (r *Rail) fence(ctx context.Context, t *transfer, version int64, ff string, now time.Time) error {
	t.State, t.Fulfillment, t.FulfilledAt, t.ResolveAt = stateExecuting, ff, now, now.Add(resolveAfter)
	rs, err := r.moveRecords(t, nil, nil)
	if err != nil {
		return err
	}
	return r.records.Commit(ctx, withVersion(rs, version)...)
}

// resolve takes an executing transfer to its end: steps 2 and 3 (see the
// top of this file). It returns the transfer as it ends (executed or
// rejected); with a *refusal when it rejected it; with errNoRequestYet
// when it stays executing, due at its expiry, because the invoice's
// payment request has not reached the switch yet. A transfer in any other
// state is returned as it is.
func (r *Rail) resolve(ctx context.Context, id string) (*transfer, error) {
	for range 16 {
		t, rec, err := r.readTransfer(ctx, id)
		if err != nil {
			return nil, err
		}
		if t.State != stateExecuting {
			return t, nil
		}
		err = r.approve(ctx, t, rec)
		var refuse *refusal
		switch {
		case err == nil:
			return r.credit(ctx, id) // step 3
		case errors.Is(err, partners.ErrConflict):
			continue // the invoice changed meanwhile: decide again
		case errors.As(err, &refuse):
			if t, _, rerr := r.readTransfer(ctx, id); rerr == nil {
				return t, err
			}
			return nil, err
		case errors.Is(err, errNoRequestYet):
			return t, err
		default:
			return nil, err
		}
	}
	return nil, errors.New("executing transfer " + id + ": too many concurrent changes")
}

// approve is step 2 for executing transfer t (read as rec): nil when its
// invoice is paid by it — now, through Host.Paid, which approves the held
// payment with the invoice as its only rail record, or before; a *refusal
// once t was rejected because the invoice or its payment cannot take the
// money (or t expired before the payment request came); errNoRequestYet
// when the payment request has not come and t has not expired (t is then
// due to the sweep at its expiry); ErrConflict when the invoice changed
// meanwhile (decide again).
func (r *Rail) approve(ctx context.Context, t *transfer, rec *partners.Record) error {
	now := r.now().UTC()
	if t.Invoice == "" { // every prepare names one; nothing to approve
		return nil
	}
	v, irec, err := r.invoiceRecord(ctx, t.Invoice)
	if errors.Is(err, partners.ErrNotFound) {
		return r.refuse(ctx, t, "cancelled", "the transfer names invoice "+t.Invoice+", which this ledger never issued")
	}
	if err != nil {
		return err
	}
	if v.Status == statusPaid && v.Transfer == t.ID {
		return nil // approved before (a crash, another process)
	}
	if err := r.cannotPay(t, v, now); err != nil {
		return r.refuse(ctx, t, "cancelled", err.Error())
	}
	var credited int64
	for _, c := range t.Credits {
		if c.Account == v.Merchant {
			credited += c.Amount
		}
	}
	payer := &wire.Institution{ID: t.PreparedBy}
	if d := r.byID[t.PreparedBy]; d != nil {
		payer.Name = d.Name
	}
	v.Status, v.Transfer, v.PaidBy, v.PaidAt = statusPaid, t.ID, t.PreparedBy, now
	irec.Data, _ = json.Marshal(v) // irec was read back: it keeps its Retailer
	err = r.host.Paid(ctx, &partners.Paid{
		PartnerID: r.id, TranID: v.TranID, Reference: t.ID,
		Amount:  &wire.LedgerAmount{Amount: credited, Currency: r.opts.Currency},
		Payer:   payer,
		Note:    "invoice " + v.ID + " paid by DFSP " + t.PreparedBy + " with ledger transfer " + t.ID,
		Records: []*partners.Record{irec}, At: now,
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, partners.ErrNotWaiting), errors.Is(err, partners.ErrAmount):
		r.cancelInvoice(ctx, v.ID)
		return r.refuse(ctx, t, "cancelled", "invoice "+v.ID+" cannot be paid: "+err.Error())
	case errors.Is(err, partners.ErrNoRequestYet):
		if !now.Before(t.ExpiresAt) {
			return r.refuse(ctx, t, "expired", "the invoice's payment request never reached the switch")
		}
		if !t.ResolveAt.Equal(t.ExpiresAt) {
			// Due at its expiry: a resend of the fulfillment tries again
			// before; the sweep then approves or rejects it.
			t.ResolveAt = t.ExpiresAt
			if rs, err := r.moveRecords(t, nil, nil); err == nil {
				r.records.Commit(ctx, withVersion(rs, rec.Version)...) // a conflict: it moved on
			}
		}
		return errNoRequestYet
	}
	return err
}

// cannotPay says why executing transfer t cannot pay invoice v, or nil.
func (r *Rail) cannotPay(t *transfer, v *invoice, now time.Time) error {
	if slices.Contains(v.Refused, t.ID) {
		return fmt.Errorf("invoice %s refused transfer %s", v.ID, t.ID)
	}
	return r.checkPays(t, v, now)
}

// refuse rejects executing transfer t (reason, why) and returns a
// *refusal: first the invoice is made to refuse t for good, so that no
// approval by t can commit after. Should the invoice turn out paid by t,
// it returns nil: t is to be credited instead.
func (r *Rail) refuse(ctx context.Context, t *transfer, reason, why string) error {
	if t.Invoice != "" {
		paid, err := r.barInvoice(ctx, t.Invoice, t.ID)
		if err != nil {
			return err
		}
		if paid {
			return nil
		}
	}
	if err := r.release(ctx, t.ID, reason, stateExecuting); err != nil {
		return err
	}
	return &refusal{reason: reason, why: why}
}

// barInvoice makes invoice id refuse transfer tid for good: nothing to do
// when it is cancelled or paid by another transfer; an unpaid invoice
// records tid among those it refused (a versioned write: an approval by
// tid that read it before fails on it). It reports whether the invoice is
// paid by tid instead.
func (r *Rail) barInvoice(ctx context.Context, id, tid string) (bool, error) {
	for range 16 {
		v, rec, err := r.invoiceRecord(ctx, id)
		switch {
		case errors.Is(err, partners.ErrNotFound):
			return false, nil
		case err != nil:
			return false, err
		case v.Status == statusPaid && v.Transfer == tid:
			return true, nil
		case v.Status != statusUnpaid, slices.Contains(v.Refused, tid):
			return false, nil
		}
		v.Refused = append(v.Refused, tid)
		rec.Data, _ = json.Marshal(v) // rec was read back: it keeps its Retailer
		if err := r.records.Commit(ctx, rec); !errors.Is(err, partners.ErrConflict) {
			return false, err
		}
	}
	return false, errors.New("refusing transfer " + tid + " on invoice " + id + ": too many concurrent changes")
}

// credit is step 3: an executing transfer whose invoice it paid is
// executed, its credit accounts credited; once (an executed transfer is
// returned as it is).
func (r *Rail) credit(ctx context.Context, id string) (*transfer, error) {
	for range 16 {
		t, rec, err := r.readTransfer(ctx, id)
		if err != nil {
			return nil, err
		}
		switch t.State {
		case stateExecuted:
			return t, nil
		case stateExecuting:
		default:
			return nil, fmt.Errorf("transfer %s is %s: it cannot be credited", id, t.State)
		}
		accts, recs, err := r.readAccounts(ctx, t)
		if err != nil {
			return nil, err
		}
		credited := map[string]*account{}
		for _, c := range t.Credits {
			accts[c.Account].Balance += c.Amount
			credited[c.Account] = accts[c.Account]
		}
		t.State, t.Timeline.ExecutedAt, t.ResolveAt = stateExecuted, r.now().UTC(), time.Time{}
		rs, err := r.moveRecords(t, credited, recs)
		if err != nil {
			return nil, err
		}
		switch err := r.records.Commit(ctx, withVersion(rs, rec.Version)...); {
		case err == nil:
			return t, nil
		case errors.Is(err, partners.ErrConflict), errors.Is(err, partners.ErrDuplicate):
			continue // an account moved (or a merchant's opened) meanwhile
		default:
			return nil, err
		}
	}
	return nil, errors.New("crediting transfer " + id + ": too many concurrent changes")
}

// cancelInvoice marks an unpaid invoice cancelled (its payment ended).
func (r *Rail) cancelInvoice(ctx context.Context, id string) {
	for range 8 {
		v, rec, err := r.invoiceRecord(ctx, id)
		if err != nil || v.Status != statusUnpaid {
			return
		}
		v.Status = statusCancelled
		rec.Data, _ = json.Marshal(v)
		if err := r.records.Commit(ctx, rec); !errors.Is(err, partners.ErrConflict) {
			return
		}
	}
}

// reject rejects a prepared transfer and gives its funds back. An
// executing transfer is left alone (the fence): its invoice decides it.
func (r *Rail) reject(ctx context.Context, id, reason string) error {
	return r.release(ctx, id, reason, statePrepared)
}

// release rejects a transfer in state from and gives its funds back to its
// debit accounts; a transfer in another state is left as it is.
func (r *Rail) release(ctx context.Context, id, reason, from string) error {
	for range 16 {
		t, rec, err := r.readTransfer(ctx, id)
		if err != nil {
			return err
		}
		if t.State != from {
			return nil
		}
		accts, recs, err := r.readAccounts(ctx, t)
		if err != nil {
			return err
		}
		for _, d := range t.Debits {
			accts[d.Account].Balance += d.Amount
		}
		t.State, t.Rejection, t.Timeline.RejectedAt, t.ResolveAt = stateRejected, reason, r.now().UTC(), time.Time{}
		rs, err := r.moveRecords(t, onlyDebits(accts, t), recs)
		if err != nil {
			return err
		}
		if err := r.records.Commit(ctx, withVersion(rs, rec.Version)...); !errors.Is(err, partners.ErrConflict) {
			return err
		}
	}
	return errors.New("rejecting transfer: too many concurrent changes")
}

// Sweep rejects every prepared transfer past its expiry and releases its
// funds, and resolves every executing transfer that is due (a crash
// between the steps of its execution, or its expiry while its payment
// request had not come). The rail runs it at start and every
// sweep_interval; a restart finds what is due in the store, so no expiry
// is missed.
func (r *Rail) Sweep(ctx context.Context) error {
	seen := map[string]bool{}
	for {
		due, err := r.records.List(ctx, partners.RecordQuery{Kind: kindTransfer, DueBy: r.now(), Limit: 100})
		if err != nil {
			return err
		}
		fresh := 0
		for _, rec := range due {
			if seen[rec.Key] {
				continue // still due after this sweep handled it: the next sweep's
			}
			seen[rec.Key], fresh = true, fresh+1
			var t transfer
			if err := json.Unmarshal(rec.Data, &t); err != nil {
				return fmt.Errorf("decoding transfer %s: %w", rec.Key, err)
			}
			switch t.State {
			case stateExecuting:
				var refuse *refusal
				if _, err := r.resolve(ctx, rec.Key); err != nil && !errors.As(err, &refuse) && !errors.Is(err, errNoRequestYet) {
					return fmt.Errorf("resolving executing transfer %s: %w", rec.Key, err)
				}
			default:
				if err := r.reject(ctx, rec.Key, "expired"); err != nil {
					return err
				}
			}
		}
		if len(due) < 100 || fresh == 0 {
			return nil
		}
	}
}

// Refund returns money an invoice received to the DFSP that paid it: a
// transfer from the merchant's account to the DFSP's, executed at once (a
// book transfer inside the ledger; its id derives from the reversal's, so
// a repeat is the same transfer).
func (r *Rail) Refund(ctx context.Context, a *partners.Advice) *partners.Answer {
	start := time.Now()
	ans := &partners.Answer{Outcome: outcome.Unknown}
	defer func() { ans.Latency = time.Since(start) }()
	if a.Paid == nil {
		ans.Outcome, ans.Code = outcome.Successful, "LEDGER nothing to refund"
		return ans
	}
	paid, _, err := r.readTransfer(ctx, a.Paid.Reference)
	if err != nil {
		ans.Err = fmt.Errorf("reading transfer %s: %w: %w", a.Paid.Reference, err, outcome.ErrNotSent)
		return ans
	}
	if paid.State == stateExecuting {
		// Approved, not yet credited (the reversal came between steps 2
		// and 3, or after a crash there): credit it first, or the
		// merchant's account would not hold what the refund takes back.
		if paid, err = r.resolve(ctx, paid.ID); err != nil {
			ans.Err = fmt.Errorf("executing transfer %s before its refund: %w: %w", a.Paid.Reference, err, outcome.ErrNotSent)
			return ans
		}
	}
	if paid.State != stateExecuted {
		ans.Outcome, ans.Err = outcome.Failed, fmt.Errorf("transfer %s is %s: nothing to refund", paid.ID, publicState(paid.State))
		return ans
	}
	payer := r.byID[paid.PreparedBy]
	if payer == nil {
		ans.Outcome, ans.Err = outcome.Failed, fmt.Errorf("DFSP %s is no longer configured: refund by hand", paid.PreparedBy)
		return ans
	}
	id := "refund-" + a.ID
	for range 16 {
		if t, _, err := r.readTransfer(ctx, id); err == nil {
			ans.Outcome, ans.Code = outcome.Successful, "LEDGER "+t.State
			return ans
		}
		now := r.now().UTC()
		t := &transfer{ID: id, State: stateExecuted, PreparedBy: r.id, Refund: true, Invoice: paid.Invoice}
		var amount int64
		for _, c := range paid.Credits {
			t.Debits = append(t.Debits, movement{Account: c.Account, Amount: c.Amount, Authorized: true})
			amount += c.Amount
		}
		t.Credits = []movement{{Account: payer.Account, Amount: amount}}
		t.Timeline.PreparedAt, t.Timeline.ExecutedAt = now, now
		accts, recs, err := r.readAccounts(ctx, t)
		if err != nil {
			ans.Err = err
			return ans
		}
		for _, d := range t.Debits {
			if accts[d.Account].Balance < d.Amount {
				ans.Outcome = outcome.Failed
				ans.Err = fmt.Errorf("account %s holds %s, the refund needs %s: refund by hand", d.Account, qr.FormatMinor(accts[d.Account].Balance, r.exp), qr.FormatMinor(d.Amount, r.exp))
				return ans
			}
			accts[d.Account].Balance -= d.Amount
		}
		accts[payer.Account].Balance += amount
		rs, err := r.moveRecords(t, accts, recs)
		if err != nil {
			ans.Err = err
			return ans
		}
		if err := r.records.Commit(ctx, rs...); err == nil {
			ans.Outcome, ans.Code = outcome.Successful, "LEDGER executed"
			ans.Sent, _ = json.Marshal(r.transferView(t))
			return ans
		} else if !errors.Is(err, partners.ErrConflict) && !errors.Is(err, partners.ErrDuplicate) {
			ans.Err = err
			return ans
		}
	}
	ans.Err = errors.New("refund: too many concurrent changes")
	return ans
}

// getAccount answers a DFSP's own account: GET …/ledger/accounts/{name}.
func (r *Rail) getAccount(w http.ResponseWriter, req *http.Request) {
	by, ok := r.authenticate(req)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="qrswitch ledger"`)
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "a DFSP's credentials are required")
		return
	}
	name := req.PathValue("name")
	if name != by.Account {
		writeError(w, http.StatusNotFound, "NotFoundError", "no account of yours has this name")
		return
	}
	rec, err := r.records.Get(req.Context(), kindAccount, name)
	if err != nil {
		r.storeDown(w, err)
		return
	}
	var a account
	json.Unmarshal(rec.Data, &a)
	writeJSON(w, http.StatusOK, map[string]any{"id": r.accountURL(name), "name": name, "ledger": r.base + "/ledger",
		"balance": qr.FormatMinor(a.Balance, r.exp), "is_disabled": false})
}

// validName reports whether s names an account (RFC 15 segment letters).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '~') {
			return false
		}
	}
	return true
}

// validAddress reports whether s is an ILP address (RFC 15).
func validAddress(s string) bool { _, err := ilp.ParseAddress(s); return err == nil }
