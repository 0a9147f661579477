// Package contract checks HTTP exchanges and JSON messages against the
// switch's OpenAPI document (package openapi) with a maintained validator,
// github.com/getkin/kin-openapi, which validates OpenAPI 3.1 documents and
// their schemas as JSON Schema 2020-12. The switch's tests run every
// exchange of their whole-switch harness through CheckExchange; the conform
// command checks partners' messages, which use the same models, with
// CheckValue and CheckRequest. The switch itself never links this package:
// it only serves the document.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/qrswitch/qrswitch/internal/openapi"
)

func init() {
	// The QR image route answers a PNG and the support console its page,
	// script and style sheet; kin-openapi decodes only the common media
	// types unless told.
	openapi3filter.RegisterBodyDecoder("image/png", openapi3filter.FileBodyDecoder)
	for _, t := range []string{"text/html", "text/css", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(t, openapi3filter.PlainBodyDecoder)
	}
}

// Document is the switch's OpenAPI document, loaded, validated as OpenAPI
// 3.1, and routed. It is safe for concurrent use.
type Document struct {
	doc    *openapi3.T
	router routers.Router
}

// Load reads the embedded document and validates it as OpenAPI 3.1.
func Load() (*Document, error) {
	return Parse(openapi.Document())
}

// Parse reads a document from YAML or JSON and validates it: it must be
// OpenAPI 3.1 or later and valid (every reference resolved, every schema a
// JSON Schema 2020-12 schema, every path's parameters declared).
func Parse(data []byte) (*Document, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("the OpenAPI document is version %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableSchemaPatternValidation()); err != nil {
		return nil, fmt.Errorf("validating the OpenAPI document: %w", err)
	}
	// Routes are matched on paths alone: the document's server is "/",
	// the switch that serves it, wherever that is.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("routing the OpenAPI document: %w", err)
	}
	return &Document{doc: doc, router: router}, nil
}

// OpenAPI returns the loaded document, for tests that inspect it.
func (d *Document) OpenAPI() *openapi3.T { return d.doc }

// ErrUndocumented is the error of a request to a route the document does
// not have.
var ErrUndocumented = errors.New("no such operation in the OpenAPI document")

// basicPresent is the check of the document's security schemes (all HTTP
// Basic): a request must carry Basic credentials. Whether they are right
// is the switch's to say (401), not the document's.
func basicPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if _, _, ok := in.RequestValidationInput.Request.BasicAuth(); !ok {
		return errors.New("no HTTP Basic credentials")
	}
	return nil
}

// requestInput finds req's route and builds its validation input, reading
// the body from body.
func (d *Document) requestInput(req *http.Request, body []byte) (*openapi3filter.RequestValidationInput, error) {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	route, params, err := d.router.FindRoute(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (%v)", req.Method, req.URL.Path, ErrUndocumented, err)
	}
	return &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: basicPresent, MultiError: true},
	}, nil
}

// CheckRequest checks a request to the switch (its body given separately,
// as read) against its operation: credentials present, parameters and body
// as the document says. A route the document lacks is ErrUndocumented.
func (d *Document) CheckRequest(req *http.Request, body []byte) error {
	in, err := d.requestInput(req, body)
	if err != nil {
		return err
	}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		return fmt.Errorf("request %s %s: %s", req.Method, req.URL.Path, short(err))
	}
	return nil
}

// CheckExchange checks one exchange with the switch: req (with its body as
// sent) and the answer's status, header and body.
//
//   - A request the document routes is validated. When it is valid, the
//     answer must be one the operation declares, with its headers and its
//     body's schema. When it is not — a test sending a malformed message on
//     purpose, or none of the credentials the operation needs — the answer
//     must still be declared and valid, and a 4xx: the switch refuses what
//     its document says it cannot take.
//   - A request to a route the document lacks must be answered 404 (no
//     such path) or 405 (no such method) with an ErrorDetail.
func (d *Document) CheckExchange(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	in, err := d.requestInput(req, reqBody)
	if errors.Is(err, ErrUndocumented) {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%w, yet answered %d", err, status)
		}
		if err := d.CheckValue("ErrorDetail", respBody); err != nil {
			return fmt.Errorf("%s %s: answer %d: %w", req.Method, req.URL.Path, status, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	ctx := req.Context()
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && (status < 400 || status > 499) {
		return fmt.Errorf("%s %s: the request breaks the document (%s), yet was answered %d, not refused",
			req.Method, req.URL.Path, short(reqErr), status)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s %s: answer %d: %s; body %s", req.Method, req.URL.Path, status, short(err), clip(respBody))
	}
	return nil
}

// CheckValue checks a JSON message against one of the document's schemas
// (components/schemas), such as "PaymentResponse" or "ErrorDetail".
func (d *Document) CheckValue(schema string, body []byte) error {
	ref := d.doc.Components.Schemas[schema]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("the OpenAPI document has no schema %q", schema)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not a %s: not JSON: %w", schema, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("not a %s: data after the JSON value", schema)
	}
	if err := d.doc.ValidateSchemaJSON(ref.Value, v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("not a valid %s: %s", schema, short(err))
	}
	return nil
}

// Schemas lists the names of the document's schemas.
func (d *Document) Schemas() []string {
	names := make([]string, 0, len(d.doc.Components.Schemas))
	for name := range d.doc.Components.Schemas {
		names = append(names, name)
	}
	return names
}

// short renders a validation error on one line, without the schema dumps
// kin-openapi appends to some of them.
func short(err error) string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "Schema:") || strings.HasPrefix(l, "Value:") {
			break
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	return clip([]byte(strings.Join(lines, " | ")))
}

// clip shortens a body or a message for an error.
func clip(b []byte) string {
	const max = 600
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
