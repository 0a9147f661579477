package memlimit

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// unreadableEnv names the tree that TestCgroupLimitUnreadable, run again
// as an unprivileged user, reads.
const unreadableEnv = "MEMLIMIT_TEST_UNREADABLE_ROOT"

// nobody is the user the test runs as when it starts as root, who reads
// every file whatever its mode.
const nobody = 65534

// TestCgroupLimitUnreadable: a limit file the process may not read is taken
// as no limit there, not as an error, and the limits it can read still
// count. As root the test runs its binary again as nobody, on a tree and a
// copy of the binary that nobody can reach.
func TestCgroupLimitUnreadable(t *testing.T) {
	if root := os.Getenv(unreadableEnv); root != "" {
		checkUnreadable(t, root)
		return
	}
	root := tree(t, map[string]string{
		"proc/self/mountinfo":                                    mountsV2,
		"proc/self/cgroup":                                       "0::/system.slice/qrswitch.service\n",
		"sys/fs/cgroup/system.slice/memory.max":                  "536870912\n",
		"sys/fs/cgroup/system.slice/qrswitch.service/memory.max": "268435456\n",
	})
	if err := os.Chmod(filepath.Join(root, "sys/fs/cgroup/system.slice/qrswitch.service/memory.max"), 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		checkUnreadable(t, root)
		return
	}
	// t.TempDir makes its directories (root and, beside it, bin) under
	// one parent, all mode 0700.
	bin := filepath.Join(t.TempDir(), "memlimit.test")
	for _, dir := range []string{filepath.Dir(root), root, filepath.Dir(bin)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyBinary(t, bin)
	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^TestCgroupLimitUnreadable$", "-test.v")
	cmd.Env = append(os.Environ(), unreadableEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestCgroupLimitUnreadable")) {
		// EPERM here means root without CAP_SETUID: the test cannot reach
		// the branch it is about, and says so rather than skip.
		t.Fatalf("the test run as uid %d: %v\n%s", nobody, err, out)
	}
}

// checkUnreadable checks CgroupLimit on root as built by
// TestCgroupLimitUnreadable, by a process that cannot read the service's
// limit file.
func checkUnreadable(t *testing.T, root string) {
	t.Helper()
	hidden := filepath.Join(root, "sys/fs/cgroup/system.slice/qrswitch.service/memory.max")
	if _, err := os.ReadFile(hidden); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("reading %s as uid %d: %v, want permission denied, which the test is about", hidden, os.Geteuid(), err)
	}
	got, file, err := CgroupLimit(root)
	if err != nil {
		t.Fatalf("CgroupLimit with a limit file it may not read: %v, want the file skipped", err)
	}
	if want := "/sys/fs/cgroup/system.slice/memory.max"; got != 536870912 || strings.TrimPrefix(file, root) != want {
		t.Errorf("CgroupLimit = %d from %q, want 536870912 from %q (the parent's, which it can read)", got, strings.TrimPrefix(file, root), want)
	}
}

// copyBinary copies the running test binary to name, executable by all.
func copyBinary(t *testing.T, name string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
