package electrumsim

import (
	"net/http"
)

// serveFaults answers GET /sim/v1/faults with the faults in force.
func (s *Sim) serveFaults(w http.ResponseWriter, _ *http.Request) {
	writeValue(w, http.StatusOK, s.Faults())
}

// serveSetFault answers POST /sim/v1/faults: it sets one fault and answers
// with the faults in force.
func (s *Sim) serveSetFault(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var f Fault
	if !decode(w, body, &f) {
		return
	}
	if err := s.SetFault(f); err != nil {
		writeFormatError(w, err)
		return
	}
	writeValue(w, http.StatusOK, s.Faults())
}

// serveClearFaults answers DELETE /sim/v1/faults.
func (s *Sim) serveClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

// serveLedger answers GET /sim/v1/ledger, or only its totals with
// ?view=totals.
func (s *Sim) serveLedger(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("view") == "totals" {
		writeValue(w, http.StatusOK, struct {
			Totals Totals `json:"totals"`
		}{s.Totals()})
		return
	}
	writeValue(w, http.StatusOK, s.Ledger())
}

// serveReset answers POST /sim/v1/reset.
func (s *Sim) serveReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// serveHealth answers GET /sim/v1/health.
func (s *Sim) serveHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}
