// Package sqlite is the embedded default Store of the switch: one SQLite
// file, no server, durable. It owns the file's schema and its migrations, the
// single writer that group-commits Changes, and the advisory lock that keeps a
// second qrswitch process off the same file.
//
// # Durability
//
// The file runs in WAL mode with synchronous=FULL by default: every COMMIT
// fsyncs the write-ahead log before Commit returns, so an advice answered 202
// survives a power cut, not only a crash of the process. synchronous=NORMAL
// (URL parameter) skips that fsync and syncs only at checkpoints; a committed
// record then survives kill -9 but may be lost with the last transactions
// before a power cut or kernel panic. The cost of FULL is one fsync per
// batch, not per Commit, because of group commit.
//
// # Group commit
//
// One goroutine owns the only write connection. Commit encodes its Change
// (JSON, index columns) on the caller's goroutine and queues it; the writer
// takes every queued Change up to Options.MaxBatch and applies them in one
// transaction, then COMMITs once: one fsync acknowledges a whole batch.
// Within the batch each Change is checked in full (versions, duplicate keys)
// before any of its records is written, so a Change that fails a check has
// written nothing and gets its own *qrswitch.CommitError while the others
// commit; this isolates it as a SAVEPOINT per Change would, without the
// savepoint's page copies. Versions are set on the callers' records only
// after the COMMIT succeeded; if the batch fails, every Change in it gets an
// error wrapping qrswitch.ErrUnavailable. ClaimAdvices runs in the writer too,
// because it writes leases. Reads use a separate pool of read-only
// connections, which WAL lets run beside the writer.
//
// The writer keeps, for recently written records, their version and indexed
// values, so that most updates are checked without a read, and an UPDATE
// sets only the indexed columns whose values moved (SQLite rewrites an
// index entry for every column an UPDATE sets). Only the writer writes the
// file, so this cache is exact; it is dropped whenever a batch rolls back.
//
// # One process per file
//
// SQLite's own locks would let several processes share the file, but the
// writer's cache is exact only while it is the file's one writer, and two
// writers would turn group commit into lock waits. So Open takes an
// exclusive flock on "<file>.lock" and fails at once with ErrLocked while
// another process (or another Store in this process) holds it; the kernel
// releases it when the holder exits, however it exits. Several replicas
// sharing records is the Redis backend's job.
//
// # Retention
//
// With Options.Retention set, a janitor deletes finished payments (with
// their advices and traces), unused expired QR codes and traces of nothing
// stored, by the rules the Redis backend applies, in small steps that join
// the writer's batches; dead letters and anything not final stay. See
// retention.go.
//
// # URL
//
//	sqlite://./var/qrswitch.db          relative to the working directory
//	sqlite:///var/lib/qrswitch/q.db     absolute
//	sqlite://./q.db?synchronous=normal&busy_timeout=10s
//
// Query parameters:
//
//	synchronous   full (default) or normal; see Durability.
//	busy_timeout  how long a statement waits for a lock held by a
//	              checkpoint or a reader, as a Go duration; default 5s.
//
// The parent directory is created when missing.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/qrswitch/qrswitch/store"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// ErrLocked reports that another Store, usually in another qrswitch process,
// holds the database file.
var ErrLocked = errors.New("database is in use by another qrswitch")

// Options tune a Store. The zero value is the production default.
type Options struct {
	// MaxBatch is the most Changes the writer commits in one transaction.
	// Default 256.
	MaxBatch int
	// ReadConns is the number of read-only connections. Default 4.
	ReadConns int
	// Retention is how long a finished payment, its advices and its trace
	// are kept after the commit that finished it (see retention.go).
	// Default 0: everything is kept and the janitor does not run.
	Retention time.Duration
	// QRKeep is how long a QR code no payment uses is kept after it
	// expires. Default 1 h.
	QRKeep time.Duration
	// JanitorInterval is how often the janitor sweeps, when Retention is
	// set. Default 1 min; negative: never (call Sweep).
	JanitorInterval time.Duration
	// Now is the janitor's clock. Default time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultQRKeep          = time.Hour
	DefaultJanitorInterval = time.Minute
)

// Stats counts the writer's work since Open.
type Stats struct {
	// Commits is the number of Changes written (Commit calls that
	// succeeded).
	Commits int64
	// Claims is the number of ClaimAdvices calls that succeeded.
	Claims int64
	// Batches is the number of SQLite transactions committed; each carries
	// one or more Changes and claims, and costs one fsync with
	// synchronous=full.
	Batches int64
	// SweepSteps is the number of retention sweep steps committed; each
	// looks at up to 16 candidates inside one batch.
	SweepSteps int64
}

// Store is a qrswitch.Store in one SQLite file. It is safe for concurrent use.
type Store struct {
	path string
	cfg  config
	lock *os.File

	wdb *sql.DB   // holds the one write connection
	w   *sql.Conn // owned by the writer goroutine once Open returns
	ws  writeStmts
	rdb *sql.DB
	rs  readStmts
	// records answers reads of recently written records without SQLite.
	records *recordCache
	sw      sweepStmts // the writer's, prepared on the first sweep

	stopJanitor context.CancelFunc
	janitorDone chan struct{}

	// mu guards closed and sends on queue: Commit holds it shared while it
	// queues, Close holds it exclusively to close queue, so no Change is
	// queued after the writer's final drain.
	mu      sync.RWMutex
	closed  bool
	queue   chan *op
	stopped chan struct{} // closed when the writer has exited

	closeOnce sync.Once
	closeErr  error

	commits atomic.Int64
	claims  atomic.Int64
	batches atomic.Int64
	sweeps  atomic.Int64
}

// Open opens (creating it when missing) the database the URL names, takes
// its lock, migrates its schema to the current version and starts the
// writer. See the package comment for the URL.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	s, err := open(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	go s.run()
	s.stopJanitor, s.janitorDone = func() {}, make(chan struct{})
	if every := opts.JanitorInterval; opts.Retention > 0 && every >= 0 {
		if every == 0 {
			every = DefaultJanitorInterval
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.stopJanitor = cancel
		go s.janitor(ctx, every)
	} else {
		close(s.janitorDone)
	}
	return s, nil
}

// open is Open without starting the writer.
func open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	cfg.maxBatch = opts.MaxBatch
	cfg.readConns = opts.ReadConns
	cfg.retention = opts.Retention
	if cfg.qrKeep = opts.QRKeep; cfg.qrKeep <= 0 {
		cfg.qrKeep = DefaultQRKeep
	}
	if cfg.now = opts.Now; cfg.now == nil {
		cfg.now = time.Now
	}

	path, err := filepath.Abs(cfg.path)
	if err != nil {
		return nil, fmt.Errorf("resolving database path %s: %w", cfg.path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating database directory: %w", err)
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:    path,
		cfg:     cfg,
		lock:    lock,
		queue:   make(chan *op, 4*cfg.maxBatch),
		stopped: make(chan struct{}),
		records: newRecordCache(),
	}
	if err := s.connect(ctx); err != nil {
		s.closeDBs()
		unlockFile(lock)
		return nil, err
	}
	return s, nil
}

// connect opens the write connection, migrates, and opens the read pool.
func (s *Store) connect(ctx context.Context) error {
	busy := s.cfg.busyTimeout.Milliseconds()
	var err error
	s.wdb, err = sql.Open("sqlite", dsn(s.path,
		fmt.Sprintf("busy_timeout(%d)", busy),
		"journal_mode(WAL)",
		"synchronous("+s.cfg.synchronous+")",
		"journal_size_limit(67108864)",
		"cache_size(-32768)",
		// Checkpoint every 8,000 WAL pages (32 MiB) rather than SQLite's
		// 1,000: the hot pages (index roots, the newest rows) are copied into
		// the database once per checkpoint, so fewer checkpoints copy them
		// fewer times. In scripts/bench profiles the checkpoints' share of
		// the writer's CPU went from 16 % to 11 %.
		"wal_autocheckpoint(8000)",
	))
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.w, err = s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.path, err)
	}
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("opening %s: %w", s.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("opening %s: journal mode is %q, want wal", s.path, mode)
	}
	if err := migrate(ctx, s.w); err != nil {
		return fmt.Errorf("migrating %s: %w", s.path, err)
	}
	// Statistics for the query planner, as SQLite advises for long-lived
	// connections; it analyzes only tables that need it, within a limit.
	if _, err := s.w.ExecContext(ctx, "PRAGMA optimize=0x10002"); err != nil {
		return fmt.Errorf("optimizing %s: %w", s.path, err)
	}
	if err := s.ws.prepare(ctx, s.w); err != nil {
		return fmt.Errorf("preparing statements on %s: %w", s.path, err)
	}

	s.rdb, err = sql.Open("sqlite", dsn(s.path,
		fmt.Sprintf("busy_timeout(%d)", busy),
		"query_only(1)",
		"cache_size(-16384)",
	))
	if err != nil {
		return fmt.Errorf("opening %s for reading: %w", s.path, err)
	}
	s.rdb.SetMaxOpenConns(s.cfg.readConns)
	s.rdb.SetMaxIdleConns(s.cfg.readConns)
	s.rdb.SetConnMaxLifetime(0)
	if err := s.rs.prepare(ctx, s.rdb); err != nil {
		return fmt.Errorf("preparing statements on %s: %w", s.path, err)
	}
	return nil
}

// dsn builds a modernc.org/sqlite data source name: the path, then one
// _pragma parameter per pragma, run on every new connection.
func dsn(path string, pragmas ...string) string {
	d := path + "?"
	for i, p := range pragmas {
		if i > 0 {
			d += "&"
		}
		d += "_pragma=" + p
	}
	return d
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Claims: s.claims.Load(), Batches: s.batches.Load(), SweepSteps: s.sweeps.Load()}
}

// Ping checks that the store is open and its file answers a query.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return errClosed
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return unavailable("pinging", err)
	}
	return nil
}

// Close commits every Change already queued, stops the writer, closes the
// database and releases the lock. Commit after Close fails with an error
// wrapping qrswitch.ErrUnavailable. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stopJanitor != nil {
			s.stopJanitor()
			<-s.janitorDone
		}
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		<-s.stopped
		s.w.ExecContext(context.Background(), "PRAGMA optimize") // best effort: only statistics
		s.closeErr = s.closeDBs()
		if err := unlockFile(s.lock); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func (s *Store) closeDBs() error {
	var errs []error
	s.rs.close()
	s.ws.close()
	s.sw.close()
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing %s: %w", s.path, err)
	}
	return nil
}

var errClosed = fmt.Errorf("sqlite store is closed: %w", qrswitch.ErrUnavailable)

// unavailable wraps a database error so that callers see ErrUnavailable and
// the cause.
func unavailable(doing string, err error) error {
	return fmt.Errorf("%s: %w: %w", doing, qrswitch.ErrUnavailable, err)
}

// config is what the URL says.
type config struct {
	path        string
	synchronous string // FULL or NORMAL
	busyTimeout time.Duration
	maxBatch    int
	readConns   int
	retention   time.Duration // 0: keep everything
	qrKeep      time.Duration
	now         func() time.Time
}

// Interface guards
var _ qrswitch.Store = (*Store)(nil)

func init() {
	store.Register("sqlite", func(ctx context.Context, url string, o store.Options) (*store.Backend, error) {
		s, err := Open(ctx, url, Options{Retention: o.Retention})
		if err != nil {
			return nil, err
		}
		return &store.Backend{Store: s, SoleOwner: true}, nil
	})
}
