// Package support is the surface for support staff and operators: find any
// transaction by any of its identifiers or by a search, read its whole
// story — the payment record, its QR code, every advice and every attempt
// to send it, every message of its trace, secrets masked — watch the
// store-and-forward queues, and act on them. It serves the support API
// under /support/v1 and the console, a web page embedded in the binary,
// under /console.
//
// Support users authenticate with their own Basic-auth credentials and have
// a role: viewer (every read) or operator (every read, and the actions on
// queues and advices). Every action needs a reason and is audited by the
// engine: in the trace it concerns, in the log, and in the metrics.
package support

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Mount adds the support API and the console to r.
func Mount(r gin.IRouter, e *qrswitch.Engine, auth *httpapi.Authenticator) {
	h := &handlers{engine: e}
	g := r.Group("/support/v1", quietForConsole, auth.Require(httpapi.KindSupport),
		httpapi.RequireRole(httpapi.RoleViewer, httpapi.RoleOperator))
	g.GET("/me", h.me)
	g.GET("/transactions", h.search)
	// A catch-all, because a payment key (RETAILER/REQUESTID) has a slash.
	g.GET("/transactions/*key", h.transaction)
	g.GET("/saf", h.queues)
	g.GET("/saf/:partner/advices", h.advices)
	g.GET("/saf/:partner/audit", h.audit)
	g.GET("/rails/:partner", h.railKinds)
	g.GET("/rails/:partner/records/:kind", h.railRecords)

	op := g.Group("", httpapi.RequireRole(httpapi.RoleOperator))
	op.POST("/saf/:partner/pause", h.pause)
	op.POST("/saf/:partner/resume", h.resume)
	op.POST("/saf/:partner/retry", h.retryPartner)
	op.POST("/advices/:sender/:id/retry", h.retryAdvice)
	op.POST("/advices/:sender/:id/replay", h.replayAdvice)
	op.POST("/advices/:sender/:id/final", h.finalizeAdvice)

	mountConsole(r)
}

type handlers struct{ engine *qrswitch.Engine }

func storeDown(c *gin.Context, err error) {
	d := wire.NewErrorDetail(wire.UpstreamUnavailable, "Switch storage unavailable", "", "")
	httpapi.FailCause(c, http.StatusServiceUnavailable, d, err)
}

func badField(c *gin.Context, field, why string) {
	d := wire.NewErrorDetail(wire.FormatError, wire.ShortMessage("Invalid field "+field), "", "")
	d.DetailMessage = wire.Detail(why)
	httpapi.Fail(c, http.StatusBadRequest, d)
}

func (h *handlers) me(c *gin.Context) {
	p, _ := httpapi.PrincipalOf(c)
	httpapi.JSON(c, http.StatusOK, gin.H{"username": p.ID, "role": p.Role})
}

func (h *handlers) transaction(c *gin.Context) {
	key := strings.TrimPrefix(c.Param("key"), "/")
	if key == "" {
		httpapi.Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.UnableToLocateRecord, "No transaction has this id", "", ""))
		return
	}
	stories, err := h.engine.Stories(c.Request.Context(), key)
	if err != nil {
		storeDown(c, err)
		return
	}
	if len(stories) == 0 {
		httpapi.Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.UnableToLocateRecord, "No transaction has this id", "", ""))
		return
	}
	httpapi.JSON(c, http.StatusOK, gin.H{"results": stories})
}

// cursor is where the next page of a search starts: the CreatedAt and key
// of the last payment of the page before. It travels as opaque base64url
// JSON, so clients never build one.
type cursor struct {
	At  time.Time `json:"t"`
	Key string    `json:"k"`
}

func encodeCursor(p qrswitch.PaymentSummary) string {
	b, _ := json.Marshal(cursor{At: p.CreatedAt, Key: p.Key})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var cur cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cur, err
	}
	if err := json.Unmarshal(b, &cur); err != nil {
		return cur, err
	}
	if cur.At.IsZero() || cur.Key == "" {
		return cur, errors.New("incomplete cursor")
	}
	return cur, nil
}

// searchParams maps query parameters to Query fields.
var searchParams = []struct {
	name string
	set  func(q *qrswitch.Query, v string)
}{
	{"requestId", func(q *qrswitch.Query, v string) { q.RequestID = v }},
	{"tranId", func(q *qrswitch.Query, v string) { q.TranID = v }},
	{"rrn", func(q *qrswitch.Query, v string) { q.Rrn = v }},
	{"stan", func(q *qrswitch.Query, v string) { q.Stan = v }},
	{"retailer", func(q *qrswitch.Query, v string) { q.RetailerID = v }},
	{"merchant", func(q *qrswitch.Query, v string) { q.MerchantID = v }},
	{"terminal", func(q *qrswitch.Query, v string) { q.TerminalID = v }},
	{"partner", func(q *qrswitch.Query, v string) { q.PartnerID = v }},
}

// search answers GET /support/v1/transactions?filters: payment summaries,
// newest first, with a cursor for the next page when the page is full.
func (h *handlers) search(c *gin.Context) {
	var q qrswitch.Query
	for _, p := range searchParams {
		p.set(&q, strings.TrimSpace(c.Query(p.name)))
	}
	if v := c.Query("state"); v != "" {
		if !outcome.State(v).Valid() {
			badField(c, "state", "state must be one of the payment states, e.g. APPROVED or REVERSING")
			return
		}
		q.State = outcome.State(v)
	}
	if v := c.Query("outcome"); v != "" {
		if v != "successful" && v != "unknown" && v != "failed" {
			badField(c, "outcome", "outcome must be successful, unknown or failed")
			return
		}
		q.Outcome = v
	}
	for _, a := range []struct {
		name string
		to   *int64
	}{{"minAmount", &q.MinAmount}, {"maxAmount", &q.MaxAmount}} {
		if v := c.Query(a.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				badField(c, a.name, a.name+" is a whole number of minor units (cents), 0 or more")
				return
			}
			*a.to = n
		}
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := c.Query(t.name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				badField(c, t.name, t.name+" is a time in RFC 3339, e.g. 2026-03-02T09:30:00Z")
				return
			}
			*t.to = at.UTC()
		}
	}
	q.Limit = 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			badField(c, "limit", "limit is from 1 to 500")
			return
		}
		q.Limit = n
	}
	if v := c.Query("cursor"); v != "" {
		cur, err := decodeCursor(v)
		if err != nil {
			badField(c, "cursor", "cursor must be the next value of an earlier answer")
			return
		}
		q.Before, q.BeforeKey = cur.At, cur.Key
	}
	results, err := h.engine.Search(c.Request.Context(), q, strings.TrimSpace(c.Query("adviceId")))
	if err != nil {
		storeDown(c, err)
		return
	}
	out := gin.H{"results": results}
	if len(results) == q.Limit {
		out["next"] = encodeCursor(results[len(results)-1])
	}
	httpapi.JSON(c, http.StatusOK, out)
}

func (h *handlers) queues(c *gin.Context) {
	qs, err := h.engine.Queues(c.Request.Context())
	if err != nil {
		storeDown(c, err)
		return
	}
	httpapi.JSON(c, http.StatusOK, gin.H{"partners": qs})
}

func (h *handlers) partner(c *gin.Context) (string, bool) {
	id := c.Param("partner")
	if !h.engine.HasQueue(id) {
		httpapi.Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.PartnerUnknown, "Partner not configured", "", ""))
		return "", false
	}
	return id, true
}

func (h *handlers) advices(c *gin.Context) {
	id, ok := h.partner(c)
	if !ok {
		return
	}
	state := qrswitch.AdviceState(c.DefaultQuery("state", string(qrswitch.AdviceDead)))
	switch state {
	case qrswitch.AdvicePending, qrswitch.AdviceHeld, qrswitch.AdviceDead, qrswitch.AdviceDone, qrswitch.AdviceMerged, qrswitch.AdviceOperator:
	default:
		badField(c, "state", "state is PENDING, HELD, OPERATOR, DEAD, DONE or MERGED")
		return
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			badField(c, "limit", "limit is from 1 to 500")
			return
		}
		limit = n
	}
	as, err := h.engine.Advices(c.Request.Context(), id, state, limit)
	if err != nil {
		storeDown(c, err)
		return
	}
	httpapi.JSON(c, http.StatusOK, gin.H{"advices": as})
}

func (h *handlers) audit(c *gin.Context) {
	id, ok := h.partner(c)
	if !ok {
		return
	}
	trail, err := h.engine.PartnerAudit(c.Request.Context(), id)
	if err != nil {
		storeDown(c, err)
		return
	}
	httpapi.JSON(c, http.StatusOK, gin.H{"audit": trail})
}

// action is the body of every operator action.
type action struct {
	Reason string `json:"reason"`
	// Outcome is the final outcome of an advice marked final.
	Outcome string `json:"outcome,omitempty"`
}

// operator decodes an action's body and names its operator.
func operator(c *gin.Context) (qrswitch.Operator, action, bool) {
	var a action
	if _, ok := httpapi.Decode(c, &a); !ok {
		return qrswitch.Operator{}, a, false
	}
	p, _ := httpapi.PrincipalOf(c)
	return qrswitch.Operator{Name: p.ID, Reason: a.Reason}, a, true
}

func failed(c *gin.Context, f *wire.Failure) {
	httpapi.FailCause(c, f.Status, f.Detail, f.Cause)
}

func (h *handlers) pause(c *gin.Context)  { h.control(c, h.engine.PausePartner) }
func (h *handlers) resume(c *gin.Context) { h.control(c, h.engine.ResumePartner) }

func (h *handlers) control(c *gin.Context, act func(context.Context, qrswitch.Operator, string) (*qrswitch.QueueControl, *wire.Failure)) {
	op, _, ok := operator(c)
	if !ok {
		return
	}
	ctl, f := act(c.Request.Context(), op, c.Param("partner"))
	if f != nil {
		failed(c, f)
		return
	}
	httpapi.JSON(c, http.StatusOK, ctl)
}

func (h *handlers) retryPartner(c *gin.Context) {
	op, _, ok := operator(c)
	if !ok {
		return
	}
	if f := h.engine.RetryPartner(c.Request.Context(), op, c.Param("partner")); f != nil {
		failed(c, f)
		return
	}
	httpapi.JSON(c, http.StatusAccepted, gin.H{"destination": c.Param("partner"), "retrying": true})
}

func adviceKey(c *gin.Context) string { return qrswitch.AdviceKey(c.Param("sender"), c.Param("id")) }

func (h *handlers) retryAdvice(c *gin.Context) {
	op, _, ok := operator(c)
	if !ok {
		return
	}
	h.adviceDone(c, func() (*qrswitch.Advice, *wire.Failure) {
		return h.engine.RetryAdvice(c.Request.Context(), op, adviceKey(c))
	})
}

func (h *handlers) replayAdvice(c *gin.Context) {
	op, _, ok := operator(c)
	if !ok {
		return
	}
	h.adviceDone(c, func() (*qrswitch.Advice, *wire.Failure) {
		return h.engine.ReplayAdvice(c.Request.Context(), op, adviceKey(c))
	})
}

func (h *handlers) finalizeAdvice(c *gin.Context) {
	op, body, ok := operator(c)
	if !ok {
		return
	}
	var o outcome.Outcome
	if body.Outcome != "successful" && body.Outcome != "failed" {
		badField(c, "outcome", "outcome is successful or failed: the final outcome the partner gave by other means")
		return
	}
	o.UnmarshalText([]byte(body.Outcome))
	h.adviceDone(c, func() (*qrswitch.Advice, *wire.Failure) {
		return h.engine.FinalizeAdvice(c.Request.Context(), op, adviceKey(c), o)
	})
}

func (h *handlers) adviceDone(c *gin.Context, act func() (*qrswitch.Advice, *wire.Failure)) {
	a, f := act()
	if f != nil {
		failed(c, f)
		return
	}
	if a.TranID != "" {
		httpapi.SetTranID(c, a.TranID)
	}
	httpapi.JSON(c, http.StatusOK, a)
}

// railKinds answers the kinds of records a partner's rail shows support.
func (h *handlers) railKinds(c *gin.Context) {
	kinds, err := h.engine.RailKinds(c.Param("partner"))
	if err != nil {
		httpapi.Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.UnableToLocateRecord, "No records shown for this partner", "", ""))
		return
	}
	httpapi.JSON(c, http.StatusOK, gin.H{"partner": c.Param("partner"), "kinds": kinds})
}

// railRecords lists a rail's records of one kind, newest first: ?before=
// a key to page from, ?limit= 1 to 200 (default 50); next is the cursor of
// the following page.
func (h *handlers) railRecords(c *gin.Context) {
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			badField(c, "limit", "limit: want 1 to 200")
			return
		}
		limit = n
	}
	recs, err := h.engine.RailRecords(c.Request.Context(), c.Param("partner"), c.Param("kind"), c.Query("before"), limit)
	switch {
	case errors.Is(err, qrswitch.ErrNotFound):
		httpapi.Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.UnableToLocateRecord, "No such records shown", "", ""))
		return
	case err != nil:
		storeDown(c, err)
		return
	}
	res := gin.H{"records": recs}
	if len(recs) == limit {
		res["next"] = recs[len(recs)-1].Key
	}
	httpapi.JSON(c, http.StatusOK, res)
}
