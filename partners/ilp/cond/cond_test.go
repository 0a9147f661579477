package cond

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/internal/jstest"
)

// The seed (001, §5.1 and §5.13) shows one fulfillment in two forms and the
// condition it was checked against.
const (
	seedPreimage    = "hi8Rtk8WiOQkwv5bpeXrSoRj41bPXR8c3hfn5i_6zyQ"
	seedFulfillment = "oCKAIIYvEbZPFojkJML-W6Xl60qEY-NWz10fHN4X5-Yv-s8k"
	seedCondition   = "ni:///sha-256;sbawjV8idAMItrwviBMq4zMOkuo_lRLNMm1KPPVFM2A?fpt=preimage-sha-256&cost=32"
)

// The seed's prepared transfers carry other conditions, for other transfers.
var seedOtherConditions = []string{
	"ni:///sha-256;ajsbKuxey2ZYhT9LUzUcz1ccczwIhoYfgrGbfuzy-NA?fpt=preimage-sha-256&cost=32",
	"ni:///sha-256;xQxWWKWXGw7JaYI62rZ5uu3mXLAnjf2yJbrtC3Xv4Sk?fpt=preimage-sha-256&cost=32",
	"ni:///sha-256;C2EmAmpD_dylQ8iiI4S-afyvxINo-TRomDJI5tgc-0Y?fpt=preimage-sha-256&cost=32",
}

// TestSeedValues: the seed's two fulfillment forms carry the same preimage,
// and it fulfills the seed's condition; it fulfills none of the seed's
// other transfers' conditions.
func TestSeedValues(t *testing.T) {
	raw, err := ParsePreimage(seedPreimage, 32)
	if err != nil {
		t.Fatalf("ParsePreimage(%s) error = %v", seedPreimage, err)
	}
	der, err := ParseFulfillment(seedFulfillment)
	if err != nil {
		t.Fatalf("ParseFulfillment(%s) error = %v", seedFulfillment, err)
	}
	if !bytes.Equal(raw.Preimage, der.Preimage) {
		t.Fatalf("seed preimage %x != DER fulfillment's preimage %x", raw.Preimage, der.Preimage)
	}
	if got := raw.String(); got != seedFulfillment {
		t.Errorf("Fulfillment(seed preimage).String() = %s, want %s", got, seedFulfillment)
	}
	if got := der.PreimageString(); got != seedPreimage {
		t.Errorf("PreimageString() = %s, want %s", got, seedPreimage)
	}
	c, err := ParseCondition(seedCondition)
	if err != nil {
		t.Fatalf("ParseCondition(%s) error = %v", seedCondition, err)
	}
	if err := c.Verify(der); err != nil {
		t.Errorf("Verify(seed fulfillment) against seed condition = %v, want nil", err)
	}
	if got := der.Condition().String(); got != seedCondition {
		t.Errorf("Condition().String() = %s, want %s", got, seedCondition)
	}
	if c != FromILP(sha256.Sum256(raw.Preimage)) {
		t.Errorf("FromILP(sha256(preimage)) = %+v, want %+v", FromILP(sha256.Sum256(raw.Preimage)), c)
	}
	for _, s := range seedOtherConditions {
		o, err := ParseCondition(s)
		if err != nil {
			t.Fatalf("ParseCondition(%s) error = %v", s, err)
		}
		if err := o.Verify(der); !errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(seed fulfillment) against %s = %v, want ErrMismatch", s, err)
		}
	}
}

func TestConditionRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 33, 127, 128, 255, 256, 65535, 65536} {
		pre := bytes.Repeat([]byte{byte(n)}, n)
		f := Fulfillment{Preimage: pre}
		c := f.Condition()
		u, err := ParseCondition(c.String())
		if err != nil || u != c {
			t.Errorf("ParseCondition(%s) = %+v, %v, want %+v", c, u, err, c)
		}
		b, _ := c.MarshalBinary()
		cb, err := ParseConditionBinary(b)
		if err != nil || cb != c {
			t.Errorf("ParseConditionBinary(%x) = %+v, %v, want %+v", b, cb, err, c)
		}
		fb, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		g, err := ParseFulfillmentBinary(fb)
		if err != nil || !bytes.Equal(g.Preimage, pre) {
			t.Errorf("ParseFulfillmentBinary(len %d) = %v, want the preimage", n, err)
		}
		g, err = ParseFulfillment(f.String())
		if err != nil || !bytes.Equal(g.Preimage, pre) {
			t.Errorf("ParseFulfillment(String()) len %d = %v", n, err)
		}
		if err := c.Verify(g); err != nil {
			t.Errorf("Verify(len %d) = %v", n, err)
		}
	}
}

func TestParseConditionRefuses(t *testing.T) {
	fp := "sbawjV8idAMItrwviBMq4zMOkuo_lRLNMm1KPPVFM2A"
	tests := []struct {
		in   string
		want error
	}{
		{"ni:///sha-256;" + fp + "?fpt=prefix-sha-256&cost=32&subtypes=preimage-sha-256", ErrMalformed},
		{"ni:///sha-256;" + fp + "?fpt=ed25519-sha-256&cost=131072", ErrUnsupportedType},
		{"ni:///sha-256;" + fp + "?cost=32", ErrMalformed},
		{"ni:///sha-256;" + fp + "?fpt=preimage-sha-256", ErrMalformed},
		{"ni:///sha-256;" + fp + "?fpt=preimage-sha-256&cost=032", ErrMalformed},
		{"ni:///sha-256;" + fp + "?fpt=preimage-sha-256&cost=-1", ErrMalformed},
		{"ni:///sha-256;" + fp + "?fpt=preimage-sha-256&cost=2097153", ErrMalformed},
		{"ni:///sha-256;" + fp + "?fpt=preimage-sha-256&cost=32&cost=33", ErrMalformed},
		{"ni:///sha-256;" + fp[:42] + "?fpt=preimage-sha-256&cost=32", ErrMalformed},
		{"ni:///sha-256;" + strings.ReplaceAll(fp, "_", "/") + "?fpt=preimage-sha-256&cost=32", ErrMalformed},
		{"ni:///sha-512;" + fp + "?fpt=preimage-sha-256&cost=32", ErrMalformed},
		{"cc:0:3:" + fp + ":32", ErrMalformed},
		{"ni:///sha-256;" + fp, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.in[len(tt.in)-20:], func(t *testing.T) {
			if c, err := ParseCondition(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("ParseCondition(%s) = %+v, %v, want %v", tt.in, c, err, tt.want)
			}
		})
	}
	// Query parameters in the other order, and unknown ones, are accepted.
	c, err := ParseCondition("ni:///sha-256;" + fp + "?cost=32&x=y&fpt=preimage-sha-256")
	if err != nil || c.Cost != 32 {
		t.Errorf("ParseCondition(reordered) = %+v, %v", c, err)
	}
	// Padded base64url is accepted, as five-bells-condition accepts it.
	if _, err := ParseFulfillment(seedFulfillment); err != nil {
		t.Fatal(err)
	}
	if f, err := ParsePreimage(seedPreimage+"=", 32); err != nil || f.PreimageString() != seedPreimage {
		t.Errorf("ParsePreimage(padded) = %v", err)
	}
}

func TestParseFulfillmentRefuses(t *testing.T) {
	good, _ := Fulfillment{Preimage: bytes.Repeat([]byte{7}, 32)}.MarshalBinary()
	long, _ := Fulfillment{Preimage: bytes.Repeat([]byte{7}, 200)}.MarshalBinary()
	nonMinimal := append([]byte{0xa0, 0x81, 0x22}, good[2:]...)
	tests := map[string]struct {
		in   []byte
		want error
	}{
		"empty":           {nil, ErrMalformed},
		"truncated":       {good[:len(good)-1], ErrMalformed},
		"trailing":        {append(bytes.Clone(good), 0), ErrMalformed},
		"inner trailing":  {[]byte{0xa0, 0x03, 0x80, 0x00, 0x00}, ErrMalformed},
		"non-minimal len": {nonMinimal, ErrMalformed},
		"long form ok":    {long, nil},
		"prefix type":     {[]byte{0xa1, 0x00}, ErrUnsupportedType},
		"ed25519 type":    {[]byte{0xa4, 0x00}, ErrUnsupportedType},
		"wrong inner tag": {[]byte{0xa0, 0x02, 0x81, 0x00}, ErrMalformed},
		"indefinite":      {[]byte{0xa0, 0x80, 0x80, 0x00, 0x00, 0x00}, ErrMalformed},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseFulfillmentBinary(tt.in)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("ParseFulfillmentBinary(%x) error = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	if _, err := ParseFulfillment("oCKAIIYvEbZPFojkJML+W6Xl60qEY+NWz10fHN4X5+Yv+s8k"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseFulfillment(standard base64) error = %v, want ErrMalformed", err)
	}
	if _, err := ParsePreimage(seedPreimage[:40], 32); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParsePreimage(30 octets, want 32) error = %v, want ErrMalformed", err)
	}
}

type jsOut struct {
	OK              bool   `json:"ok"`
	Error           string `json:"error"`
	Type            string `json:"type"`
	Preimage        string `json:"preimage"`
	URI             string `json:"uri"`
	Binary          string `json:"binary"`
	ConditionURI    string `json:"conditionUri"`
	ConditionBinary string `json:"conditionBinary"`
	Fingerprint     string `json:"fingerprint"`
	Cost            uint32 `json:"cost"`
	Valid           bool   `json:"valid"`
}

func runJS(t *testing.T, cases []map[string]any) []jsOut {
	t.Helper()
	in, _ := json.Marshal(cases)
	out := jstest.Run(t, filepath.Join("testdata", "condition.js"), in)
	var res []jsOut
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("reading condition.js output (%d cases): %v\n%s", len(cases), err, out)
	}
	return res
}

func preimages() map[string][]byte {
	seed, _ := ParsePreimage(seedPreimage, 32)
	return map[string][]byte{
		"seed": seed.Preimage,
		"zero": {},
		"one":  {0x80},
		"127":  bytes.Repeat([]byte{1}, 127),
		"128":  bytes.Repeat([]byte{2}, 128),
		"300":  bytes.Repeat([]byte{3}, 300),
	}
}

// TestJSMakesGoParses: fulfillments and conditions made by
// five-bells-condition parse in Go to the same preimage and condition, and
// Go re-encodes them to the same text and DER.
func TestJSMakesGoParses(t *testing.T) {
	pres := preimages()
	var names []string
	var cases []map[string]any
	for n, p := range pres {
		names = append(names, n)
		cases = append(cases, map[string]any{"op": "fromPreimage", "preimage": hex.EncodeToString(p)})
	}
	res := runJS(t, cases)
	for i, n := range names {
		t.Run(n, func(t *testing.T) {
			r := res[i]
			if !r.OK {
				t.Fatalf("five-bells-condition failed: %s", r.Error)
			}
			f, err := ParseFulfillment(r.URI)
			if err != nil || !bytes.Equal(f.Preimage, pres[n]) {
				t.Fatalf("ParseFulfillment(%s) = %x, %v, want %x", r.URI, f.Preimage, err, pres[n])
			}
			bin, _ := hex.DecodeString(r.Binary)
			if fb, _ := f.MarshalBinary(); !bytes.Equal(fb, bin) {
				t.Errorf("MarshalBinary() = %x, want five-bells %s", fb, r.Binary)
			}
			c, err := ParseCondition(r.ConditionURI)
			if err != nil {
				t.Fatalf("ParseCondition(%s) error = %v", r.ConditionURI, err)
			}
			if c.String() != r.ConditionURI || c != f.Condition() {
				t.Errorf("condition %s: Go %s / %+v", r.ConditionURI, c, f.Condition())
			}
			cbin, _ := hex.DecodeString(r.ConditionBinary)
			cb, err := ParseConditionBinary(cbin)
			if err != nil || cb != c {
				t.Errorf("ParseConditionBinary(%s) = %+v, %v, want %+v", r.ConditionBinary, cb, err, c)
			}
			if mb, _ := c.MarshalBinary(); !bytes.Equal(mb, cbin) {
				t.Errorf("Condition.MarshalBinary() = %x, want five-bells %s", mb, r.ConditionBinary)
			}
		})
	}
}

// TestGoMakesJSParses: Go's encodings, the seed's included, are read by
// five-bells-condition to the same values, and it validates the seed
// fulfillment against the seed condition (and refuses the others).
func TestGoMakesJSParses(t *testing.T) {
	pres := preimages()
	var names []string
	var cases []map[string]any
	for n, p := range pres {
		f := Fulfillment{Preimage: p}
		c := f.Condition()
		cb, _ := c.MarshalBinary()
		names = append(names, n)
		cases = append(cases,
			map[string]any{"op": "parseFulfillment", "uri": f.String()},
			map[string]any{"op": "parseCondition", "uri": c.String()},
			map[string]any{"op": "parseConditionBinary", "hex": hex.EncodeToString(cb)},
			map[string]any{"op": "validate", "fulfillment": f.String(), "condition": c.String()},
		)
	}
	res := runJS(t, cases)
	for i, n := range names {
		t.Run(n, func(t *testing.T) {
			f := Fulfillment{Preimage: pres[n]}
			c := f.Condition()
			rf, rc, rcb, rv := res[4*i], res[4*i+1], res[4*i+2], res[4*i+3]
			if !rf.OK || rf.Preimage != hex.EncodeToString(pres[n]) || rf.ConditionURI != c.String() || rf.Type != TypeName {
				t.Errorf("five-bells fromFulfillmentUri(%s) = %+v", f, rf)
			}
			if !rc.OK || rc.Fingerprint != hex.EncodeToString(c.Fingerprint[:]) || rc.Cost != c.Cost || rc.URI != c.String() {
				t.Errorf("five-bells fromConditionUri(%s) = %+v", c, rc)
			}
			if !rcb.OK || rcb.URI != c.String() {
				t.Errorf("five-bells fromConditionBinary = %+v, want %s", rcb, c)
			}
			if !rv.OK || !rv.Valid {
				t.Errorf("five-bells validateFulfillment = %+v, want valid", rv)
			}
		})
	}
	seed := []map[string]any{
		{"op": "validate", "fulfillment": seedFulfillment, "condition": seedCondition},
	}
	for _, o := range seedOtherConditions {
		seed = append(seed, map[string]any{"op": "validate", "fulfillment": seedFulfillment, "condition": o})
	}
	seed = append(seed, map[string]any{"op": "parseFulfillment", "uri": seedFulfillment})
	r := runJS(t, seed)
	if !r[0].OK || !r[0].Valid {
		t.Errorf("five-bells validateFulfillment(seed) = %+v, want valid", r[0])
	}
	for j := range seedOtherConditions {
		if r[1+j].OK {
			t.Errorf("five-bells validateFulfillment(seed, %s) = valid, want refused", seedOtherConditions[j])
		}
	}
	last := r[len(r)-1]
	seedDER, _ := base64.RawURLEncoding.DecodeString(seedFulfillment)
	if !last.OK || last.ConditionURI != seedCondition || last.Binary != hex.EncodeToString(seedDER) {
		t.Errorf("five-bells fromFulfillmentUri(seed) = %+v", last)
	}
}
