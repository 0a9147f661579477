package server

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/qrswitch/qrswitch"

// TestDependencyRules checks the layering of architecture.md: leaves import
// no project package, gin stays in the HTTP surfaces, go-qrcode in qr, and
// the engine knows nothing of HTTP.
func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		imports[p.ImportPath] = p.Imports
	}
	if len(imports) < 10 {
		t.Fatalf("go list found %d packages", len(imports))
	}
	rel := func(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }
	allowedGin := map[string]bool{"internal/httpapi": true, "retailers": true, "partners/scanapi": true, "support": true}
	for pkg, imps := range imports {
		r := rel(pkg)
		for _, imp := range imps {
			project := strings.HasPrefix(imp, module)
			switch {
			case (r == "outcome" || r == "qr" || r == "internal/wire" || r == "cmd/qrswitch/internal/config" || r == "tls") && project:
				t.Errorf("%s is a leaf but imports %s", r, rel(imp))
			case strings.HasPrefix(imp, "github.com/gin-gonic/gin") && !allowedGin[r]:
				t.Errorf("%s imports gin; only the HTTP surfaces may", r)
			case strings.HasPrefix(imp, "github.com/skip2/go-qrcode") && r != "qr":
				t.Errorf("%s imports go-qrcode; only qr may", r)
			case r == "switch" && (imp == "net/http" || strings.HasPrefix(imp, module+"/internal/httpapi") || strings.HasPrefix(imp, module+"/store")):
				t.Errorf("the engine imports %s", imp)
			case strings.HasPrefix(r, "partners/") && r != "partners/rails" && r != "partners/scanapi" &&
				project && strings.HasPrefix(rel(imp), "partners/") && !strings.HasPrefix(rel(imp), r):
				t.Errorf("rail %s imports another rail or surface %s", r, rel(imp))
			case strings.HasPrefix(r, "partners/") && project && (rel(imp) == "switch" || rel(imp) == "retailers" || rel(imp) == "support") && r != "partners/scanapi":
				t.Errorf("rail %s imports %s", r, rel(imp))
			}
		}
	}
}
