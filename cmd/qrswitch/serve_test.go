package main

import (
	"bytes"
	"encoding/json"
	"math"
	"runtime/debug"
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
			if err := setMemoryLimit(cfg, c.environ, zerolog.New(&buf)); err != nil {
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
