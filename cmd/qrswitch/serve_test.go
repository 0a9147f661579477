package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
)

// TestSetMemoryLimit: memory_limit reaches the runtime, and the log says
// the limit and where it came from. (memlimit's tests cover auto's reading
// of cgroups; scripts/bench BENCH_CGROUP_MEMORY runs it in a real one.)
func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, c := range []struct {
		name, setting string
		environ       []string
		want          int64
		wantLog       map[string]any
	}{
		{"a size", "300MiB", nil, 300 << 20, map[string]any{"source": "memory_limit", "memory_limit_bytes": float64(300 << 20)}},
		{"a size wins over GOMEMLIMIT", "256MiB", []string{"GOMEMLIMIT=1GiB"}, 256 << 20, map[string]any{"source": "memory_limit", "memory_limit_bytes": float64(256 << 20)}},
		{"off", "off", nil, math.MaxInt64, map[string]any{"source": "memory_limit off", "memory_limit": "none"}},
		{"auto keeps GOMEMLIMIT's", "auto", []string{"GOMEMLIMIT=700MiB"}, math.MaxInt64, map[string]any{"source": "GOMEMLIMIT", "memory_limit": "none"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			cfg := config.Development()
			cfg.MemoryLimit = c.setting
			if err := setMemoryLimit(cfg, c.environ, "/", zerolog.New(&buf)); err != nil {
				t.Fatal(err)
			}
			if got := debug.SetMemoryLimit(-1); got != c.want {
				t.Errorf("runtime memory limit = %d, want %d", got, c.want)
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log %q: %v", buf.String(), err)
			}
			for k, v := range c.wantLog {
				if line[k] != v {
					t.Errorf("log %s = %v, want %v (line %s)", k, line[k], v, buf.String())
				}
			}
		})
	}
}

// TestSetMemoryLimitUnreadableContainer: a container limit file that is
// not a number is logged, and the switch starts with no limit.
func TestSetMemoryLimitUnreadableContainer(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(300 << 20)
	root := t.TempDir()
	for name, content := range map[string]string{
		"proc/self/mountinfo":      "31 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
		"proc/self/cgroup":         "0::/\n",
		"sys/fs/cgroup/memory.max": "lots\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	cfg := config.Development()
	if err := setMemoryLimit(cfg, nil, root, zerolog.New(&buf)); err != nil {
		t.Fatalf("setMemoryLimit = %v, want the switch to start", err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("runtime memory limit = %d, want none", got)
	}
	if log := buf.String(); !strings.Contains(log, `"level":"warn"`) || !strings.Contains(log, `not a number of bytes`) ||
		!strings.Contains(log, `"source":"none (container limit unreadable)"`) {
		t.Errorf("log = %s, want the unreadable file warned about and no limit logged", log)
	}
}
