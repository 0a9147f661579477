package electrumsim

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// Quirk makes the simulator break one rule of the interface the way a
// partner's own implementation might, so that a conformance check
// ("qrswitch conform") can be shown to catch it. Unlike a fault, which
// makes an endpoint fail as a partner in trouble does, a quirk is a wrong
// answer given with confidence. Quirks are off until set, and stay on until
// cleared.
type Quirk string

// The quirks of SetQuirk.
const (
	// QuirkRepeatIsDuplicate answers an advice repeated with the same id 400
	// DUPLICATE_RECORD, instead of the answer the advice got the first time.
	// A switch that repeats an advice whose answer it lost then reads the
	// partner's refusal as final: the funds stay held, or are released,
	// against what the first delivery did.
	QuirkRepeatIsDuplicate Quirk = "repeat-is-duplicate"
)

// quirks are the quirks set. Readers load them without a lock: the
// simulator's hot path takes none.
type quirks struct {
	mu sync.Mutex // serialises writers
	on atomic.Pointer[[]Quirk]
}

// has reports whether q is set.
func (qs *quirks) has(q Quirk) bool {
	on := qs.on.Load()
	return on != nil && slices.Contains(*on, q)
}

// list returns the quirks set, in the order they were set.
func (qs *quirks) list() []Quirk {
	if on := qs.on.Load(); on != nil {
		return slices.Clone(*on)
	}
	return []Quirk{}
}

// QuirkSetting turns one quirk on or off: the body of POST /sim/v1/quirks.
type QuirkSetting struct {
	Quirk Quirk `json:"quirk"`
	On    bool  `json:"on"`
}

// Validate checks that the setting names a quirk of the simulator.
func (q *QuirkSetting) Validate() error {
	switch q.Quirk {
	case QuirkRepeatIsDuplicate:
		return nil
	case "":
		return &wire.FieldError{Field: "quirk", Reason: "is required"}
	default:
		return &wire.FieldError{Field: "quirk", Reason: "must be " + string(QuirkRepeatIsDuplicate)}
	}
}

// SetQuirk turns q on or off. An unknown quirk is refused with a
// *wire.FieldError.
func (s *Sim) SetQuirk(q Quirk, on bool) error {
	set := QuirkSetting{Quirk: q, On: on}
	if err := set.Validate(); err != nil {
		return err
	}
	qs := &s.quirks
	qs.mu.Lock()
	defer qs.mu.Unlock()
	list := slices.DeleteFunc(qs.list(), func(x Quirk) bool { return x == q })
	if on {
		list = append(list, q)
	}
	qs.on.Store(&list)
	return nil
}

// Quirks returns the quirks set, in the order they were set.
func (s *Sim) Quirks() []Quirk { return s.quirks.list() }

// repeatAsDuplicate answers a repeated advice as QuirkRepeatIsDuplicate
// has it.
func repeatAsDuplicate(w http.ResponseWriter, adv *wire.BasicAdvice) {
	writeError(w, http.StatusBadRequest,
		wire.NewErrorDetail(wire.DuplicateRecord, "Advice id already used", adv.ID, adv.TranID))
}

// serveQuirks answers GET /sim/v1/quirks with the quirks set, and POST
// /sim/v1/quirks (a QuirkSetting) by setting one and answering likewise.
func (s *Sim) serveQuirks(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		var set QuirkSetting
		if !decode(w, body, &set) {
			return
		}
		if err := s.SetQuirk(set.Quirk, set.On); err != nil {
			writeFormatError(w, err)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, wire.NewErrorDetail(wire.FunctionNotSupported, "Method not allowed", "", ""))
		return
	}
	writeValue(w, http.StatusOK, s.Quirks())
}
