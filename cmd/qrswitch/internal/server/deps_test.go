package server

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/qrswitch/qrswitch"

// TestDependencyRules checks the layering the README's architecture section
// draws: leaves import no project package; gin stays in the HTTP surfaces
// and the wiring that mounts them; go-qrcode stays in qr; the engine knows
// nothing of HTTP nor of any store backend; a rail imports neither the
// engine, nor another rail, nor a surface — it reports through
// partners.Host.
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
	// A leaf imports no project package but other leaves (config reads
	// memory_limit with memlimit's parser).
	leaves := map[string]bool{"outcome": true, "qr": true, "internal/wire": true, "cmd/qrswitch/internal/config": true, "tls": true, "internal/memlimit": true}
	allowedGin := map[string]bool{"internal/httpapi": true, "retailers": true, "support": true, "cmd/qrswitch/internal/server": true}
	// railOf is the rail a package under partners/ belongs to: its first
	// path element below partners ("" for partners itself).
	railOf := func(r string) string {
		rest, _ := strings.CutPrefix(r, "partners/")
		first, _, _ := strings.Cut(rest, "/")
		return first
	}
	for pkg, imps := range imports {
		r := rel(pkg)
		for _, imp := range imps {
			project := strings.HasPrefix(imp, module)
			ri := rel(imp)
			switch {
			case leaves[r] && project && !leaves[ri]:
				t.Errorf("%s is a leaf but imports %s", r, ri)
			case strings.HasPrefix(imp, "github.com/gin-gonic/gin") && !allowedGin[r]:
				t.Errorf("%s imports gin; only the HTTP surfaces and the wiring may", r)
			case strings.HasPrefix(imp, "github.com/skip2/go-qrcode") && r != "qr":
				t.Errorf("%s imports go-qrcode; only qr may", r)
			case r == "switch" && (imp == "net/http" || ri == "internal/httpapi" || strings.HasPrefix(ri, "store")):
				t.Errorf("the engine imports %s", imp)
			case strings.HasPrefix(r, "partners/") && project && (ri == "switch" || ri == "retailers" || ri == "support" ||
				strings.HasPrefix(ri, "store") || ri == "internal/httpapi" || strings.HasPrefix(ri, "cmd/")):
				t.Errorf("rail package %s imports %s: rails report through partners.Host", r, ri)
			case strings.HasPrefix(r, "partners/") && r != "partners/rails" && strings.HasPrefix(ri, "partners/") && railOf(ri) != railOf(r) &&
				!strings.HasPrefix(ri, "partners/railtest") && !sharedProtocol[railOf(ri)]:
				t.Errorf("rail %s imports another rail's package %s", r, ri)
			}
		}
	}
}

// sharedProtocol are the library packages beside the rails that several
// rails may use (protocol code, no rail of their own).
var sharedProtocol = map[string]bool{"ilp": true}
