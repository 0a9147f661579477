package openapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, err := http.NewRequest(method, srv.URL+Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ContentType {
			t.Errorf("%s = %d %q, want 200 %q", method, resp.StatusCode, resp.Header.Get("Content-Type"), ContentType)
		}
		if want := Document(); method == http.MethodGet && !bytes.Equal(body, want) || method == http.MethodHead && len(body) != 0 {
			t.Errorf("%s served %d bytes, want %d", method, len(body), len(want))
		}
	}
	if !bytes.HasPrefix(Document(), []byte("openapi: 3.1.0\n")) {
		t.Error("the document does not start with its OpenAPI version, 3.1.0")
	}
	d := Document()
	d[0] = 'x'
	if Document()[0] != 'o' {
		t.Error("Document returned the embedded bytes, not a copy")
	}
}
