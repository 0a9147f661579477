package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	store "github.com/qrswitch/qrswitch/store/storetest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// openAt opens the store at path and closes it when the test ends.
func openAt(t testing.TB, path string, query string) *Store {
	t.Helper()
	s, err := Open(context.Background(), "sqlite://"+path+query, Options{})
	if err != nil {
		t.Fatalf("Open(%s) error = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tempDB(t testing.TB) string { return filepath.Join(t.TempDir(), "qrswitch.db") }

func TestConformance(t *testing.T) {
	store.ConformanceWith(t, store.Opener{
		Open: func(t *testing.T) qrswitch.Store { return openAt(t, tempDB(t), "") },
		Reopen: func(t *testing.T, old qrswitch.Store) qrswitch.Store {
			s := old.(*Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error = %v", err)
			}
			return openAt(t, s.Path(), "")
		},
	})
}

func BenchmarkStore(b *testing.B) {
	for _, mode := range []string{"full", "normal"} {
		b.Run("sync="+mode, func(b *testing.B) {
			store.Benchmarks(b, func(b *testing.B) qrswitch.Store {
				return openAt(b, tempDB(b), "?synchronous="+mode)
			})
		})
	}
}

// BenchmarkFsync measures what synchronous=full pays per batch: appending
// 4 KiB to a file beside the databases and fsyncing it.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	for b.Loop() {
		if _, err := f.Write(page); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		path    string
		sync    string
		busy    time.Duration
		wantErr string
	}{
		{url: "sqlite://./var/qrswitch.db", path: "./var/qrswitch.db", sync: "FULL", busy: 5 * time.Second},
		{url: "sqlite:///abs/path.db", path: "/abs/path.db", sync: "FULL", busy: 5 * time.Second},
		{url: "sqlite://q.db?synchronous=normal&busy_timeout=250ms", path: "q.db", sync: "NORMAL", busy: 250 * time.Millisecond},
		{url: "sqlite://q.db?synchronous=FULL", path: "q.db", sync: "FULL", busy: 5 * time.Second},
		{url: "redis://localhost:6379/0", wantErr: "want sqlite://PATH"},
		{url: "sqlite://", wantErr: "no file path"},
		{url: "sqlite://q.db?synchronous=off", wantErr: "want full or normal"},
		{url: "sqlite://q.db?busy_timeout=5", wantErr: "want a duration"},
		{url: "sqlite://q.db?sync=full", wantErr: "unknown parameter sync"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			cfg, err := parseURL(tc.url)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseURL(%q) error = %v, want one containing %q", tc.url, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL(%q) error = %v", tc.url, err)
			}
			if cfg.path != tc.path || cfg.synchronous != tc.sync || cfg.busyTimeout != tc.busy {
				t.Errorf("parseURL(%q) = path %q, synchronous %s, busy_timeout %v; want %q, %s, %v",
					tc.url, cfg.path, cfg.synchronous, cfg.busyTimeout, tc.path, tc.sync, tc.busy)
			}
		})
	}
}

func TestOpenRelativePathCreatesDirectory(t *testing.T) {
	t.Chdir(t.TempDir())
	s := openAt(t, "./var/data/qrswitch.db", "?synchronous=normal")
	if _, err := os.Stat(filepath.Join("var", "data", "qrswitch.db")); err != nil {
		t.Errorf("database file not created: %v", err)
	}
	if !filepath.IsAbs(s.Path()) {
		t.Errorf("Path() = %q, want an absolute path", s.Path())
	}
	var journal, synchronous string
	s.w.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&journal)
	s.w.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&synchronous)
	if journal != "wal" || synchronous != "1" {
		t.Errorf("journal_mode, synchronous = %s, %s; want wal, 1 (NORMAL)", journal, synchronous)
	}
}

func TestDefaultSynchronousIsFull(t *testing.T) {
	s := openAt(t, tempDB(t), "")
	var synchronous string
	s.w.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&synchronous)
	if synchronous != "2" {
		t.Errorf("PRAGMA synchronous = %s, want 2 (FULL)", synchronous)
	}
}

func TestLock(t *testing.T) {
	path := tempDB(t)
	first := openAt(t, path, "")
	_, err := Open(t.Context(), "sqlite://"+path, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open(%s) error = %v, want ErrLocked", path, err)
	}
	for _, want := range []string{path, "another qrswitch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second Open error %q does not name %q", err, want)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close() error = %v, want nil", err)
	}
	openAt(t, path, "")
}

func TestClosed(t *testing.T) {
	s := openAt(t, tempDB(t), "")
	if err := s.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	p := newPayment("shop-1", "pay-1")
	if err := s.Commit(t.Context(), &qrswitch.Change{Payment: p}); !errors.Is(err, qrswitch.ErrUnavailable) {
		t.Errorf("Commit after Close error = %v, want ErrUnavailable", err)
	}
	if _, err := s.Payment(t.Context(), p.Key()); !errors.Is(err, qrswitch.ErrUnavailable) {
		t.Errorf("Payment after Close error = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, qrswitch.ErrUnavailable) {
		t.Errorf("Ping after Close error = %v, want ErrUnavailable", err)
	}
}

func TestCloseDrainsQueue(t *testing.T) {
	path := tempDB(t)
	s := openAt(t, path, "?synchronous=normal")
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.Commit(context.Background(), &qrswitch.Change{Payment: newPayment("shop-1", fmt.Sprintf("pay-%d", i))})
		})
	}
	time.Sleep(time.Millisecond)
	s.Close()
	wg.Wait()
	close(errs)
	var ok int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, qrswitch.ErrUnavailable):
			t.Errorf("Commit racing Close error = %v, want nil or ErrUnavailable", err)
		}
	}
	// Every Commit that said yes is in the file.
	r := openAt(t, path, "")
	got, err := r.Search(t.Context(), qrswitch.Query{Limit: 500})
	if err != nil {
		t.Fatalf("Search error = %v", err)
	}
	if len(got) != ok {
		t.Errorf("reopened store has %d payments, want the %d acknowledged", len(got), ok)
	}
}

func TestCommitContext(t *testing.T) {
	s := openAt(t, tempDB(t), "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p := newPayment("shop-1", "pay-1")
	err := s.Commit(ctx, &qrswitch.Change{Payment: p})
	// The writer may have taken the Change before the caller saw its context
	// end; then the Change is committed and Commit says so.
	switch {
	case err == nil:
		if p.Version != 1 {
			t.Errorf("Version after a successful Commit = %d, want 1", p.Version)
		}
	case errors.Is(err, context.Canceled) && errors.Is(err, qrswitch.ErrUnavailable):
		if p.Version != 0 {
			t.Errorf("Version after an abandoned Commit = %d, want 0", p.Version)
		}
		if _, err := s.Payment(t.Context(), p.Key()); !errors.Is(err, qrswitch.ErrNotFound) {
			t.Errorf("Payment after an abandoned Commit error = %v, want ErrNotFound", err)
		}
	default:
		t.Errorf("Commit(cancelled context) error = %v, want nil or ErrUnavailable and context.Canceled", err)
	}
}

func TestTraceWithoutKey(t *testing.T) {
	s := openAt(t, tempDB(t), "")
	err := s.Commit(t.Context(), &qrswitch.Change{Trace: []qrswitch.TraceEntry{{Operation: "pay"}}})
	if err == nil {
		t.Error("Commit(trace without TraceKey or Payment) error = nil, want an error")
	}
}

func newPayment(retailer, id string) *qrswitch.Payment {
	now := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	return &qrswitch.Payment{
		RetailerID: retailer, RequestID: id, TranID: "tran-" + id, State: outcome.AwaitingScan,
		CreatedAt: now, UpdatedAt: now, HoldUntil: now.Add(time.Minute),
	}
}
