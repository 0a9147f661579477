package sqlite

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

const scheme = "sqlite://"

// parseURL reads a store URL (see the package comment). Unknown parameters
// are refused so that a misspelt one does not silently fall back to a
// default.
func parseURL(raw string) (config, error) {
	cfg := config{synchronous: "FULL", busyTimeout: 5 * time.Second}
	if !strings.HasPrefix(raw, scheme) {
		return cfg, fmt.Errorf("store url %q: want sqlite://PATH", raw)
	}
	rest := raw[len(scheme):]
	path, query, _ := strings.Cut(rest, "?")
	if path == "" {
		return cfg, fmt.Errorf("store url %q: no file path", raw)
	}
	cfg.path = path
	params, err := url.ParseQuery(query)
	if err != nil {
		return cfg, fmt.Errorf("store url %q: %w", raw, err)
	}
	for key, vals := range params {
		if len(vals) != 1 {
			return cfg, fmt.Errorf("store url %q: %s given %d times", raw, key, len(vals))
		}
		v := vals[0]
		switch key {
		case "synchronous":
			switch strings.ToLower(v) {
			case "full":
				cfg.synchronous = "FULL"
			case "normal":
				cfg.synchronous = "NORMAL"
			default:
				return cfg, fmt.Errorf("store url %q: synchronous=%s, want full or normal", raw, v)
			}
		case "busy_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return cfg, fmt.Errorf("store url %q: busy_timeout=%s, want a duration such as 5s", raw, v)
			}
			cfg.busyTimeout = d
		default:
			return cfg, fmt.Errorf("store url %q: unknown parameter %s (known: synchronous, busy_timeout)", raw, key)
		}
	}
	return cfg, nil
}
