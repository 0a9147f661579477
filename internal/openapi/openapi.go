// Package openapi owns the OpenAPI 3.1 document of the switch's own HTTPS
// surfaces — the retailer operations of Electrum's QR Payment Service
// Interface and the QR image route, the partners' scan notification, the
// support API — written for the switch from the interface's models and
// constraints (with the generated Swagger document's defects corrected:
// expiryDate a date-time string, detailMessage an object, ErrorDetail.id at
// most 20 characters). The document is embedded in the binary and served,
// unauthenticated, at Path.
//
// The package is a leaf with no dependencies: checking messages against the
// document is the job of package contract, which only the tests and the
// conform command link.
package openapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// Path is where the switch serves the document.
const Path = "/openapi.yaml"

// ContentType is the media type the document is served as (RFC 9512).
const ContentType = "application/yaml"

//go:embed openapi.yaml
var document []byte

// Document returns the document (YAML). The slice is a copy.
func Document() []byte { return append([]byte(nil), document...) }

// Handler serves the document to GET and HEAD requests.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("Content-Length", strconv.Itoa(len(document)))
		// It changes only with the binary.
		h.Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(document)
		}
	})
}
