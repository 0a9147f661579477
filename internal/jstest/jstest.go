// Package jstest runs the npm reference implementations that tests prove
// the switch's protocols against (ILP, STREAM, crypto-conditions, Open
// Payments, ganache, solc). They are pinned in package-lock.json beside
// this file and installed by scripts/test with `npm ci`; a test that needs
// them and finds them missing fails and says how to install them. Nothing
// here is a mock: the scripts are the published packages, unmodified.
package jstest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the directory of package.json, package-lock.json and node_modules.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("jstest: no caller information")
	}
	return filepath.Dir(file)
}

// Modules returns the node_modules directory, failing t loudly when node or
// the installed packages are missing.
func Modules(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed (Node.js 20 or later): the reference implementations need it; install Debian's nodejs")
	}
	mods := filepath.Join(Dir(), "node_modules")
	if _, err := os.Stat(filepath.Join(mods, ".package-lock.json")); err != nil {
		t.Fatalf("the npm reference packages are not installed: run scripts/test, or `npm ci --prefix %s`", Dir())
	}
	return mods
}

// Command returns `node script args…` with NODE_PATH set so that the
// script's require() finds the pinned packages. script is a path, usually
// under the calling package's testdata.
func Command(ctx context.Context, t testing.TB, script string, args ...string) *exec.Cmd {
	t.Helper()
	mods := Modules(t)
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "NODE_NO_WARNINGS=1")
	return cmd
}

// Run runs `node script args…` with stdin as its standard input and returns
// its standard output; t fails with the script's standard error when it
// exits non-zero.
func Run(t testing.TB, script string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := Command(context.Background(), t, script, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s %v: %v\n%s", filepath.Base(script), args, err, errb.String())
	}
	return out.Bytes()
}
