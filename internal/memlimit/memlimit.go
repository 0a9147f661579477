// Package memlimit sets the Go runtime's soft memory limit of a switch
// process from its configuration (memory_limit) and, by default, from the
// memory limit of the container it runs in.
//
// Why a limit by default: a switch holds each payment request open until
// its partner answers (up to a minute), and the Go collector lets the heap
// grow to twice what is live before it collects. With 10 000 requests held
// the process measured about 700 MB resident of which under 300 MB were
// live (docs/benchmarks.md). In a container that is the difference between
// running and being killed by the kernel. With a soft limit the collector
// works harder as the limit nears instead.
//
// Why 80 % of the container's limit, not more: SQLite's page caches (the
// embedded store: up to 32 MiB for the writer and 16 MiB per reader
// connection), the TLS and C libraries' buffers and the binary itself live
// outside the Go heap, and the limit is soft: under a burst the runtime
// may exceed it for a moment rather than stall the process.
//
// Why not a fixed default limit when no container limit is set: a soft
// limit below what the process truly needs makes the collector run
// continuously (up to half the CPU, by the runtime's own cap), which on a
// machine with memory to spare trades payments per second for nothing.
// There the operator sets memory_limit to what the machine can give.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Share is the part of a container's memory limit that Auto gives the Go
// runtime.
const Share = 0.8

// Setting is a parsed memory_limit.
type Setting struct {
	// Auto: GOMEMLIMIT when the environment sets it, else Share of the
	// container's (cgroup's) memory limit, else none.
	Auto bool
	// Bytes is an explicit limit; 0 with Auto false means off (no limit,
	// even when GOMEMLIMIT is set).
	Bytes int64
}

// Parse reads a memory_limit value: "auto", "off", or a size such as
// "300MiB", "1GiB", "512MB" or "268435456" (bytes).
func Parse(s string) (Setting, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return Setting{Auto: true}, nil
	case "off":
		return Setting{}, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return Setting{}, err
	}
	if n < 32<<20 {
		return Setting{}, fmt.Errorf("memory limit %q is below 32MiB: the switch cannot run in it", s)
	}
	return Setting{Bytes: n}, nil
}

// units are the suffixes ParseSize accepts, longest first so "MiB" is
// not read as "B".
var units = []struct {
	suffix string
	scale  int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize reads a byte size: a whole number with an optional unit (B, KB,
// MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024).
func ParseSize(s string) (int64, error) {
	text := strings.TrimSpace(s)
	scale := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(text, u.suffix); ok {
			text, scale = strings.TrimSpace(rest), u.scale
			break
		}
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("memory size %q: want a whole number of bytes with an optional unit, such as 300MiB or 1GiB", s)
	}
	if n > math.MaxInt64/scale {
		return 0, fmt.Errorf("memory size %q is too large", s)
	}
	return n * scale, nil
}

// Decision is the limit to set and where it came from, for the log.
type Decision struct {
	// Bytes is the limit; math.MaxInt64 means none, -1 leaves the
	// runtime's as it is (GOMEMLIMIT applied it).
	Bytes int64
	// Source says why: "memory_limit", "GOMEMLIMIT", "cgroup <file>", or
	// "none" (auto found no limit).
	Source string
	// Container is the container's limit when Auto read one, else 0.
	Container int64
}

// Decide works out the limit for s. goMemLimit is the GOMEMLIMIT variable
// ("" when unset); root is the file system root under which /proc and
// /sys are read ("/" in production; tests build a tree).
func Decide(s Setting, goMemLimit, root string) (Decision, error) {
	switch {
	case !s.Auto && s.Bytes == 0:
		return Decision{Bytes: math.MaxInt64, Source: "memory_limit off"}, nil
	case !s.Auto:
		return Decision{Bytes: s.Bytes, Source: "memory_limit"}, nil
	case goMemLimit != "":
		// The runtime has applied it already; say so rather than override
		// what the operator set for the process.
		return Decision{Bytes: -1, Source: "GOMEMLIMIT"}, nil
	}
	limit, file, err := CgroupLimit(root)
	if err != nil {
		return Decision{}, err
	}
	if limit == 0 {
		return Decision{Bytes: math.MaxInt64, Source: "none"}, nil
	}
	return Decision{Bytes: int64(float64(limit) * Share), Source: "cgroup " + file, Container: limit}, nil
}

// noLimit is a cgroup limit at or above which there is none (cgroup v1
// writes "no limit" as the largest page-aligned int64).
const noLimit = math.MaxInt64 &^ (1<<12 - 1)

// CgroupLimit returns the memory limit of the cgroup this process runs in,
// the smallest set on it or any of its ancestors, and the file it was read
// from; 0 when none is set or the process runs in no memory cgroup. It
// reads cgroup v2 (memory.max) and v1 (memory.limit_in_bytes) as mounted
// in /proc/self/mountinfo.
func CgroupLimit(root string) (int64, string, error) {
	mounts, err := cgroupMounts(root)
	if err != nil {
		return 0, "", err
	}
	groups, err := selfCgroups(root)
	if err != nil {
		return 0, "", err
	}
	var best int64
	var bestFile string
	for _, m := range mounts {
		path, ok := groups[m.key]
		if !ok {
			continue
		}
		// The mount shows the hierarchy from m.root down: a process in a
		// cgroup namespace sees its own group as "/".
		rel, err := filepath.Rel(m.root, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = "."
		}
		file := "memory.limit_in_bytes"
		if m.v2 {
			file = "memory.max"
		}
		top := filepath.Join(root, m.point)
		for dir := filepath.Join(top, rel); ; dir = filepath.Dir(dir) {
			n, ok, err := readLimit(filepath.Join(dir, file))
			if err != nil {
				return 0, "", err
			}
			if ok && (best == 0 || n < best) {
				best, bestFile = n, filepath.Join(dir, file)
			}
			if len(dir) <= len(top) {
				break
			}
		}
	}
	return best, bestFile, nil
}

// readLimit reads one limit file: ok false when it is absent or says there
// is no limit.
func readLimit(name string) (int64, bool, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	text := strings.TrimSpace(string(b))
	if text == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("reading %s: %q is not a number of bytes", name, text)
	}
	if n <= 0 || n >= noLimit {
		return 0, false, nil
	}
	return n, true, nil
}

// mount is a cgroup file system that holds the memory controller.
type mount struct {
	point string // where it is mounted
	root  string // the hierarchy's path that is mounted there
	v2    bool
	key   string // its group's key in selfCgroups: "" for v2, "memory" for v1
}

// cgroupMounts lists the memory controller's mounts from
// /proc/self/mountinfo.
func cgroupMounts(root string) ([]mount, error) {
	f, err := os.Open(filepath.Join(root, "proc/self/mountinfo"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // not Linux, or no /proc: no cgroup to read
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mount-point options [optional…] - type source super-options
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		switch fields[sep+1] {
		case "cgroup2":
			ms = append(ms, mount{point: fields[4], root: fields[3], v2: true})
		case "cgroup":
			if slices.Contains(strings.Split(fields[sep+3], ","), "memory") {
				ms = append(ms, mount{point: fields[4], root: fields[3], key: "memory"})
			}
		}
	}
	return ms, sc.Err()
}

// selfCgroups reads /proc/self/cgroup: for each hierarchy, the path of this
// process's group. The v2 hierarchy's key is ""; a v1 hierarchy with the
// memory controller is keyed "memory".
func selfCgroups(root string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	groups := map[string]string{}
	for line := range strings.Lines(string(b)) {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			groups[""] = parts[2]
		case strings.Contains(","+parts[1]+",", ",memory,"):
			groups["memory"] = parts[2]
		}
	}
	return groups, nil
}
