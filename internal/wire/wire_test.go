package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func validRequest() *PaymentRequest {
	return &PaymentRequest{
		Transaction: Transaction{
			ID: "8a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f60", Time: "2026-11-21T10:00:00.000Z",
			Originator: &Originator{
				Institution: Institution{ID: "1234", Name: "Shop"},
				TerminalID:  "T0000001",
				Merchant: Merchant{MerchantType: "5411", MerchantID: "M00000000000001",
					MerchantName: MerchantName{Name: "Corner Shop", City: "Cape Town", Region: "WC", Country: "ZA"}},
			},
			Client: &Institution{ID: "pos", Name: "POS"},
		},
		Amounts: &Amounts{RequestAmount: &LedgerAmount{Amount: 100, Currency: "710"}},
		TranID:  "f82d7f64feea4f2ab24da94aaf5c2941",
	}
}

func TestPaymentRequestValidate(t *testing.T) {
	if err := validRequest().Validate(); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	tests := []struct {
		field  string
		mutate func(*PaymentRequest)
	}{
		{"id", func(r *PaymentRequest) { r.ID = "" }},
		{"id", func(r *PaymentRequest) { r.ID = "8a1f6f3e-2c5b-4b8e-9f0a-1b2c3d4e5f6g" }},
		{"time", func(r *PaymentRequest) { r.Time = "2026-11-21 10:00" }},
		{"originator", func(r *PaymentRequest) { r.Originator = nil }},
		{"originator.terminalId", func(r *PaymentRequest) { r.Originator.TerminalID = "T00000001" }},
		{"originator.merchant.merchantId", func(r *PaymentRequest) { r.Originator.Merchant.MerchantID = "M1" }},
		{"originator.merchant.merchantType", func(r *PaymentRequest) { r.Originator.Merchant.MerchantType = "54a1" }},
		{"originator.merchant.merchantName.name", func(r *PaymentRequest) { r.Originator.Merchant.MerchantName.Name = strings.Repeat("n", 24) }},
		{"originator.merchant.merchantName.city", func(r *PaymentRequest) { r.Originator.Merchant.MerchantName.City = strings.Repeat("c", 14) }},
		{"originator.institution.name", func(r *PaymentRequest) { r.Originator.Institution.Name = "" }},
		{"client", func(r *PaymentRequest) { r.Client = nil }},
		{"amounts", func(r *PaymentRequest) { r.Amounts = nil }},
		{"amounts.requestAmount", func(r *PaymentRequest) { r.Amounts.RequestAmount = nil }},
		{"amounts.requestAmount.currency", func(r *PaymentRequest) { r.Amounts.RequestAmount.Currency = "71" }},
		{"amounts.requestAmount.amount", func(r *PaymentRequest) { r.Amounts.RequestAmount.Amount = -1 }},
		{"amounts.requestAmount.ledgerIndicator", func(r *PaymentRequest) { r.Amounts.RequestAmount.LedgerIndicator = "UP" }},
		{"tranId", func(r *PaymentRequest) { r.TranID = "" }},
		{"thirdPartyIdentifiers[0].institutionId", func(r *PaymentRequest) { r.ThirdPartyIdentifiers = []ThirdPartyIdentifier{{}} }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			r := validRequest()
			tt.mutate(r)
			err := r.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate() = %v, want a FieldError naming %s", err, tt.field)
			}
		})
	}
}

func TestValidateNormalisesThirdParties(t *testing.T) {
	r := validRequest()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"thirdPartyIdentifiers":[]`) {
		t.Fatalf("validated request encodes thirdPartyIdentifiers as %s, want []", b)
	}
}

func TestAdviceValidate(t *testing.T) {
	ok := PaymentReversal{BasicAdvice: BasicAdvice{ID: NewID(), RequestID: NewID(), Time: "2026-11-21T10:00:00Z"}, ReversalReason: ReasonCancelled}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(valid reversal) = %v", err)
	}
	for _, tt := range []struct {
		field string
		r     PaymentReversal
	}{
		{"reversalReason", PaymentReversal{BasicAdvice: ok.BasicAdvice}},
		{"reversalReason", PaymentReversal{BasicAdvice: ok.BasicAdvice, ReversalReason: "BORED"}},
		{"requestId", PaymentReversal{BasicAdvice: BasicAdvice{ID: NewID(), Time: ok.Time}, ReversalReason: ReasonTimeout}},
	} {
		var fe *FieldError
		if err := tt.r.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("Validate(%+v) = %v, want a FieldError naming %s", tt.r, err, tt.field)
		}
	}
	c := PaymentConfirmation{BasicAdvice: BasicAdvice{ID: NewID(), RequestID: NewID(), Time: "2026-11-21T10:00:00Z"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(valid confirmation) = %v", err)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		body  string
		field string
		ok    bool
	}{
		{`{"id":"x","unknownField":1}`, "", true},
		{``, "", false},
		{`   `, "", false},
		{`{"id":`, "", false},
		{`{"id":5}`, "id", false},
		{`{"amounts":{"requestAmount":{"amount":"ten"}}}`, "amounts.requestAmount.amount", false},
		{`[]`, "", false},
		{`{"id":"a"} {"id":"b"}`, "", false},
		{`null`, "", true},
	}
	for _, tt := range tests {
		var r PaymentRequest
		err := Decode([]byte(tt.body), &r)
		if tt.ok != (err == nil) {
			t.Errorf("Decode(%q) = %v, want ok=%v", tt.body, err, tt.ok)
			continue
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != tt.field) {
			t.Errorf("Decode(%q) = %v, want a FieldError naming %q", tt.body, err, tt.field)
		}
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"partnerPaymentToken":"abcdefgh12345678"}`, `{"partnerPaymentToken":"****5678"}`},
		{`{"partnerPaymentToken":"short"}`, `{"partnerPaymentToken":"****"}`},
		{`{"tenders":[{"cardNumber":"4111111111111111"}]}`, `{"tenders":[{"cardNumber":"411111******1111"}]}`},
		{`{"password" : "hunter2", "x":"password"}`, `{"password" : "****", "x":"password"}`},
		{`{"note":"\"partnerPaymentToken\":\"abc\""}`, `{"note":"\"partnerPaymentToken\":\"abc\""}`},
		{`{"partnerPaymentToken":"abc\"defghijkl"}`, `{"partnerPaymentToken":"****"}`},
		{`{"partnerPaymentToken":"truncated-secret-value`, `{"partnerPaymentToken":"****"`},
		{`{"a":1}`, `{"a":1}`},
		{``, ``},
	}
	for _, tt := range tests {
		if got := string(Mask([]byte(tt.in))); got != tt.want {
			t.Errorf("Mask(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzMask(f *testing.F) {
	f.Add([]byte(`{"partnerPaymentToken":"abcdefgh12345678","cardNumber":"4111111111111111"}`))
	f.Add([]byte(`{"x":"\\","partnerPaymentToken":"\u0041"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := Mask(b)
		if json.Valid(b) && !json.Valid(out) {
			t.Fatalf("Mask turned valid JSON %q into invalid %q", b, out)
		}
		var v map[string]any
		if json.Unmarshal(out, &v) == nil {
			if tok, ok := v["partnerPaymentToken"].(string); ok && len(tok) > 8 && !strings.HasPrefix(tok, "****") {
				t.Fatalf("token left in clear: %q", tok)
			}
		}
	})
}

func TestNewIDAndShortMessage(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !IsUUID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("NewID() = %s, not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %s", id)
		}
		seen[id] = true
	}
	long := strings.Repeat("é", 50)
	if got := ShortMessage(long); len([]rune(got)) != MaxErrorMessage {
		t.Fatalf("ShortMessage cut to %d characters, want %d", len([]rune(got)), MaxErrorMessage)
	}
	d := NewErrorDetail(InsufficientFunds, long, "o", "t")
	if d.ErrorType != InsufficientFunds || len([]rune(d.ErrorMessage)) > MaxErrorMessage || len(d.ID) != 20 {
		t.Fatalf("NewErrorDetail = %+v, want an id of 20 characters (the interface's maxLength) and a message of at most %d", d, MaxErrorMessage)
	}
	ids := map[string]bool{}
	for range 1000 {
		id := NewErrorID()
		if len(id) != 20 || strings.Trim(id, "0123456789abcdef") != "" || ids[id] {
			t.Fatalf("NewErrorID() = %q: want 20 fresh hex digits", id)
		}
		ids[id] = true
	}
	if !IsErrorType(NoScanReceived) || IsErrorType("NOPE") {
		t.Fatal("IsErrorType is wrong")
	}
}

func TestDetails(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"detailMessage":{"message":"m","field":"f","n":1}}`, `{"message":"m","field":"f","n":1}`},
		{`{"detailMessage":"a string from a partner"}`, `{"message":"a string from a partner"}`},
		{`{"detailMessage":42}`, `{"message":42}`},
		{`{"detailMessage":null}`, `null`},
		{`{}`, `null`},
	} {
		var d ErrorDetail
		if err := json.Unmarshal([]byte(tt.in), &d); err != nil {
			t.Fatalf("decoding %s: %v", tt.in, err)
		}
		got, _ := json.Marshal(d.DetailMessage)
		var a, b any
		json.Unmarshal(got, &a)
		json.Unmarshal([]byte(tt.want), &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("detailMessage of %s = %s, want %s", tt.in, got, tt.want)
		}
	}
	out, _ := json.Marshal(NewErrorDetail(FormatError, "x", "", ""))
	if strings.Contains(string(out), "detailMessage") {
		t.Errorf("an ErrorDetail without details = %s, want no detailMessage", out)
	}
	f := FormatFailure(&FieldError{Field: "originator.terminalId", Reason: "must be 8 characters"}, "id-1")
	if f.Status != 400 || f.Detail.DetailMessage["field"] != "originator.terminalId" || f.Detail.DetailMessage.Message() == "" {
		t.Errorf("FormatFailure = %d %+v, want 400 with the field in detailMessage", f.Status, f.Detail)
	}
}
