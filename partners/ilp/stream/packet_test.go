package stream

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/partners/ilp"
)

const maxJS = 1<<53 - 1

// allFrames has every frame type with edge values.
func allFrames() []Frame {
	return []Frame{
		ConnectionClose{Code: NoError, Message: ""},
		ConnectionClose{Code: ApplicationError, Message: "bye ✓"},
		ConnectionNewAddress{SourceAddress: ""},
		ConnectionNewAddress{SourceAddress: "private.SEND_ONLY_CLIENT"},
		ConnectionMaxData{MaxOffset: 0},
		ConnectionDataBlocked{MaxOffset: math.MaxUint64},
		ConnectionMaxStreamID{MaxStreamID: maxJS},
		ConnectionStreamIDBlocked{MaxStreamID: 256},
		ConnectionAssetDetails{AssetCode: "USD", AssetScale: 2},
		ConnectionAssetDetails{AssetCode: "", AssetScale: 255},
		StreamClose{StreamID: 1, Code: FlowControlError, Message: "too much"},
		StreamMoney{StreamID: 1, Shares: 1},
		StreamMoney{StreamID: math.MaxUint64, Shares: math.MaxUint64},
		StreamMaxMoney{StreamID: 1, ReceiveMax: math.MaxUint64, TotalReceived: 0},
		StreamMaxMoney{StreamID: 3, ReceiveMax: 1000, TotalReceived: 999},
		StreamMoneyBlocked{StreamID: 5, SendMax: maxJS + 2, TotalSent: 7},
		StreamData{StreamID: 1, Offset: 0, Data: []byte("hello")},
		StreamData{StreamID: 2, Offset: 1 << 40, Data: bytes.Repeat([]byte{0xee}, 300)},
		StreamMaxData{StreamID: 1, MaxOffset: 65536},
		StreamDataBlocked{StreamID: 1, MaxOffset: 1},
		StreamReceipt{StreamID: 1, Receipt: bytes.Repeat([]byte{1}, 58)},
	}
}

func samplePackets() map[string]*Packet {
	return map[string]*Packet{
		"empty prepare":  {Sequence: 0, ILPType: ilp.TypePrepare},
		"max sequence":   {Sequence: math.MaxUint64, ILPType: ilp.TypeFulfill, PrepareAmount: math.MaxUint64},
		"max js":         {Sequence: maxJS, ILPType: ilp.TypeReject, PrepareAmount: maxJS},
		"all frames":     {Sequence: 7, ILPType: ilp.TypePrepare, PrepareAmount: 1234, Frames: allFrames()},
		"reply frames":   {Sequence: 2, ILPType: ilp.TypeFulfill, PrepareAmount: 500, Frames: []Frame{StreamMaxMoney{StreamID: 1, ReceiveMax: 1000, TotalReceived: 500}, ConnectionAssetDetails{AssetCode: "XRP", AssetScale: 9}}},
		"128 seq":        {Sequence: 128, ILPType: ilp.TypeReject, PrepareAmount: 256},
		"single 0x10000": {Sequence: 0x10000, ILPType: ilp.TypePrepare, Frames: []Frame{StreamMoney{StreamID: 1, Shares: 0x10000}}},
	}
}

// frameFields describes f with ilp-protocol-stream's property names.
func frameFields(f Frame) map[string]string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	m := map[string]string{"type": strconv.Itoa(int(f.Type()))}
	switch f := f.(type) {
	case ConnectionClose:
		m["errorCode"], m["errorMessage"] = strconv.Itoa(int(f.Code)), f.Message
	case ConnectionNewAddress:
		m["sourceAccount"] = f.SourceAddress
	case ConnectionMaxData:
		m["maxOffset"] = u(f.MaxOffset)
	case ConnectionDataBlocked:
		m["maxOffset"] = u(f.MaxOffset)
	case ConnectionMaxStreamID:
		m["maxStreamId"] = u(f.MaxStreamID)
	case ConnectionStreamIDBlocked:
		m["maxStreamId"] = u(f.MaxStreamID)
	case ConnectionAssetDetails:
		m["sourceAssetCode"], m["sourceAssetScale"] = f.AssetCode, strconv.Itoa(int(f.AssetScale))
	case StreamClose:
		m["streamId"], m["errorCode"], m["errorMessage"] = u(f.StreamID), strconv.Itoa(int(f.Code)), f.Message
	case StreamMoney:
		m["streamId"], m["shares"] = u(f.StreamID), u(f.Shares)
	case StreamMaxMoney:
		m["streamId"], m["receiveMax"], m["totalReceived"] = u(f.StreamID), u(f.ReceiveMax), u(f.TotalReceived)
	case StreamMoneyBlocked:
		m["streamId"], m["sendMax"], m["totalSent"] = u(f.StreamID), u(f.SendMax), u(f.TotalSent)
	case StreamData:
		m["streamId"], m["offset"], m["data"] = u(f.StreamID), u(f.Offset), hex.EncodeToString(f.Data)
	case StreamMaxData:
		m["streamId"], m["maxOffset"] = u(f.StreamID), u(f.MaxOffset)
	case StreamDataBlocked:
		m["streamId"], m["maxOffset"] = u(f.StreamID), u(f.MaxOffset)
	case StreamReceipt:
		m["streamId"], m["receipt"] = u(f.StreamID), hex.EncodeToString(f.Receipt)
	}
	return m
}

type jsPacket struct {
	OK             bool             `json:"ok"`
	Error          string           `json:"error"`
	Hex            string           `json:"hex"`
	Sequence       string           `json:"sequence"`
	ILPPacketType  int              `json:"ilpPacketType"`
	PrepareAmount  string           `json:"prepareAmount"`
	Frames         []map[string]any `json:"frames"`
	Data           string           `json:"data"`
	EncryptionKey  string           `json:"encryptionKey"`
	FulfillmentKey string           `json:"fulfillmentKey"`
	Fulfillment    string           `json:"fulfillment"`
	Condition      string           `json:"condition"`
}

func runStreamJS(t *testing.T, cases []map[string]any) []jsPacket {
	t.Helper()
	in, _ := json.Marshal(cases)
	out := jstest.Run(t, filepath.Join("testdata", "streampacket.js"), in)
	var res []jsPacket
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("reading streampacket.js output (%d cases): %v\n%s", len(cases), err, out)
	}
	return res
}

func describe(p *Packet) map[string]any {
	frames := make([]map[string]string, len(p.Frames))
	for i, f := range p.Frames {
		frames[i] = frameFields(f)
	}
	return map[string]any{
		"sequence":      strconv.FormatUint(p.Sequence, 10),
		"ilpPacketType": int(p.ILPType),
		"prepareAmount": strconv.FormatUint(p.PrepareAmount, 10),
		"frames":        frames,
	}
}

// checkJSDescribes compares what ilp-protocol-stream reported with p.
func checkJSDescribes(t *testing.T, r jsPacket, p *Packet) {
	t.Helper()
	if !r.OK {
		t.Fatalf("ilp-protocol-stream failed: %s", r.Error)
	}
	if r.Sequence != strconv.FormatUint(p.Sequence, 10) || r.ILPPacketType != int(p.ILPType) || r.PrepareAmount != strconv.FormatUint(p.PrepareAmount, 10) {
		t.Errorf("ilp-protocol-stream header = %s/%d/%s, want %d/%d/%d", r.Sequence, r.ILPPacketType, r.PrepareAmount, p.Sequence, p.ILPType, p.PrepareAmount)
	}
	if len(r.Frames) != len(p.Frames) {
		t.Fatalf("ilp-protocol-stream read %d frames, want %d", len(r.Frames), len(p.Frames))
	}
	for i, f := range p.Frames {
		want := frameFields(f)
		got := map[string]string{}
		for k, v := range r.Frames[i] {
			switch v := v.(type) {
			case string:
				got[k] = v
			case float64:
				got[k] = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d: ilp-protocol-stream read %v, want %v", i, got, want)
		}
	}
}

func TestPacketRoundTrip(t *testing.T) {
	for name, p := range samplePackets() {
		t.Run(name, func(t *testing.T) {
			b, _ := p.MarshalBinary()
			got, err := DecodePacket(b)
			if err != nil {
				t.Fatalf("DecodePacket(%x) error = %v", b, err)
			}
			if !reflect.DeepEqual(describe(got), describe(p)) {
				t.Errorf("DecodePacket(MarshalBinary()) = %v, want %v", describe(got), describe(p))
			}
		})
	}
}

// TestGoEncodesJSDecodes: ilp-protocol-stream reads every Go-encoded packet
// to the same fields and re-serializes the same bytes.
func TestGoEncodesJSDecodes(t *testing.T) {
	pkts := samplePackets()
	var names []string
	var cases []map[string]any
	enc := map[string]string{}
	for n, p := range pkts {
		b, _ := p.MarshalBinary()
		enc[n] = hex.EncodeToString(b)
		names = append(names, n)
		cases = append(cases, map[string]any{"op": "decode", "hex": enc[n]})
	}
	res := runStreamJS(t, cases)
	for i, n := range names {
		t.Run(n, func(t *testing.T) {
			checkJSDescribes(t, res[i], pkts[n])
			if res[i].Hex != enc[n] {
				t.Errorf("ilp-protocol-stream re-serialized\n %s\nwant\n %s", res[i].Hex, enc[n])
			}
		})
	}
}

// TestJSEncodesGoDecodes: packets built and serialized by
// ilp-protocol-stream decode in Go to the same fields and bytes.
func TestJSEncodesGoDecodes(t *testing.T) {
	pkts := samplePackets()
	var names []string
	var cases []map[string]any
	for n, p := range pkts {
		names = append(names, n)
		cases = append(cases, map[string]any{"op": "encode", "packet": describe(p)})
	}
	res := runStreamJS(t, cases)
	for i, n := range names {
		t.Run(n, func(t *testing.T) {
			if !res[i].OK {
				t.Fatalf("ilp-protocol-stream serialize: %s", res[i].Error)
			}
			b, _ := hex.DecodeString(res[i].Hex)
			got, err := DecodePacket(b)
			if err != nil {
				t.Fatalf("DecodePacket(ilp-protocol-stream %s) error = %v", res[i].Hex, err)
			}
			if !reflect.DeepEqual(describe(got), describe(pkts[n])) {
				t.Errorf("DecodePacket(ilp-protocol-stream) = %v, want %v", describe(got), describe(pkts[n]))
			}
			if mine, _ := pkts[n].MarshalBinary(); !bytes.Equal(mine, b) {
				t.Errorf("MarshalBinary() = %x, ilp-protocol-stream %x", mine, b)
			}
		})
	}
}

// TestDecodeTolerance: unknown frame types are skipped, junk after the
// frames is ignored, over-wide receiveMax and sendMax saturate, and octets
// after a frame's known fields are ignored — by Go and by
// ilp-protocol-stream alike.
func TestDecodeTolerance(t *testing.T) {
	known := StreamMoney{StreamID: 1, Shares: 5}
	kb := known.appendContents(nil)
	tests := []struct {
		name string
		raw  []byte
		want *Packet
	}{
		{
			name: "unknown frame",
			raw:  append([]byte{1, 12, 1, 9, 1, 0, 1, 2, 0x99, 3, 1, 2, 3, byte(TypeStreamMoney), byte(len(kb))}, kb...),
			want: &Packet{Sequence: 9, ILPType: ilp.TypePrepare, Frames: []Frame{known}},
		},
		{
			name: "junk data",
			raw:  append([]byte{1, 13, 1, 1, 1, 5, 1, 0}, make([]byte, 40)...),
			want: &Packet{Sequence: 1, ILPType: ilp.TypeFulfill, PrepareAmount: 5},
		},
		{
			name: "wide receiveMax",
			raw:  []byte{1, 14, 1, 1, 1, 0, 1, 1, byte(TypeStreamMaxMoney), 14, 1, 1, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3},
			want: &Packet{Sequence: 1, ILPType: ilp.TypeReject, Frames: []Frame{StreamMaxMoney{StreamID: 1, ReceiveMax: math.MaxUint64, TotalReceived: 3}}},
		},
		{
			name: "wide sendMax",
			raw:  []byte{1, 12, 1, 1, 1, 0, 1, 1, byte(TypeStreamMoneyBlocked), 15, 1, 2, 10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4},
			want: &Packet{Sequence: 1, ILPType: ilp.TypePrepare, Frames: []Frame{StreamMoneyBlocked{StreamID: 2, SendMax: math.MaxUint64, TotalSent: 4}}},
		},
		{
			name: "frame extension",
			raw:  append([]byte{1, 12, 1, 1, 1, 0, 1, 1, byte(TypeStreamMoney), byte(len(kb) + 2)}, append(bytes.Clone(kb), 0xaa, 0xbb)...),
			want: &Packet{Sequence: 1, ILPType: ilp.TypePrepare, Frames: []Frame{known}},
		},
	}
	var cases []map[string]any
	for _, tt := range tests {
		cases = append(cases, map[string]any{"op": "decode", "hex": hex.EncodeToString(tt.raw)})
	}
	res := runStreamJS(t, cases)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePacket(tt.raw)
			if err != nil {
				t.Fatalf("DecodePacket(%x) error = %v", tt.raw, err)
			}
			if !reflect.DeepEqual(describe(got), describe(tt.want)) {
				t.Errorf("DecodePacket(%x) = %v, want %v", tt.raw, describe(got), describe(tt.want))
			}
			checkJSDescribes(t, res[i], tt.want)
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	tests := map[string][]byte{
		"empty":             {},
		"version 2":         {2, 12, 1, 0, 1, 0, 1, 0},
		"ILP type 15":       {1, 15, 1, 0, 1, 0, 1, 0},
		"no frame count":    {1, 12, 1, 0, 1, 0},
		"empty varuint":     {1, 12, 0, 1, 0, 1, 0},
		"9-octet sequence":  {1, 12, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0},
		"count too large":   {1, 12, 1, 0, 1, 0, 1, 5, 1, 0},
		"truncated frame":   {1, 12, 1, 0, 1, 0, 1, 1, 0x11, 5, 1, 1},
		"bad frame content": {1, 12, 1, 0, 1, 0, 1, 1, 0x11, 1, 9},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if p, err := DecodePacket(b); !errors.Is(err, ErrInvalidPacket) {
				t.Errorf("DecodePacket(%x) = %+v, %v, want ErrInvalidPacket", b, p, err)
			}
		})
	}
}

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestEncryptionCrossCheck: Go seals, ilp-protocol-stream opens, and the
// reverse; both derive the same keys, fulfillment and condition.
func TestEncryptionCrossCheck(t *testing.T) {
	sec := sha256.Sum256([]byte("shared secret"))
	keys, err := NewKeys(sec[:])
	if err != nil {
		t.Fatal(err)
	}
	pkt := samplePackets()["all frames"]
	data, err := keys.SealPacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	res := runStreamJS(t, []map[string]any{
		{"op": "open", "secret": hex.EncodeToString(sec[:]), "data": hex.EncodeToString(data)},
		{"op": "seal", "secret": hex.EncodeToString(sec[:]), "packet": describe(pkt)},
	})
	checkJSDescribes(t, res[0], pkt)
	f := keys.FulfillmentFor(data)
	c := keys.ConditionFor(data)
	if res[0].Fulfillment != hex.EncodeToString(f[:]) || res[0].Condition != hex.EncodeToString(c[:]) {
		t.Errorf("fulfillment/condition: ilp-protocol-stream %s/%s, Go %x/%x", res[0].Fulfillment, res[0].Condition, f, c)
	}
	s := res[1]
	if !s.OK {
		t.Fatalf("ilp-protocol-stream seal: %s", s.Error)
	}
	if s.EncryptionKey != hex.EncodeToString(keys.Encryption[:]) || s.FulfillmentKey != hex.EncodeToString(keys.Fulfillment[:]) {
		t.Errorf("keys: ilp-protocol-stream %s/%s, Go %x/%x", s.EncryptionKey, s.FulfillmentKey, keys.Encryption, keys.Fulfillment)
	}
	jsData, _ := hex.DecodeString(s.Data)
	got, err := keys.OpenPacket(jsData)
	if err != nil {
		t.Fatalf("OpenPacket(ilp-protocol-stream data) error = %v", err)
	}
	if !reflect.DeepEqual(describe(got), describe(pkt)) {
		t.Errorf("OpenPacket(ilp-protocol-stream) = %v, want %v", describe(got), describe(pkt))
	}
	jf := keys.FulfillmentFor(jsData)
	if s.Fulfillment != hex.EncodeToString(jf[:]) {
		t.Errorf("FulfillmentFor(js data) = %x, ilp-protocol-stream %s", jf, s.Fulfillment)
	}
	// Tampering and the wrong key are refused.
	bad := bytes.Clone(jsData)
	bad[len(bad)-1] ^= 1
	if _, err := keys.OpenPacket(bad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("OpenPacket(tampered) error = %v, want ErrDecrypt", err)
	}
	other, _ := NewKeys(secret(9))
	if _, err := other.OpenPacket(jsData); !errors.Is(err, ErrDecrypt) {
		t.Errorf("OpenPacket(other key) error = %v, want ErrDecrypt", err)
	}
	if _, err := keys.Open(make([]byte, Overhead-1)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open(27 octets) error = %v, want ErrDecrypt", err)
	}
	if _, err := NewKeys(make([]byte, 31)); !errors.Is(err, ErrSecret) {
		t.Errorf("NewKeys(31 octets) error = %v, want ErrSecret", err)
	}
	if strings.Count(ErrorCode(9).String()+ErrorCode(77).String(), "Error") != 2 {
		t.Errorf("ErrorCode names: %s %s", ErrorCode(9), ErrorCode(77))
	}
}
