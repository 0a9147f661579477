package openpayments

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/partners"
)

// maxBody bounds a request body: an incoming payment with its metadata.
const maxBody = 64 << 10

// amount is the Open Payments amount: a string of an unsigned 64-bit
// integer in the asset's smallest unit.
type amount struct {
	Value      string `json:"value"`
	AssetCode  string `json:"assetCode"`
	AssetScale uint8  `json:"assetScale"`
}

func amountOf(v uint64, w *Wallet) amount {
	return amount{Value: strconv.FormatUint(v, 10), AssetCode: w.AssetCode, AssetScale: w.AssetScale}
}

// parse reads a's value for wallet w.
func (a *amount) parse(w *Wallet) (uint64, error) {
	if a.AssetCode != w.AssetCode || a.AssetScale != w.AssetScale {
		return 0, fmt.Errorf("amount must be in %s with scale %d, the wallet address's asset", w.AssetCode, w.AssetScale)
	}
	if a.Value == "" || len(a.Value) > 20 || strings.TrimLeft(a.Value, "0123456789") != "" {
		return 0, errors.New("amount value must be a string of digits")
	}
	v, err := strconv.ParseUint(a.Value, 10, 64)
	if err != nil {
		return 0, errors.New("amount value must fit an unsigned 64-bit integer")
	}
	return v, nil
}

// createIncomingRequest is the body of POST /incoming-payments.
type createIncomingRequest struct {
	WalletAddress  string          `json:"walletAddress"`
	IncomingAmount *amount         `json:"incomingAmount,omitempty"`
	ExpiresAt      *string         `json:"expiresAt,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// decodeStrict decodes one JSON object into v, refusing unknown
// properties, duplicate-free trailing data, and bodies over maxBody.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// parseCreateIncoming reads and checks a create request against the
// wallets r serves: the wallet, the amount and the expiry.
func (r *Rail) parseCreateIncoming(b []byte, now time.Time) (*Wallet, *uint64, time.Time, json.RawMessage, error) {
	var req createIncomingRequest
	var expires time.Time
	if err := decodeStrict(b, &req); err != nil {
		return nil, nil, expires, nil, fmt.Errorf("decoding body: %w", err)
	}
	w := r.walletOf(req.WalletAddress)
	if w == nil {
		return nil, nil, expires, nil, fmt.Errorf("walletAddress %q is not served here", req.WalletAddress)
	}
	var amt *uint64
	if req.IncomingAmount != nil {
		v, err := req.IncomingAmount.parse(w)
		if err != nil {
			return nil, nil, expires, nil, fmt.Errorf("incomingAmount: %w", err)
		}
		if v == 0 {
			return nil, nil, expires, nil, errors.New("incomingAmount must be above zero")
		}
		amt = &v
	}
	if req.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *req.ExpiresAt)
		if err != nil {
			return nil, nil, expires, nil, errors.New("expiresAt must be an RFC 3339 date-time")
		}
		if !t.After(now) {
			return nil, nil, expires, nil, errors.New("expiresAt must be in the future")
		}
		expires = t.UTC()
	}
	meta := req.Metadata
	if len(meta) > 0 && !bytes.Equal(meta, []byte("null")) {
		var m map[string]any
		if json.Unmarshal(meta, &m) != nil {
			return nil, nil, expires, nil, errors.New("metadata must be an object")
		}
	} else {
		meta = nil
	}
	return w, amt, expires, meta, nil
}

// walletOf finds the wallet a wallet address URL names.
func (r *Rail) walletOf(u string) *Wallet {
	name, ok := strings.CutPrefix(strings.TrimSuffix(u, "/"), r.base+"/")
	if !ok {
		return nil
	}
	return r.wallets[name]
}

// --- views ------------------------------------------------------------------

type walletView struct {
	ID             string `json:"id"`
	PublicName     string `json:"publicName"`
	AssetCode      string `json:"assetCode"`
	AssetScale     uint8  `json:"assetScale"`
	AuthServer     string `json:"authServer"`
	ResourceServer string `json:"resourceServer"`
}

type incomingView struct {
	ID             string          `json:"id"`
	WalletAddress  string          `json:"walletAddress"`
	Completed      bool            `json:"completed"`
	IncomingAmount *amount         `json:"incomingAmount,omitempty"`
	ReceivedAmount amount          `json:"receivedAmount"`
	ExpiresAt      string          `json:"expiresAt,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	CreatedAt      string          `json:"createdAt"`
	Methods        *[]method       `json:"methods,omitempty"`
}

type method struct {
	Type         string `json:"type"`
	ILPAddress   string `json:"ilpAddress"`
	SharedSecret string `json:"sharedSecret"`
}

type publicIncomingView struct {
	ReceivedAmount *amount `json:"receivedAmount,omitempty"`
	AuthServer     string  `json:"authServer"`
}

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// view renders ip; withMethods adds its ILP payment method while it can
// still be paid.
func (r *Rail) view(ip *incoming, withMethods bool) (*incomingView, error) {
	w := r.wallets[ip.Wallet]
	v := &incomingView{ID: r.incomingURL(ip.ID), WalletAddress: r.walletURL(w.Name), Completed: ip.Completed,
		ReceivedAmount: amountOf(ip.Received, w), Metadata: ip.Metadata,
		CreatedAt: ip.CreatedAt.UTC().Format(timeFormat)}
	if ip.Amount != nil {
		a := amountOf(*ip.Amount, w)
		v.IncomingAmount = &a
	}
	if !ip.ExpiresAt.IsZero() {
		v.ExpiresAt = ip.ExpiresAt.UTC().Format(timeFormat)
	}
	if withMethods {
		ms := []method{}
		if !ip.closed(r.now()) {
			_, secret, err := r.creds.Resolve(ip.Address)
			if err != nil {
				return nil, fmt.Errorf("deriving the shared secret: %w", err)
			}
			ms = append(ms, method{Type: "ilp", ILPAddress: string(ip.Address), SharedSecret: base64.RawURLEncoding.EncodeToString(secret)})
		}
		v.Methods = &ms
	}
	return v, nil
}

// --- handlers ---------------------------------------------------------------

func (r *Rail) getWallet(w http.ResponseWriter, req *http.Request) {
	wal := r.wallets[req.PathValue("wallet")]
	if wal == nil {
		writeError(w, http.StatusNotFound, "not_found", "no wallet address here")
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, &walletView{ID: r.walletURL(wal.Name), PublicName: wal.PublicName, AssetCode: wal.AssetCode,
		AssetScale: wal.AssetScale, AuthServer: r.auth, ResourceServer: r.base})
}

// getJWKS serves the wallet address's keys: a retailer's wallet address is
// never an Open Payments client, so it has none.
func (r *Rail) getJWKS(w http.ResponseWriter, req *http.Request) {
	if r.wallets[req.PathValue("wallet")] == nil || req.PathValue("doc") != "jwks.json" {
		writeError(w, http.StatusNotFound, "not_found", "no wallet address document here")
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// authorize admits req to a protected route, or answers it 401/403.
func (r *Rail) authorize(w http.ResponseWriter, req *http.Request, need Access) (*Grant, bool) {
	g, err := r.verify(req, need)
	switch {
	case err == nil:
		return g, true
	case errors.Is(err, ErrForbidden):
		partners.SetCause(w, err)
		writeError(w, http.StatusForbidden, "forbidden", "the access token does not grant this")
	default:
		partners.SetCause(w, err)
		w.Header().Set("WWW-Authenticate", `GNAP as_uri="`+r.auth+`"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a valid GNAP access token and HTTP signature are required")
	}
	return nil, false
}

func (r *Rail) createIncoming(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body too large or unreadable")
		return
	}
	// Authorisation needs the wallet, which is in the body; a body that
	// does not parse is answered after authorisation of the resource
	// server as a whole would have been refused anyway.
	var probe struct {
		WalletAddress string `json:"walletAddress"`
	}
	json.Unmarshal(body, &probe)
	g, ok := r.authorize(w, req, Access{Type: "incoming-payment", Actions: []string{"create"}, Identifier: probe.WalletAddress})
	if !ok {
		return
	}
	wal, amt, expires, meta, err := r.parseCreateIncoming(body, r.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	ip, rec, err := r.newIncoming(wal, amt, expires, meta, g.Client, "")
	if err == nil {
		err = r.records.Commit(req.Context(), rec)
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	v, err := r.view(ip, true)
	if err != nil {
		r.storeDown(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

// mayRead reports whether g lets its client read ip: read-all reads every
// incoming payment of the wallet, read only those the client created.
func mayRead(g *Grant, ip *incoming) bool {
	return slices.Contains(g.Actions, "read-all") || (g.Client != "" && g.Client == ip.Client)
}

func (r *Rail) getIncoming(w http.ResponseWriter, req *http.Request) {
	ip, _, err := r.readIncoming(req.Context(), req.PathValue("id"))
	if errors.Is(err, partners.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no incoming payment has this id")
		return
	}
	if err != nil {
		r.storeDown(w, err)
		return
	}
	wal := r.wallets[ip.Wallet]
	if wal == nil {
		writeError(w, http.StatusNotFound, "not_found", "no incoming payment has this id")
		return
	}
	if req.Header.Get("Authorization") == "" {
		// The public form: what a payer's wallet needs to find the auth
		// server, and what arrived.
		a := amountOf(ip.Received, wal)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		writeJSON(w, http.StatusOK, &publicIncomingView{ReceivedAmount: &a, AuthServer: r.auth})
		return
	}
	g, ok := r.authorize(w, req, Access{Type: "incoming-payment", Actions: []string{"read", "read-all"}, Identifier: r.walletURL(wal.Name)})
	if !ok {
		return
	}
	if !mayRead(g, ip) {
		writeError(w, http.StatusForbidden, "forbidden", "the access token does not grant reading this incoming payment")
		return
	}
	v, err := r.view(ip, true)
	if err != nil {
		r.storeDown(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (r *Rail) completeIncoming(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	for range 16 {
		ip, rec, err := r.readIncoming(ctx, req.PathValue("id"))
		if errors.Is(err, partners.ErrNotFound) || (err == nil && r.wallets[ip.Wallet] == nil) {
			writeError(w, http.StatusNotFound, "not_found", "no incoming payment has this id")
			return
		}
		if err != nil {
			r.storeDown(w, err)
			return
		}
		if _, ok := r.authorize(w, req, Access{Type: "incoming-payment", Actions: []string{"complete"}, Identifier: r.walletURL(ip.Wallet)}); !ok {
			return
		}
		if ip.TranID != "" && !ip.Completed {
			// A QR code's incoming payment completes by being paid or
			// expires with its code; a client cannot end the POS's wait.
			writeError(w, http.StatusForbidden, "forbidden", "this incoming payment belongs to a QR code and completes when paid")
			return
		}
		if ip.expired(r.now()) && !ip.Completed {
			writeError(w, http.StatusBadRequest, "invalid_request", "the incoming payment has expired")
			return
		}
		if !ip.Completed {
			ip.Completed, ip.UpdatedAt = true, r.now().UTC()
			upd, err := r.incomingRecord(ip, rec.Version)
			if err == nil {
				err = r.records.Commit(ctx, upd)
			}
			if errors.Is(err, partners.ErrConflict) {
				continue
			}
			if err != nil {
				r.storeDown(w, err)
				return
			}
		}
		v, err := r.view(ip, false)
		if err != nil {
			r.storeDown(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
		return
	}
	r.storeDown(w, errors.New("completing an incoming payment: too many concurrent changes"))
}

// listIncoming answers GET /incoming-payments?wallet-address=…: newest
// first (Rafiki's order), first/last 1 to 100 (default 20), cursor the id
// to list after (first) or before (last).
func (r *Rail) listIncoming(w http.ResponseWriter, req *http.Request) {
	listResource(r, w, req, "incoming-payment", kindIncoming,
		func(ip *incoming) (string, string) { return ip.ID, ip.Client },
		func(ip *incoming) (any, error) { return r.view(ip, false) })
}

// listResource answers the list of one type of resource of a wallet
// address: the client's own with "list", every one with "list-all", paged
// newest first. key gives a resource's id and the client that made it.
func listResource[T any](r *Rail, w http.ResponseWriter, req *http.Request, typ, kind string,
	key func(*T) (id, client string), view func(*T) (any, error)) {
	q := req.URL.Query()
	wal := r.walletOf(q.Get("wallet-address"))
	walletID := q.Get("wallet-address")
	if wal != nil {
		walletID = r.walletURL(wal.Name)
	}
	g, ok := r.authorize(w, req, Access{Type: typ, Actions: []string{"list", "list-all"}, Identifier: walletID})
	if !ok {
		return
	}
	if wal == nil {
		writeError(w, http.StatusNotFound, "not_found", "no wallet address here")
		return
	}
	page, err := parsePage(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	all := slices.Contains(g.Actions, "list-all")
	items, hasMore, err := pageOf(req.Context(), r.records, kind, wal, page, func(x *T) bool {
		_, client := key(x)
		return all || (g.Client != "" && client == g.Client)
	})
	if err != nil {
		r.storeDown(w, err)
		return
	}
	res := struct {
		Pagination pageInfo `json:"pagination"`
		Result     []any    `json:"result"`
	}{Result: []any{}}
	for _, x := range items {
		v, err := view(x)
		if err != nil {
			r.storeDown(w, err)
			return
		}
		res.Result = append(res.Result, v)
	}
	if len(items) > 0 {
		first, _ := key(items[0])
		last, _ := key(items[len(items)-1])
		res.Pagination = page.info(first, last, hasMore)
	} else {
		res.Pagination = page.info("", "", hasMore)
	}
	writeJSON(w, http.StatusOK, res)
}

// info is the page-info of a page from start to end.
func (p pageQuery) info(start, end string, hasMore bool) pageInfo {
	pi := pageInfo{StartCursor: start, EndCursor: end}
	if p.backward {
		pi.HasPreviousPage, pi.HasNextPage = hasMore, p.cursor != ""
	} else {
		pi.HasNextPage, pi.HasPreviousPage = hasMore, p.cursor != ""
	}
	return pi
}

type pageInfo struct {
	StartCursor     string `json:"startCursor,omitempty"`
	EndCursor       string `json:"endCursor,omitempty"`
	HasNextPage     bool   `json:"hasNextPage"`
	HasPreviousPage bool   `json:"hasPreviousPage"`
}

type pageQuery struct {
	size     int
	cursor   string
	backward bool
}

func parsePage(q map[string][]string) (pageQuery, error) {
	p := pageQuery{size: 20}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	first, last := get("first"), get("last")
	if first != "" && last != "" {
		return p, errors.New("first and last cannot both be given")
	}
	n := first
	if last != "" {
		n, p.backward = last, true
	}
	if n != "" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > 100 {
			return p, errors.New("first and last must be 1 to 100")
		}
		p.size = v
	}
	p.cursor = get("cursor")
	if p.backward && p.cursor == "" {
		return p, errors.New("last needs a cursor")
	}
	if p.cursor != "" && !validSegment(p.cursor) {
		return p, errors.New("cursor is not an incoming payment id")
	}
	return p, nil
}

// pageOf lists one page of wal's records of kind that keep admits,
// newest first, and reports whether more lie beyond it.
func pageOf[T any](ctx context.Context, records partners.Records, kind string, wal *Wallet, p pageQuery, keep func(*T) bool) ([]*T, bool, error) {
	var out []*T
	q := partners.RecordQuery{Kind: kind, Index: "wallet:" + wal.Name, Desc: !p.backward, Limit: 200}
	if p.backward {
		q.After = p.cursor
	} else {
		q.Before = p.cursor
	}
	for {
		recs, err := records.List(ctx, q)
		if err != nil {
			return nil, false, err
		}
		for _, rec := range recs {
			ip := new(T)
			if err := json.Unmarshal(rec.Data, ip); err != nil {
				return nil, false, fmt.Errorf("decoding %s %s: %w", kind, rec.Key, err)
			}
			if !keep(ip) {
				continue
			}
			if len(out) == p.size {
				if p.backward {
					slices.Reverse(out)
				}
				return out, true, nil
			}
			out = append(out, ip)
		}
		if len(recs) < q.Limit {
			break
		}
		last := recs[len(recs)-1].Key
		if p.backward {
			q.After = last
		} else {
			q.Before = last
		}
	}
	if p.backward {
		slices.Reverse(out)
	}
	return out, false, nil
}

// --- answers ----------------------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeError answers in the Open Payments error shape.
func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "description": description}})
}

func (r *Rail) storeDown(w http.ResponseWriter, err error) {
	partners.SetCause(w, err)
	writeError(w, http.StatusServiceUnavailable, "unavailable", "the resource server's store is unavailable; try again")
}
