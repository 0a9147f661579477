package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// message is a message of the interface the switch decodes and validates.
type message interface{ Validate() error }

// fuzzKinds are every JSON body the switch accepts (createQrCode, scans,
// pay, confirmations, reversals) and every partner answer it parses (an
// approval, an ErrorDetail), by the kind byte of FuzzMessage.
var fuzzKinds = []struct {
	name string
	new  func() message
}{
	{"CreateQrCodeRequest", func() message { return new(CreateQrCodeRequest) }},
	{"ScanNotification", func() message { return new(ScanNotification) }},
	{"PaymentRequest", func() message { return new(PaymentRequest) }},
	{"PaymentConfirmation", func() message { return new(PaymentConfirmation) }},
	{"PaymentReversal", func() message { return new(PaymentReversal) }},
	{"PaymentResponse", func() message { return new(PaymentResponse) }},
	{"ErrorDetail", func() message { return new(ErrorDetail) }},
}

// FuzzMessage decodes and validates any body as any message. Decode and
// Validate fail only with a *FieldError (surfaces turn it into 400
// FORMAT_ERROR naming the field); a message that passes both encodes (the
// switch stores, traces and forwards it), and what it encodes to decodes
// and validates again to the same bytes, so nothing the switch accepted
// changes or stops being acceptable on its way through.
//
//	go test ./wire -run '^$' -fuzz FuzzMessage -fuzztime 10m
func FuzzMessage(f *testing.F) {
	seeds := []string{
		`{"id":"8a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60","time":"2026-11-21T10:00:00.000Z","originator":{"institution":{"id":"1234","name":"Shop"},"terminalId":"T0000001","merchant":{"merchantType":"5411","merchantId":"M00000000000001","merchantName":{"name":"Corner Shop","city":"Cape Town","region":"WC","country":"ZA"}}},"client":{"id":"pos","name":"POS"},"qrProperties":{"value":{"amount":12345,"currency":"710"},"scheme":"EMVCO_MERCHANT","expiryDate":"2026-11-21T10:05:00Z"},"customer":{"x":[1,2]}}`,
		`{"id":"8a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60","time":"2026-11-21T10:00:00Z","partner":{"id":"wallet-a","name":"Wallet A"},"tranId":"f82d7f64feea4f2ab24da94aaf5c2941","partnerPaymentToken":"tok-123456789"}`,
		`{"id":"8a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60","time":"2026-11-21T10:00:00Z","originator":{"institution":{"id":"1234","name":"Shop"},"terminalId":"T0000001","merchant":{"merchantType":"5411","merchantId":"M00000000000001","merchantName":{"name":"Corner Shop","city":"Cape Town","country":"ZA"}}},"client":{"id":"pos","name":"POS"},"amounts":{"requestAmount":{"amount":100,"currency":"710","ledgerIndicator":"DEBIT"},"additionalAmounts":{"tip":{"amount":5,"currency":"710"}}},"tranId":"t1","slipData":{"lines":["a"]},"thirdPartyIdentifiers":[{"institutionId":"x","transactionIdentifier":"y"}]}`,
		`{"id":"8a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60","requestId":"9a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60","time":"2026-11-21T10:00:00Z","thirdPartyIdentifiers":[]}`,
		`{"id":"8a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60","requestId":"9a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60","time":"2026-11-21T10:00:00Z","reversalReason":"TIMEOUT","partner":{"id":"p","name":"P"}}`,
		`{"id":"x","time":"2026-11-21T10:00:00Z","thirdPartyIdentifiers":[],"amounts":{"approvedAmount":{"amount":100,"currency":"710"}},"partner":{"id":"p","name":"P"},"tranId":"t1","tenders":[{"tenderType":"CARD","cardNumber":"4111111111111111","amount":{"amount":100,"currency":"710"}}]}`,
		`{"id":"e","errorType":"INSUFFICIENT_FUNDS","errorMessage":"No money","detailMessage":{"why":[1,"two",null]}}`,
		`null`, `{}`, `[]`, `{"id":5}`, `{"amounts":{"requestAmount":{"amount":1e400}}}`, "{\"id\":\"\xff\"}",
	}
	for i, s := range seeds {
		f.Add(uint8(i%len(fuzzKinds)), []byte(s))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := fuzzKinds[int(kind)%len(fuzzKinds)]
		msg := k.new()
		var fe *FieldError
		if err := Decode(body, msg); err != nil {
			if !errors.As(err, &fe) {
				t.Fatalf("Decode(%s) = %T %v, want a *FieldError", k.name, err, err)
			}
			return
		}
		if err := msg.Validate(); err != nil {
			if !errors.As(err, &fe) {
				t.Fatalf("%s.Validate() = %T %v, want a *FieldError", k.name, err, err)
			}
			return
		}
		enc, err := json.Marshal(msg)
		if err != nil {
			t.Fatalf("a valid %s does not encode: %v (body %q)", k.name, err, body)
		}
		again := k.new()
		if err := Decode(enc, again); err != nil {
			t.Fatalf("a valid %s re-encoded as %s does not decode: %v", k.name, enc, err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("a valid %s re-encoded as %s no longer validates: %v", k.name, enc, err)
		}
		enc2, err := json.Marshal(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%s does not survive a round trip:\n%s\n%s (%v)", k.name, enc, enc2, err)
		}
		if masked := Mask(enc); !json.Valid(masked) {
			t.Fatalf("Mask made the %s invalid JSON: %s", k.name, masked)
		}
	})
}
