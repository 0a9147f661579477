package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Setting
	}{
		{"", Setting{Auto: true}},
		{"auto", Setting{Auto: true}},
		{"AUTO", Setting{Auto: true}},
		{"off", Setting{}},
		{"300MiB", Setting{Bytes: 300 << 20}},
		{"1GiB", Setting{Bytes: 1 << 30}},
		{"512MB", Setting{Bytes: 512e6}},
		{"268435456", Setting{Bytes: 268435456}},
		{"64 MiB", Setting{Bytes: 64 << 20}},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"lots", "-1MiB", "1.5GiB", "MiB", "16MiB", "9999999999TiB"} {
		if s, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, s)
		}
	}
}

// tree writes files under a new root: path → content.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// The mountinfo lines below are as Linux writes them (proc(5)).
const (
	mountsV1 = `22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
`
	mountsV2 = `22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
)

func TestCgroupLimit(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string
		want     int64
		wantFile string
	}{
		{"v1, the process's group", map[string]string{
			"proc/self/mountinfo":                               mountsV1,
			"proc/self/cgroup":                                  "5:cpu,cpuacct:/pods/a\n4:memory:/pods/a\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":        "9223372036854771712\n",
			"sys/fs/cgroup/memory/pods/memory.limit_in_bytes":   "9223372036854771712\n",
			"sys/fs/cgroup/memory/pods/a/memory.limit_in_bytes": "419430400\n",
		}, 419430400, "/sys/fs/cgroup/memory/pods/a/memory.limit_in_bytes"},
		{"v1, a parent's limit is lower", map[string]string{
			"proc/self/mountinfo": mountsV1,
			"proc/self/cgroup":    "4:memory:/pods/a\n",
			"sys/fs/cgroup/memory/pods/memory.limit_in_bytes":   "268435456\n",
			"sys/fs/cgroup/memory/pods/a/memory.limit_in_bytes": "419430400\n",
		}, 268435456, "/sys/fs/cgroup/memory/pods/memory.limit_in_bytes"},
		{"v1, no limit", map[string]string{
			"proc/self/mountinfo":                        mountsV1,
			"proc/self/cgroup":                           "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, ""},
		{"v2 in a cgroup namespace: the group is the mount's root", map[string]string{
			"proc/self/mountinfo":          mountsV2,
			"proc/self/cgroup":             "0::/\n",
			"sys/fs/cgroup/memory.max":     "1073741824\n",
			"sys/fs/cgroup/cgroup.procs":   "1\n",
			"sys/fs/cgroup/memory.current": "1000\n",
		}, 1073741824, "/sys/fs/cgroup/memory.max"},
		{"v2, nested groups", map[string]string{
			"proc/self/mountinfo":                                    mountsV2,
			"proc/self/cgroup":                                       "0::/system.slice/qrswitch.service\n",
			"sys/fs/cgroup/system.slice/memory.max":                  "max\n",
			"sys/fs/cgroup/system.slice/qrswitch.service/memory.max": "536870912\n",
		}, 536870912, "/sys/fs/cgroup/system.slice/qrswitch.service/memory.max"},
		{"v2, max everywhere", map[string]string{
			"proc/self/mountinfo":                 mountsV2,
			"proc/self/cgroup":                    "0::/user.slice\n",
			"sys/fs/cgroup/user.slice/memory.max": "max\n",
		}, 0, ""},
		{"hybrid: v1 memory beside an empty unified hierarchy", map[string]string{
			"proc/self/mountinfo":                            mountsV1 + "37 30 0:33 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":                               "4:memory:/job\n0::/job\n",
			"sys/fs/cgroup/memory/job/memory.limit_in_bytes": "367001600\n",
		}, 367001600, "/sys/fs/cgroup/memory/job/memory.limit_in_bytes"},
		{"no /proc", map[string]string{"etc/hostname": "x\n"}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := tree(t, c.files)
			got, file, err := CgroupLimit(root)
			if err != nil {
				t.Fatalf("CgroupLimit: %v", err)
			}
			if got != c.want || strings.TrimPrefix(file, root) != c.wantFile {
				t.Errorf("CgroupLimit = %d from %q, want %d from %q", got, strings.TrimPrefix(file, root), c.want, c.wantFile)
			}
		})
	}
	t.Run("a limit file that is not a number", func(t *testing.T) {
		root := tree(t, map[string]string{
			"proc/self/mountinfo":      mountsV2,
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "lots\n",
		})
		if _, _, err := CgroupLimit(root); err == nil || !strings.Contains(err.Error(), `"lots" is not a number of bytes`) {
			t.Errorf("CgroupLimit = %v, want the file named as unreadable", err)
		}
	})
	t.Run("a limit file that is a directory", func(t *testing.T) {
		// A directory where the file should be: neither absent nor
		// forbidden, so not taken as "no limit".
		root := tree(t, map[string]string{
			"proc/self/mountinfo":                 mountsV2,
			"proc/self/cgroup":                    "0::/\n",
			"sys/fs/cgroup/memory.max/not-a-file": "",
		})
		file := filepath.Join(root, "sys/fs/cgroup/memory.max")
		if n, _, err := CgroupLimit(root); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("CgroupLimit = %d, %v; want an error naming %s", n, err, file)
		}
		if _, err := Decide(Setting{Auto: true}, "", root); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("Decide = %v; want an error naming %s", err, file)
		}
	})
	t.Run("this machine", func(t *testing.T) {
		// Whatever it runs in, reading it must not fail.
		if _, _, err := CgroupLimit("/"); err != nil {
			t.Fatalf("CgroupLimit(/) = %v", err)
		}
	})
}

func TestDecide(t *testing.T) {
	limited := tree(t, map[string]string{
		"proc/self/mountinfo":      mountsV2,
		"proc/self/cgroup":         "0::/\n",
		"sys/fs/cgroup/memory.max": "1000000000\n",
	})
	free := tree(t, map[string]string{"proc/self/mountinfo": mountsV2, "proc/self/cgroup": "0::/\n"})
	for _, c := range []struct {
		name       string
		s          Setting
		env, root  string
		want       int64
		wantSource string
	}{
		{"auto in a container", Setting{Auto: true}, "", limited, 800000000, "cgroup " + filepath.Join(limited, "sys/fs/cgroup/memory.max")},
		{"auto without a container limit", Setting{Auto: true}, "", free, math.MaxInt64, "none"},
		{"auto leaves GOMEMLIMIT as set", Setting{Auto: true}, "500MiB", limited, -1, "GOMEMLIMIT"},
		{"explicit wins over the container", Setting{Bytes: 300 << 20}, "", limited, 300 << 20, "memory_limit"},
		{"explicit wins over GOMEMLIMIT", Setting{Bytes: 300 << 20}, "500MiB", free, 300 << 20, "memory_limit"},
		{"off", Setting{}, "500MiB", limited, math.MaxInt64, "memory_limit off"},
	} {
		d, err := Decide(c.s, c.env, c.root)
		if err != nil || d.Bytes != c.want || d.Source != c.wantSource {
			t.Errorf("%s: Decide = %+v, %v; want %d from %q", c.name, d, err, c.want, c.wantSource)
		}
	}
}
