package qr

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Object is one TLV data object of a payload.
type Object struct {
	// Tag is the two-digit tag.
	Tag string `json:"tag"`
	// Value is the raw value, for a template the encoding of its children.
	Value string `json:"value"`
	// Children are the objects inside a template (26–51, 62, 64, 80–99 at
	// the top level; 50–99 inside 62); nil for a primitive object.
	Children []Object `json:"children,omitempty"`
}

// Child returns the first child with the tag and whether there is one.
func (o Object) Child(tag string) (Object, bool) { return find(o.Children, tag) }

// Document is a decoded payload: its top-level objects in payload order.
type Document struct {
	// Objects are the top-level objects; the first is 00 and, when the
	// payload has a CRC, the last is 63.
	Objects []Object
}

// Get returns the top-level object with the tag and whether there is one.
func (d *Document) Get(tag string) (Object, bool) { return find(d.Objects, tag) }

// HasCRC reports whether the payload carried a CRC (tag 63). Decode has
// already checked it.
func (d *Document) HasCRC() bool {
	_, ok := d.Get(tagCRC)
	return ok
}

// Accounts returns the merchant account templates (26–51) in payload order.
func (d *Document) Accounts() []MerchantAccount {
	var out []MerchantAccount
	for _, o := range d.Objects {
		if n := tagNum(o.Tag); n >= firstAccountTag && n <= lastAccountTag {
			out = append(out, accountOf(n, o))
		}
	}
	return out
}

// Account returns the first merchant account template whose GUID (sub-tag
// 00) is guid, compared case-insensitively as GUIDs are reverse domain names
// written both ways in the wild ("BR.GOV.BCB.PIX", "br.gov.bcb.pix").
func (d *Document) Account(guid string) (MerchantAccount, bool) {
	for _, o := range d.Objects {
		n := tagNum(o.Tag)
		if n < firstAccountTag || n > lastAccountTag {
			continue
		}
		if g, ok := o.Child("00"); ok && strings.EqualFold(g.Value, guid) {
			return accountOf(n, o), true
		}
	}
	return MerchantAccount{}, false
}

func accountOf(tag int, o Object) MerchantAccount {
	a := MerchantAccount{Tag: tag}
	for _, c := range o.Children {
		if c.Tag == "00" && a.GUID == "" {
			a.GUID = c.Value
			continue
		}
		a.Fields = append(a.Fields, Field{Tag: c.Tag, Value: c.Value})
	}
	return a
}

func find(objs []Object, tag string) (Object, bool) {
	for _, o := range objs {
		if o.Tag == tag {
			return o, true
		}
	}
	return Object{}, false
}

// TranID returns the Electrum tranId of a payload: sub-tag 01 of the
// template whose GUID is ElectrumProvider. It decodes the payload strictly
// first, so a payload with a bad CRC or structure gives that error; a valid
// payload without the template or without sub-tag 01 gives an error
// wrapping ErrNoTranID.
func TranID(payload string) (string, error) { return TranIDFor(payload, ElectrumProvider) }

// TranIDFor is TranID for a switch that writes its tranId under another
// provider GUID than ElectrumProvider.
func TranIDFor(payload, guid string) (string, error) {
	d, err := Decode(payload)
	if err != nil {
		return "", err
	}
	a, ok := d.Account(guid)
	if !ok {
		return "", fmt.Errorf("qr: %w: no merchant account template with GUID %s", ErrNoTranID, guid)
	}
	id, ok := a.Field("01")
	if !ok {
		return "", fmt.Errorf("qr: %w: template %d (%s) has no sub-tag 01", ErrNoTranID, a.Tag, guid)
	}
	return id, nil
}

const (
	tagCRC          = "63"
	firstAccountTag = 26
	lastAccountTag  = 51
	// stackObjects is how many objects of one level are collected on the
	// stack before the exact-size copy to the heap; more still work.
	stackObjects = 24
)

// Decode parses a payload into its objects, nested templates included.
//
// It is strict on structure: every object is a two-digit tag, a two-digit
// length from 01 to 99 counted in characters, and that many characters of
// value; the payload starts with 000201; no tag repeats at one level; the
// CRC (63), when present, is the last object, four hexadecimal digits, and
// matches. A payload without a CRC is accepted only in the Electrum-minimal
// form (no top-level tags other than 00 and 26–51). It is lenient on which
// optional fields are present and on their contents.
//
// Errors are *SyntaxError values that unwrap to ErrFormat, ErrEncoding,
// ErrTag, ErrLength, ErrTrailing, ErrDuplicate, ErrCRC or ErrNoCRC.
func Decode(s string) (*Document, error) {
	if !strings.HasPrefix(s, "000201") {
		return nil, &SyntaxError{Pos: 0, Msg: "a payload starts with 000201 (payload format indicator 00 = 01)", Err: ErrFormat}
	}
	if !utf8.ValidString(s) {
		return nil, &SyntaxError{Pos: firstInvalidUTF8(s), Msg: "the payload is not UTF-8 text", Err: ErrEncoding}
	}
	crcPos := -1
	objs, err := parseObjects(s, 0, len(s), -1, &crcPos)
	if err != nil {
		return nil, err
	}
	last := objs[len(objs)-1]
	if crcPos < 0 {
		for _, o := range objs {
			if n := tagNum(o.Tag); n != 0 && (n < firstAccountTag || n > lastAccountTag) {
				return nil, &SyntaxError{Pos: len(s), Msg: fmt.Sprintf("a payload with tag %s must end with a CRC (63)", o.Tag), Err: ErrNoCRC}
			}
		}
		return &Document{Objects: objs}, nil
	}
	if last.Tag != tagCRC {
		return nil, &SyntaxError{Pos: crcPos, Msg: "the CRC (63) must be the last object", Err: ErrCRC}
	}
	want, ok := parseCRCHex(last.Value)
	if !ok {
		return nil, &SyntaxError{Pos: crcPos + 4, Msg: fmt.Sprintf("CRC %q is not four hexadecimal digits", last.Value), Err: ErrCRC}
	}
	if got := crcUpdateString(0xFFFF, s[:crcPos+4]); got != want {
		return nil, &SyntaxError{Pos: crcPos + 4, Msg: fmt.Sprintf("CRC is %s, the payload's is %04X", last.Value, got), Err: ErrCRC}
	}
	return &Document{Objects: objs}, nil
}

// parseObjects parses s[start:end] as a sequence of objects. parent is the
// enclosing template's tag number, -1 at the top level, where crcPos
// receives the offset of tag 63.
func parseObjects(s string, start, end, parent int, crcPos *int) ([]Object, error) {
	var stack [stackObjects]Object
	objs := stack[:0]
	var seen [2]uint64
	i := start
	for i < end {
		if end-i < 4 {
			return nil, &SyntaxError{Pos: i, Msg: fmt.Sprintf("%d bytes cannot hold a tag and a length", end-i), Err: ErrTrailing}
		}
		tag, ok := twoDigits(s[i], s[i+1])
		if !ok {
			return nil, &SyntaxError{Pos: i, Msg: fmt.Sprintf("tag %q is not two digits", s[i:i+2]), Err: ErrTag}
		}
		n, ok := twoDigits(s[i+2], s[i+3])
		if !ok {
			return nil, &SyntaxError{Pos: i + 2, Msg: fmt.Sprintf("length %q of tag %s is not two digits", s[i+2:i+4], s[i:i+2]), Err: ErrLength}
		}
		if n == 0 {
			return nil, &SyntaxError{Pos: i + 2, Msg: fmt.Sprintf("tag %s has length 00", s[i:i+2]), Err: ErrLength}
		}
		if seen[tag/64]&(1<<(tag%64)) != 0 {
			return nil, &SyntaxError{Pos: i, Msg: fmt.Sprintf("tag %s appears twice", s[i:i+2]), Err: ErrDuplicate}
		}
		seen[tag/64] |= 1 << (tag % 64)
		vstart := i + 4
		vend, ok := skipRunes(s, vstart, end, n)
		if !ok {
			return nil, &SyntaxError{Pos: i + 2, Msg: fmt.Sprintf("tag %s has length %d, only %d characters follow", s[i:i+2], n, utf8.RuneCountInString(s[vstart:end])), Err: ErrLength}
		}
		o := Object{Tag: s[i : i+2], Value: s[vstart:vend]}
		if isTemplate(parent, tag) {
			children, err := parseObjects(s, vstart, vend, tag, nil)
			if err != nil {
				return nil, err
			}
			o.Children = children
		}
		if parent < 0 && tag == 63 {
			*crcPos = i
		}
		objs = append(objs, o)
		i = vend
	}
	out := make([]Object, len(objs))
	copy(out, objs)
	return out, nil
}

// isTemplate reports whether a tag inside the parent template (-1 for the
// top level) holds nested objects rather than a primitive value.
func isTemplate(parent, tag int) bool {
	switch parent {
	case -1:
		return tag >= firstAccountTag && tag <= lastAccountTag || tag == 62 || tag == 64 || tag >= 80
	case 62:
		// 62.50–99 are payment system specific templates.
		return tag >= 50
	}
	return false
}

func twoDigits(a, b byte) (int, bool) {
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

// tagNum returns the number of a two-digit tag, or -1.
func tagNum(tag string) int {
	if len(tag) != 2 {
		return -1
	}
	n, ok := twoDigits(tag[0], tag[1])
	if !ok {
		return -1
	}
	return n
}

// skipRunes returns the byte offset n characters after i, or false when
// s[i:end] holds fewer. s is valid UTF-8.
func skipRunes(s string, i, end, n int) (int, bool) {
	for ; n > 0; n-- {
		if i >= end {
			return i, false
		}
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:end])
		i += size
	}
	return i, true
}

func firstInvalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}
