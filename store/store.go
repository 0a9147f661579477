// Package store is where store backends plug in: each registers an Opener
// for its URL schemes (store/sqlite: sqlite; store/redis: redis, rediss,
// redis+sentinel, redis+cluster, rediss+cluster), and the wiring opens whatever `store.url` names without
// knowing the backends by name. cmd links them all by importing
// store/backends. What every backend is held to — the conformance suite and
// the benchmarks — is in store/storetest.
package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Options are the store settings of the configuration that backends share;
// a backend ignores what does not apply to it.
type Options struct {
	// Retention is how long a finished payment, its advices and trace are
	// kept. 0: the backend's default.
	Retention time.Duration
	// WaitReplicas and WaitTimeout: replicas that must acknowledge a write
	// before it is answered, and how long to wait for them (Redis).
	WaitReplicas int
	WaitTimeout  time.Duration
}

// Backend is an open store and what the engine must know of it.
type Backend struct {
	Store qrswitch.Store
	// SoleOwner: no other process can use the store, so whatever an
	// earlier process held is recovered at once.
	SoleOwner bool
	// Notifier carries wake-ups between processes sharing the store;
	// Recheck is how often a held request re-reads the store in case one
	// was lost on the way. Both zero for a store of one process.
	Notifier qrswitch.Notifier
	Recheck  time.Duration
	// Sharded: the store keeps each retailer's records apart from other
	// retailers' and from records of no retailer (see qrswitch.ErrSharded),
	// so only rails that keep to that (partners.ShardSafe) can run on it.
	Sharded bool
}

// Opener opens the store a URL names.
type Opener func(ctx context.Context, url string, opts Options) (*Backend, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a backend available for a URL scheme. It is meant to be
// called from an init function and panics on an empty scheme, a nil
// opener or a scheme already taken.
func Register(scheme string, o Opener) {
	if scheme == "" || o == nil {
		panic("store: Register needs a scheme and an opener")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("store: scheme " + scheme + " registered twice")
	}
	openers[scheme] = o
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the store url names. Errors never echo the URL, which may
// carry a password.
func Open(ctx context.Context, url string, opts Options) (*Backend, error) {
	scheme, _, _ := strings.Cut(url, "://")
	mu.RLock()
	o, ok := openers[scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("store.url: this build has no backend for the scheme %q (have %v)", scheme, Schemes())
	}
	b, err := o(ctx, url, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	return b, nil
}
