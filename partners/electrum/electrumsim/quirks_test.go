package electrumsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/qrswitch/qrswitch/internal/wire"
)

func TestQuirkRepeatIsDuplicate(t *testing.T) {
	e := newEnv(t, Config{})
	req := e.approved(1000)
	c := confirmation(req.ID)
	first := e.confirm(c)
	if first.err != nil || first.status != http.StatusAccepted {
		t.Fatalf("confirm = %d %v %s, want 202", first.status, first.err, first.body)
	}
	if again := e.confirm(c); again.status != first.status || !bytes.Equal(again.body, first.body) {
		t.Fatalf("repeated confirm without the quirk = %d %s, want the first answer %d %s", again.status, again.body, first.status, first.body)
	}

	r := e.do(http.MethodPost, "/sim/v1/quirks", QuirkSetting{Quirk: QuirkRepeatIsDuplicate, On: true})
	var set []Quirk
	if r.status != http.StatusOK || json.Unmarshal(r.body, &set) != nil || !slices.Equal(set, []Quirk{QuirkRepeatIsDuplicate}) {
		t.Fatalf("POST /sim/v1/quirks = %d %s, want 200 [repeat-is-duplicate]", r.status, r.body)
	}
	wantError(t, "repeated confirm with the quirk", e.confirm(c), http.StatusBadRequest, wire.DuplicateRecord)
	// A first delivery is answered as always.
	other := e.approved(1001)
	if r := e.reverse(reversal(other.ID)); r.status != http.StatusAccepted {
		t.Fatalf("first reversal with the quirk = %d %s, want 202", r.status, r.body)
	}
	if got := e.payment(req.ID).State; got != StateCaptured {
		t.Errorf("payment after the quirky answer = %s, want still captured", got)
	}

	if err := e.sim.SetQuirk(QuirkRepeatIsDuplicate, false); err != nil {
		t.Fatal(err)
	}
	if again := e.confirm(c); again.status != first.status || !bytes.Equal(again.body, first.body) {
		t.Fatalf("repeated confirm after clearing the quirk = %d %s, want the first answer", again.status, again.body)
	}
	if got := e.sim.Quirks(); len(got) != 0 {
		t.Errorf("Quirks() after clearing = %v, want none", got)
	}
}

func TestQuirkControls(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tt := range []struct {
		name   string
		method string
		body   any
		status int
	}{
		{"list", http.MethodGet, nil, http.StatusOK},
		{"unknown quirk", http.MethodPost, QuirkSetting{Quirk: "be-rude", On: true}, http.StatusBadRequest},
		{"no quirk", http.MethodPost, map[string]any{"on": true}, http.StatusBadRequest},
		{"malformed", http.MethodPost, []byte(`{"quirk":`), http.StatusBadRequest},
		{"other method", http.MethodDelete, nil, http.StatusMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, "/sim/v1/quirks", tt.body)
			if r.err != nil || r.status != tt.status {
				t.Fatalf("%s /sim/v1/quirks = %d %v %s, want %d", tt.method, r.status, r.err, r.body, tt.status)
			}
			if tt.status != http.StatusOK {
				errorDetail(t, r.body)
			}
		})
	}
	if err := e.sim.SetQuirk("be-rude", true); err == nil {
		t.Error("SetQuirk(be-rude) = nil, want an error")
	}
}
