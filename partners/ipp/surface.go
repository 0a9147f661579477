package ipp

import (
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
)

// retailerPath is what a retailer id in a brand may be.
var retailerPath = regexp.MustCompile(`^[a-z0-9][a-z0-9._~-]{0,15}$`)

// brandPage is a retailer's brand page: the declaration of its manifest
// (section 1).
func (r *Rail) brandPage(w http.ResponseWriter, req *http.Request) {
	ret := req.PathValue("retailer")
	if !retailerPath.MatchString(ret) {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=300")
	m := html.EscapeString(r.base + "/b/" + ret + "/manifest.json")
	w.Write([]byte(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>` + html.EscapeString(r.brandOf(ret)) +
		`</title><meta name="ipp_manifest" content="` + m + `" /></head><body><p>IPP brand ` + html.EscapeString(r.brandOf(ret)) + `</p></body></html>`))
}

// manifest is a retailer's manifest (section 2): the switch's accountant
// endpoint, its certificate when it signs, the auditors' reports.
func (r *Rail) manifest(w http.ResponseWriter, req *http.Request) {
	ret := req.PathValue("retailer")
	if !retailerPath.MatchString(ret) {
		http.NotFound(w, req)
		return
	}
	m := protocol.Manifest{Version: protocol.Version, Brand: r.brandOf(ret), Accountants: []string{r.base + "/accountant"},
		Reports: []string{r.base + "/reports"}, Schemes: []string{protocol.SchemeQuery}}
	if r.signer.Key != nil {
		m.KeyCert = []string{r.base + "/cert.pem"}
		m.Schemes = append(m.Schemes, protocol.SchemeRSA)
	}
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, http.StatusOK, m)
}

func (r *Rail) cert(w http.ResponseWriter, req *http.Request) {
	if r.certPEM == nil {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(r.certPEM)
}

// query answers a verification query about one of the switch's own
// records: GET …/accountant?ver_query=SHA1.
func (r *Rail) query(w http.ResponseWriter, req *http.Request) {
	sum := req.URL.Query().Get("ver_query")
	if len(sum) != 40 {
		writeJSON(w, http.StatusBadRequest, protocol.QueryReply{Code: protocol.CodeBadRequest, Status: protocol.CodeBadRequest.Status(), Message: "ver_query: want a record's SHA1 in hex"})
		return
	}
	rec, err := r.records.Get(req.Context(), kindOwn, sum)
	if errors.Is(err, partners.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, protocol.QueryReply{Code: protocol.CodeVerification, Status: protocol.CodeVerification.Status(), Message: "no record of this accountant has this SHA1"})
		return
	}
	if err != nil {
		partners.SetCause(w, err)
		writeJSON(w, http.StatusInternalServerError, protocol.QueryReply{Code: protocol.CodeServerError, Status: protocol.CodeServerError.Status(), Message: "the store is unavailable; ask again"})
		return
	}
	var o own
	json.Unmarshal(rec.Data, &o)
	writeJSON(w, http.StatusOK, protocol.QueryReply{Code: o.Code, Status: o.Status, Record: o.Record})
}

// ReportEntry is one mutually approved record as auditors read it.
type ReportEntry struct {
	Key         string             `json:"key"`
	State       protocol.State     `json:"state"`
	Role        string             `json:"role"`
	Offer       string             `json:"offer"`
	Decision    protocol.Code      `json:"decision"`
	Record      string             `json:"record"`
	Scheme      string             `json:"ver_scheme"`
	VerData     string             `json:"ver_data"`
	Evidence    *protocol.Evidence `json:"evidence"`
	Counterpart string             `json:"counterpart"`
	Decided     time.Time          `json:"decided"`
	XTime       int64              `json:"xtime"`
}

// reports serves the mutually approved records (approved or reset) to
// auditors: GET …/reports?brand=&since=&until=&status=, since and until
// in unixtime (xtime), status approved or reset.
func (r *Rail) reports(w http.ResponseWriter, req *http.Request) {
	if _, ok := r.authAuditor(req); !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ipp reports"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "an auditor's bearer token is required"})
		return
	}
	q := req.URL.Query()
	var since, until int64
	for _, b := range []struct {
		name string
		v    *int64
	}{{"since", &since}, {"until", &until}} {
		if s := q.Get(b.name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"message": b.name + ": want unixtime"})
				return
			}
			*b.v = n
		}
	}
	status := protocol.State(q.Get("status"))
	if status != "" && !status.Reportable() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "status: approved or reset"})
		return
	}
	index := "reportable"
	if b := q.Get("brand"); b != "" {
		index = "brand:" + b
	}
	recs, err := r.records.List(req.Context(), partners.RecordQuery{Kind: kindPayment, Index: index, Limit: 1000})
	if err != nil {
		partners.SetCause(w, err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "the store is unavailable; try again"})
		return
	}
	out := []ReportEntry{}
	for _, rec := range recs {
		var p payment
		if json.Unmarshal(rec.Data, &p) != nil || !p.State.Reportable() || (status != "" && p.State != status) {
			continue
		}
		n, err := parseStored(p.Offer)
		if err != nil || (since != 0 && n.XTime < since) || (until != 0 && n.XTime > until) {
			continue
		}
		out = append(out, ReportEntry{Key: p.Key, State: p.State, Role: p.Role, Offer: p.Offer, Decision: p.Decision, Record: p.DecisionRecord,
			Scheme: p.DecisionScheme, VerData: p.DecisionData, Evidence: p.Evidence, Counterpart: p.Counterpart, Decided: p.Decided, XTime: n.XTime})
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": out})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
