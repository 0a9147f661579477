package contract_test

import (
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/qrswitch/qrswitch/internal/openapi"
	"github.com/qrswitch/qrswitch/internal/openapi/contract"
	"github.com/qrswitch/qrswitch/internal/wire"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

func load(t *testing.T) *contract.Document {
	t.Helper()
	d, err := contract.Load()
	if err != nil {
		t.Fatalf("contract.Load() = %v", err)
	}
	return d
}

// TestDocumentIsOpenAPI31 checks the embedded document with the validator
// (Load fails on an invalid one) and the rules we keep in it: every
// operation named and secured, every failure an ErrorDetail.
func TestDocumentIsOpenAPI31(t *testing.T) {
	doc := load(t).OpenAPI()
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("document version = %q, want 3.1.0", doc.OpenAPI)
	}
	public := map[string]bool{"getOpenAPIDocument": true, "supportConsole": true, "supportConsoleFile": true, "supportConsoleRedirect": true}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: operationId %q missing or used twice", name, op.OperationID)
			}
			ids[op.OperationID] = true
			switch {
			case op.Security == nil:
				t.Errorf("%s: no security requirement (say `security: []` for a public operation)", name)
			case len(*op.Security) == 0 && !public[op.OperationID]:
				t.Errorf("%s: public, want Basic authentication", name)
			case len(*op.Security) > 0:
				for _, status := range []string{"401", "403", "429"} {
					if op.Responses.Value(status) == nil {
						t.Errorf("%s: authenticated but declares no %s", name, status)
					}
				}
			}
			for status, resp := range op.Responses.Map() {
				if status[0] != '4' && status[0] != '5' {
					continue
				}
				mt := resp.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Value != doc.Components.Schemas["ErrorDetail"].Value {
					t.Errorf("%s: answer %s is not an ErrorDetail", name, status)
				}
			}
		}
	}
	// The interface's operations are all there, under their names.
	for _, id := range []string{"createQrCode", "pay", "confirmPayment", "reversePayment", "notifyScan", "getQrCodeImage"} {
		if !ids[id] {
			t.Errorf("no operation %s", id)
		}
	}
	// The generator's defects, corrected (see the reference's README).
	schemas := doc.Components.Schemas
	if s := schemas["QrProperties"].Value.Properties["expiryDate"].Value; !s.Type.Is("string") || s.Format != "date-time" {
		t.Errorf("QrProperties.expiryDate = %v %q, want a date-time string", s.Type, s.Format)
	}
	ed := schemas["ErrorDetail"].Value
	if s := ed.Properties["detailMessage"].Value; !s.Type.Is("object") {
		t.Errorf("ErrorDetail.detailMessage type = %v, want object", s.Type)
	}
	if s := ed.Properties["id"].Value; s.MaxLength == nil || *s.MaxLength != 20 {
		t.Errorf("ErrorDetail.id maxLength = %v, want 20", s.MaxLength)
	}
}

func TestParseRefuses(t *testing.T) {
	good := string(openapi.Document())
	for _, tt := range []struct{ name, doc string }{
		{"OpenAPI 3.0", strings.Replace(good, "openapi: 3.1.0", "openapi: 3.0.3", 1)},
		{"a dangling reference", strings.Replace(good, `$ref: "#/components/schemas/Merchant"`, `$ref: "#/components/schemas/Nobody"`, 1)},
		{"not YAML", "openapi: [3.1"},
		{"a bad pattern", strings.Replace(good, `pattern: "^[0-9]{4}$"`, `pattern: "^[0-9{4}$"`, 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := contract.Parse([]byte(tt.doc)); err == nil {
				t.Fatal("Parse = nil, want an error")
			}
		})
	}
}

const (
	uuidA = "4f1c3a6e-2b1d-4c8e-9a7f-0e5d6c7b8a91"
	uuidB = "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
)

var (
	confirmation = `{"id":"` + uuidA + `","requestId":"` + uuidB + `","time":"2026-03-02T09:00:00.000Z","thirdPartyIdentifiers":[]}`
	payment      = `{"id":"` + uuidA + `","time":"2026-03-02T09:00:00.000Z","originator":{"institution":{"id":"1234","name":"Shop"},` +
		`"terminalId":"T0000001","merchant":{"merchantType":"5411","merchantId":"M00000000000001",` +
		`"merchantName":{"name":"Corner Shop","city":"Cape Town","region":"WC","country":"ZA"}}},` +
		`"client":{"id":"pos","name":"POS"},"amounts":{"requestAmount":{"amount":1000,"currency":"710"}},"tranId":"f82d7f64feea4f2ab24da94aaf5c2941"}`
	errorDetail = `{"id":"0123456789abcdef0123","errorType":"FORMAT_ERROR","errorMessage":"Invalid field id","detailMessage":{"message":"id: must be a UUID","field":"id"}}`
)

func request(t *testing.T, method, path, body string, auth bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "https://switch.test"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.SetBasicAuth("shop-1", "secret")
	}
	return req
}

func TestCheckExchange(t *testing.T) {
	d := load(t)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name         string
		method, path string
		body         string
		auth         bool
		status       int
		header       http.Header
		answer       string
		want         string // a part of the error; "" for none
	}{
		{"confirmation accepted", "POST", "/qr/v1/payments/confirmations", confirmation, true, 202, jsonHeader, confirmation, ""},
		{"confirmation refused", "POST", "/qr/v1/payments/confirmations", confirmation, true, 400, jsonHeader, errorDetail, ""},
		{"malformed confirmation refused", "POST", "/qr/v1/payments/confirmations", `{"id":`, true, 400, jsonHeader, errorDetail, ""},
		{"malformed confirmation accepted", "POST", "/qr/v1/payments/confirmations", `{"id":"x"}`, true, 202, jsonHeader, confirmation, "yet was answered 202"},
		{"no credentials, 401", "POST", "/qr/v1/payments/confirmations", confirmation, false, 401, jsonHeader, errorDetail, ""},
		{"no credentials, accepted", "POST", "/qr/v1/payments/confirmations", confirmation, false, 202, jsonHeader, confirmation, "Basic"},
		{"undeclared status", "POST", "/qr/v1/payments/confirmations", confirmation, true, 418, jsonHeader, errorDetail, "status is not supported"},
		{"error id of a UUID", "POST", "/qr/v1/payments/confirmations", confirmation, true, 400, jsonHeader,
			strings.Replace(errorDetail, "0123456789abcdef0123", uuidA, 1), "/id"},
		{"detailMessage a string", "POST", "/qr/v1/payments/confirmations", confirmation, true, 400, jsonHeader,
			`{"id":"0123456789abcdef0123","errorType":"FORMAT_ERROR","errorMessage":"Invalid","detailMessage":"id: bad"}`, "detailMessage"},
		{"unknown errorType", "POST", "/qr/v1/payments/confirmations", confirmation, true, 400, jsonHeader,
			strings.Replace(errorDetail, "FORMAT_ERROR", "OOPS", 1), "errorType"},
		{"approval without partner", "POST", "/qr/v1/payments", payment, true, 201, jsonHeader, `{"id":"` + uuidA + `"}`, "is missing"},
		{"scan accepted, no body", "POST", "/qr/v1/scans",
			`{"id":"` + uuidA + `","time":"2026-03-02T09:00:00Z","partner":{"id":"wallet-a","name":"Wallet A"},"tranId":"f82d7f64feea4f2ab24da94aaf5c2941"}`,
			true, 202, http.Header{}, "", ""},
		{"429 without Retry-After", "POST", "/qr/v1/scans", `{}`, true, 429, jsonHeader, errorDetail, "Retry-After"},
		{"unknown path, 404", "GET", "/qr/v1/nothing", "", true, 404, jsonHeader, errorDetail, ""},
		{"unknown path, 200", "GET", "/qr/v1/nothing", "", true, 200, jsonHeader, `{}`, "no such operation"},
		{"image", "GET", "/qr/v1/qrCodes/abc/image.png?size=300", "", true, 200, http.Header{"Content-Type": {"image/png"}, "Cache-Control": {"no-store"}}, "\x89PNG", ""},
		{"image too small, accepted", "GET", "/qr/v1/qrCodes/abc/image.png?size=10", "", true, 200, http.Header{"Content-Type": {"image/png"}}, "\x89PNG", "yet was answered 200"},
		{"support search, bad state refused", "GET", "/support/v1/transactions?state=NOPE", "", true, 400, jsonHeader, errorDetail, ""},
		{"support search, bad state accepted", "GET", "/support/v1/transactions?state=NOPE", "", true, 200, jsonHeader, `{"results":[]}`, "yet was answered 200"},
		{"support record with an unknown field", "GET", "/support/v1/saf/wallet-a/audit", "", true, 200, jsonHeader,
			`{"audit":[{"at":"2026-03-02T09:00:00Z","direction":"in","peer":"operator:alice","operation":"pausePartner","kind":"event","color":"red"}]}`, "color"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, tt.method, tt.path, tt.body, tt.auth)
			err := d.CheckExchange(req, []byte(tt.body), tt.status, tt.header, []byte(tt.answer))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckExchange = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("CheckExchange = nil, want an error about %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("CheckExchange = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestCheckValue(t *testing.T) {
	d := load(t)
	for _, tt := range []struct {
		schema, body string
		ok           bool
	}{
		{"ErrorDetail", errorDetail, true},
		{"ErrorDetail", `{"id":"x","errorType":"GENERAL_ERROR","errorMessage":"` + strings.Repeat("m", 41) + `"}`, false},
		{"PaymentConfirmation", confirmation, true},
		{"PaymentConfirmation", strings.Replace(confirmation, `"thirdPartyIdentifiers":[]`, `"thirdPartyIdentifiers":null`, 1), true},
		{"PaymentConfirmation", strings.Replace(confirmation, "2026-03-02T09:00:00.000Z", "yesterday", 1), false},
		{"PaymentReversal", confirmation, false},
		{"PaymentReversal", strings.Replace(confirmation, `{`, `{"reversalReason":"CANCELLED",`, 1), true},
		{"ErrorDetail", `{} {}`, false},
		{"Nobody", `{}`, false},
	} {
		err := d.CheckValue(tt.schema, []byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("CheckValue(%s, %s) = %v, want ok %v", tt.schema, tt.body, err, tt.ok)
		}
	}
}

// properties returns the names of a schema's properties, its allOf parts'
// included.
func properties(s *openapi3.Schema) []string {
	var names []string
	for name := range s.Properties {
		names = append(names, name)
	}
	for _, part := range s.AllOf {
		names = append(names, properties(part.Value)...)
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// jsonFields returns the JSON names of a struct type's fields, embedded
// structs' included.
func jsonFields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
		case f.Anonymous && tag == "":
			names = append(names, jsonFields(f.Type)...)
		case f.IsExported():
			names = append(names, tag)
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// TestSchemasMatchGoTypes keeps the document in step with the code: each
// message and record the switch sends or takes has exactly the properties
// its Go type marshals.
func TestSchemasMatchGoTypes(t *testing.T) {
	schemas := load(t).OpenAPI().Components.Schemas
	for name, v := range map[string]any{
		"Institution": wire.Institution{}, "MerchantName": wire.MerchantName{}, "Merchant": wire.Merchant{},
		"Originator": wire.Originator{}, "ThirdPartyIdentifier": wire.ThirdPartyIdentifier{},
		"LedgerAmount": wire.LedgerAmount{}, "Amounts": wire.Amounts{}, "Tender": wire.Tender{},
		"QrProperties": wire.QrProperties{}, "CreateQrCodeRequest": wire.CreateQrCodeRequest{},
		"CreateQrCodeResponse": wire.CreateQrCodeResponse{}, "ScanNotification": wire.ScanNotification{},
		"PaymentRequest": wire.PaymentRequest{}, "PaymentResponse": wire.PaymentResponse{},
		"PaymentConfirmation": wire.PaymentConfirmation{}, "PaymentReversal": wire.PaymentReversal{},
		"ErrorDetail": wire.ErrorDetail{},
		"Story":       qrswitch.Story{}, "Payment": qrswitch.Payment{}, "QRCode": qrswitch.QRCode{}, "Scan": qrswitch.Scan{},
		"Offer": qrswitch.Offer{}, "PaidMoney": qrswitch.PaidMoney{}, "SeenMoney": qrswitch.SeenMoney{},
		"Checkout": qrswitch.Checkout{}, "Advice": qrswitch.Advice{}, "AdviceAttempt": qrswitch.AdviceAttempt{},
		"TraceEntry": qrswitch.TraceEntry{}, "PaymentSummary": qrswitch.PaymentSummary{},
		"QueueControl": qrswitch.QueueControl{}, "PartnerQueue": qrswitch.PartnerQueue{},
	} {
		ref := schemas[name]
		if ref == nil {
			t.Errorf("the document has no schema %s", name)
			continue
		}
		got, want := properties(ref.Value), jsonFields(reflect.TypeOf(v))
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has properties %v, want those of %T: %v", name, got, v, want)
		}
	}
}
