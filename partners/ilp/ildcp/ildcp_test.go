package ildcp

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

func TestCondition(t *testing.T) {
	// IL-RFC 31 gives the condition of every request in base64.
	if got := base64.StdEncoding.EncodeToString(Condition[:]); got != "Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU=" {
		t.Errorf("Condition = %s, want IL-RFC 31's Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU=", got)
	}
}

func TestAnswerAndRead(t *testing.T) {
	cfg := Config{ClientAddress: "test.parent.child1", AssetScale: 9, AssetCode: "XRP"}
	req := Request(time.Now().Add(time.Minute))
	if !IsRequest(req) {
		t.Fatalf("IsRequest(Request()) = false")
	}
	rep := Answer(req, cfg, "test.parent")
	got, err := ReadReply(rep)
	if err != nil || got != cfg {
		t.Errorf("ReadReply(Answer()) = %+v, %v, want %+v", got, err, cfg)
	}
	bad := *req
	bad.ExecutionCondition[0] ^= 1
	if rj, ok := Answer(&bad, cfg, "test.parent").(*ilp.Reject); !ok || rj.Code != ilp.F05WrongCondition {
		t.Errorf("Answer(wrong condition) = %+v, want F05", rj)
	}
	if rj, ok := Answer(req, Config{}, "test.parent").(*ilp.Reject); !ok || rj.Code != ilp.F02Unreachable {
		t.Errorf("Answer(no address) = %+v, want F02", rj)
	}
	if _, err := ReadReply(&ilp.Reject{Code: ilp.F02Unreachable}); err == nil {
		t.Errorf("ReadReply(Reject) = nil error")
	}
	for _, b := range [][]byte{{}, {3, 'a', 'b', 'c', 1}, {5, 'g', '.', 'a', 'b', 'c'}, {3, 'g', '.', 'a'}} {
		if _, err := ParseConfig(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseConfig(%x) error = %v, want ErrInvalid", b, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	b, _ := Config{ClientAddress: "g.a.b", AssetScale: 2, AssetCode: "USD"}.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(ParseConfig(%x)) error = %v", b, err)
		}
		if c2, err := ParseConfig(again); err != nil || c2 != c {
			t.Fatalf("round trip of %x: %+v, %v", b, c2, err)
		}
	})
}
