// Package redisstore (directory store/redis) is the production Store of the
// switch: many qrswitch processes share one Redis (standalone, behind
// Sentinel, or on a Redis Cluster) and behave as one switch. It owns the key
// layout, the Lua scripts that make every change atomic, the indexes that
// lookups, searches, claims and recovery read without ever scanning the
// keyspace, the expiry of QR codes and the retention of finished payments,
// and the wake-up channel between replicas (Notifier). The package is not
// called redis so that it does not shadow go-redis.
//
// # URL
//
//	redis://[[user]:password@]host:6379[/db][?params]
//	rediss://[[user]:password@]host:6380[/db][?ca_file=/etc/qrswitch/redis-ca.pem]
//	redis+sentinel://[[user]:password@]MASTER/host:26379,host:26379[/db][?sentinel_password=…]
//
//	redis+cluster://[[user]:password@]host:7000,host:7001,host:7002[?params]
//	rediss+cluster://… (TLS, as rediss://)
//
// rediss:// speaks TLS (1.2 at least) and trusts the system roots, or only
// the PEM bundle ca_file names. redis+sentinel:// asks the sentinels where
// the master named MASTER is and follows it through failovers; the user
// info is the data nodes' credentials, sentinel_password the sentinels'
// own. redis+cluster:// names some nodes of a Redis Cluster, from which the
// client learns the rest. key_prefix (default "qrs:") starts every key, so
// several switches can share one Redis. Every other parameter is go-redis's
// (dial_timeout, read_timeout, write_timeout, pool_size, client_name, …; an
// unknown one is refused). Put passwords in QRSWITCH_STORE_URL rather than
// the file.
//
// Redis 7.0 or later is required (the scripts declare their flags).
//
// # Redis Cluster
//
// A script may touch keys it did not declare only if they are all in the
// slot of the key it did, and the scripts compute most of theirs (index
// entries named by old values only the script reads). So on a cluster every
// key of the store is in one hash slot: the key prefix carries a hash tag,
// its name in braces unless key_prefix has one ("{qrs}:tr:…"), and every
// script is sent with the prefix as its key. The store therefore uses one
// master (and its replicas) of the cluster, whichever serves that slot: the
// cluster gives it failover without Sentinel, not more throughput than one
// Redis.
//
// shards=N (2 to 1024, on a cluster only) spreads the store over N slots,
// and so over the masters that serve them: each shard is the whole layout
// below under its own prefix ("{qrs.7}:"), holding the QR codes, payments,
// advices and traces of the retailers whose id hashes to it, with the
// rails' records created with them (partners.Record.Retailer), so every
// commit of the engine is still one script in one slot. The unsharded
// prefix ("{qrs}:", the home slot) keeps partner controls and their audit
// trails, rails' records of no retailer, the shard count and the wake-up
// channel. A Change joining two shards — a rail's record of no retailer,
// or of another, with a payment — fails with ErrSharded; rails that keep
// to this say so (partners.ShardSafe), and the server refuses the others at
// start. Searches, lookups, claims, orphans, queue
// statistics and the janitor visit every shard (in parallel; a search for
// one retailer reads its shard). A QR code is read in the shard its tranId
// hashes to — NewTranID makes tranIds that hash to the retailer's shard —
// and otherwise looked for in every shard. The shard count is recorded in
// the home slot: the store refuses to open with another one. See shard.go
// and docs/redis-cluster.md.
//
// WAIT (Options.WaitReplicas) goes to the master that ran the script. After
// a failover the client re-reads the slot map as soon as the dead master
// fails to answer (not after go-redis's periodic reload, a minute later). A
// commit that Redis refused before running it — MOVED after a failover,
// CLUSTERDOWN or TRYAGAIN during one — is sent again, a few times; any other
// failure is ErrUnavailable, as on a single Redis. Any other command
// answered MOVED is sent once more, to the new master. ASK is not followed. While the store's slot moves to another master,
// Redis answers ASK to every script before running it (the key a script
// declares, the bare prefix, is never a record, so it is "missing" on the
// node the slot leaves): the store refuses writes whole, rather than run a
// script on a node holding only part of the slot's keys, until the slot has
// its new owner, whose MOVED the store then follows.
//
// # Key layout
//
// With the default prefix (P = "qrs:"); µs scores are CreatedAt in
// microseconds unless said otherwise:
//
//	P qr:TRANID           hash   QR code: d (JSON), v (version), ret, req, pk (payment using it), exp (ms)
//	P qrreq:RET/REQID     string the tranId holding the (retailer, createQrCode id) pair
//	P pay:RET/REQID       hash   payment: d, v, and ret req tran rrn stan part mer ter st out amt cu cr hu hr
//	P adv:SENDER/ID       hash   advice: d, v, id pk part st cu cr, nu nr (NextAt), lo lu lr (lease), qu qr (QueuedAt), at (attempts)
//	P ctl:PARTNER         hash   partner control: d, v
//	P ctls                zset   every partner with a control, score 0 (PartnerControls)
//	P tr:TRACEKEY         list   trace entries as JSON, in append order
//	P pc                  zset   every payment                      (Search without an equality filter)
//	P p:ret:R, p:req:ID, p:tran:T, p:rrn:N, p:stan:S, p:part:W, p:mer:M, p:ter:T, p:st:STATE, p:out:OUTCOME
//	                      zset   payments by each searched field    (Lookup, Search)
//	P held                zset   AWAITING_SCAN/FORWARDED payments, scored by HoldUntil (Orphans)
//	P gc                  zset   finished payments, scored by when their retention ends (ms)
//	P ac, a:id:ID, a:pay:PAYKEY, a:part:W, a:st:STATE, a:leased
//	                      zset   advices by each listed field       (Lookup, PaymentAdvices, ListAdvices)
//	P due:PARTNER, P due  zset   PENDING advices scored by NextAt   (ClaimAdvices)
//	P q:STATE:PARTNER     zset   PENDING, HELD and DEAD advices by partner, scored by QueuedAt (QueueStats)
//	P wake                channel wake-ups between replicas         (Notifier)
//
// The outcome index (p:out:), the queue statistics sets (q:) and the
// advice fields qu, qr and at came with the support console; records
// written before then are in them once they are next updated (finished
// payments never are: search them by the other fields). Partner audit
// trails (trace key partner/ID) never expire.
//
// A record's JSON carries every field, as in the other backends; the hash
// fields beside it are the copies that scripts compare and indexes are
// moved by, like the SQLite backend's index columns. Times that scripts
// compare are kept as whole microseconds plus the nanoseconds within, so
// comparisons are exact (see micros). A read is one HMGET of the JSON and
// the version (and an advice's lease, which a claim changes without
// rewriting the JSON).
//
// # Atomic changes
//
// Commit is one Lua script (EVALSHA, loaded again on NOSCRIPT): it checks
// every record's version, the duplicate keys and the QR code's
// (retailer, request id) pair first, returns the first record that fails
// (the *qrswitch.CommitError) having written nothing, and otherwise writes
// the records, moves every index entry whose value changed, appends the
// trace and sets lifetimes. ClaimAdvices is a script too: it walks the
// partner's due queue oldest NextAt first and leases, in the same atomic
// step, each due advice that has no live lease and is the first of its
// payment, unless another advice of the payment is leased. Because it is
// atomic, two replicas never lease one advice, and so never send it at once.
// A script runs alone on the server and is replicated and appended to the
// AOF as one MULTI/EXEC block, so a crash of the switch or of Redis never
// leaves a payment half-updated or an advice half-queued. Commit and every
// read cost one round trip; a search or list costs one per 1000 index
// entries it looks at (a budget that keeps each script short), usually one.
//
// Searches with several equality filters are driven by the index with the
// fewest entries in the time range (ZCOUNT on each, inside the script) and
// the other filters are checked on the hash fields in the script, so only
// matches travel. ZINTERSTORE was the alternative; it writes a temporary
// key per search (on the master, replicated, in the AOF) and computes the
// whole intersection even when the first page is all that is wanted.
//
// The client never retries a command by itself (max_retries is forced off):
// a Commit whose answer was lost may have been applied, so re-sending it
// blindly could answer a duplicate for the caller's own write. Every
// failure to reach Redis wraps qrswitch.ErrUnavailable: the engine answers
// 503 and reads again before deciding. go-redis reconnects by itself when
// Redis is back.
//
// # Lifetimes
//
// QR codes expire with Redis TTLs: a code no stored payment uses lives until
// its ExpiresAt plus Options.QRKeep (default 1 h, so support can still read
// an abandoned code's story), counted on Redis's clock; an early scan held
// for a payment request lives inside its QR code, and goes with it. A code a
// payment uses has no TTL while that payment is stored, so a payment's
// story keeps its QR code; the QR code's trace (trace key "qr/TRANID", the
// engine's convention) lives exactly as long as the code.
//
// A payment in a final state is kept for Options.Retention (default 90
// days) after the commit that finished it, then deleted by the janitor with
// its advices, its trace and every index entry, in one script per batch:
// payments and advices have no TTL, because a key that expired by itself
// would leave its index entries behind. A finished payment one of whose
// advices is still pending, held or dead is kept and looked at again a day
// later: an advice is never dropped unseen. Payments that never finish
// (say, APPROVED and never confirmed or reversed) are kept until they do.
// Every replica runs the janitor (Options.JanitorInterval); the script is
// atomic, so they never get in each other's way. After retention a payment
// request id, and an advice id, can be used again.
//
// # Durability
//
// A Commit returns once the master applied the script. What survives a
// crash of the master then depends on its configuration (see
// deploy/redis.conf): with appendfsync always an acknowledged change is on
// the master's disk; with everysec, the default, up to a second of changes
// can be lost if the master's machine fails (not if only Redis crashes).
// Options.WaitReplicas adds WAIT, pipelined with the script (no extra round
// trip): Commit then succeeds only when that many replicas acknowledged the
// write within Options.WaitTimeout, and otherwise fails with
// ErrUnavailable, so the switch answers 503, never 201/202 without the
// promised copy. It applies to every Commit that writes a record (QR code,
// payment, advice), because each of them is the basis of an answer the
// switch gives; trace-only commits and claims (a lost lease only means an
// advice is sent again, with the same id) do not wait.
//
// # Replicas
//
// Replicas share everything through the store; the engine is told
// SoleOwner=false, so it recovers a payment only after its holder's
// HoldUntil. Notifier carries wake-ups on one pub/sub channel: a scan linked
// on one replica wakes the payment request held on another at once; a
// message lost on the way (pub/sub does not queue) costs at most the
// engine's Recheck interval, since held requests re-read the store.
package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/qrswitch/qrswitch/store"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Options tune a Store. The zero value is the production default.
type Options struct {
	// Retention is how long a finished payment, its advices and its trace
	// are kept after the commit that finished it. Default 2160 h (90 days).
	Retention time.Duration
	// WaitReplicas, when above 0, makes every Commit that writes a record
	// wait until that many replicas acknowledged it (Redis WAIT), and fail
	// with ErrUnavailable otherwise. Default 0: no wait.
	WaitReplicas int
	// WaitTimeout bounds that wait. Default 200 ms.
	WaitTimeout time.Duration
	// QRKeep is how long a QR code no payment uses is kept after it
	// expires. Default 1 h.
	QRKeep time.Duration
	// JanitorInterval is how often payments past their retention are
	// deleted. Default 1 min; negative: never (call Sweep).
	JanitorInterval time.Duration

	// clusterReload replaces go-redis's periodic re-read of a cluster's
	// slot map (tests: an hour shows the store re-reads it by itself).
	clusterReload time.Duration
}

// Defaults of Options.
const (
	DefaultRetention       = 90 * 24 * time.Hour
	DefaultWaitTimeout     = 200 * time.Millisecond
	DefaultQRKeep          = time.Hour
	DefaultJanitorInterval = time.Minute
)

// sweepBatch is the most payments one janitor script deletes; a sweep runs
// batches until less than a full one was due.
const sweepBatch = 200

// Store is a qrswitch.Store on Redis. It is safe for concurrent use.
type Store struct {
	c       redis.UniversalClient
	cluster *redis.ClusterClient // s.c when the store is on a Redis Cluster
	// home is the store's prefix and the slot of what is no retailer's;
	// shards are where retailers' records are (home itself when unsharded).
	// The scripts read only ARGV: a shard's route, its KEYS, places them.
	home   *shard
	shards []*shard
	placed placement
	turn   atomic.Uint64 // where the next claim starts among the shards
	opts   Options

	trips [numOps]atomic.Int64
	// reloaded is when failed last asked for the cluster's slot map (Unix ns).
	reloaded atomic.Int64

	stopJanitor context.CancelFunc
	janitorDone chan struct{}
	closeOnce   sync.Once
	closeErr    error
}

// Open connects to the Redis the URL names (see the package comment),
// checks that it is fit to hold payments — Redis 7 or later, an eviction
// policy that never drops a key without a TTL — loads the scripts and
// starts the janitor. It fails when Redis cannot be reached.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	ep, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = DefaultWaitTimeout
	}
	// WAIT takes whole milliseconds, and 0 would wait for ever.
	opts.WaitTimeout = max(opts.WaitTimeout.Round(time.Millisecond), time.Millisecond)
	if opts.QRKeep <= 0 {
		opts.QRKeep = DefaultQRKeep
	}
	if opts.JanitorInterval == 0 {
		opts.JanitorInterval = DefaultJanitorInterval
	}
	quietOnce.Do(func() { redis.SetLogger(&logging.VoidLogger{}) })
	s := &Store{home: newShard(ep.prefix), opts: opts}
	s.shards = []*shard{s.home}
	if ep.shards > 1 {
		s.shards = make([]*shard, ep.shards)
		for i := range s.shards {
			s.shards[i] = newShard(shardPrefix(ep.prefix, i))
		}
	}
	switch {
	case ep.single != nil:
		o := ep.single
		tune(&o.MaxRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled, &o.PoolSize, &o.DialerRetries, opts.WaitTimeout)
		o.DisableIdentity = true
		s.c = redis.NewClient(o)
	case ep.failover != nil:
		o := ep.failover
		tune(&o.MaxRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled, &o.PoolSize, &o.DialerRetries, opts.WaitTimeout)
		o.DisableIdentity = true
		s.c = redis.NewFailoverClient(o)
	default:
		o := ep.cluster
		tune(&o.MaxRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled, &o.PoolSize, &o.DialerRetries, opts.WaitTimeout)
		o.DisableIdentity = true
		// Replicas are not read: a read must see the commit before it.
		o.ReadOnly, o.RouteByLatency, o.RouteRandomly = false, false, false
		o.ClusterStateReloadInterval = opts.clusterReload
		// No redirection is followed by go-redis: an ASK (a slot being
		// moved) would run a script on a node holding only part of the
		// slot's keys. A MOVED still makes the client re-read the slot map;
		// the call fails with ErrUnavailable, and a commit is sent again
		// (runCommit), since Redis refused it before running it.
		o.MaxRedirects = -1
		s.cluster = redis.NewClusterClient(o)
		s.c = s.cluster
	}
	c := s.c
	c.AddHook(counter{s})
	if err := s.check(ctx); err != nil {
		c.Close()
		return nil, err
	}
	janitorCtx, stop := context.WithCancel(context.Background())
	s.stopJanitor, s.janitorDone = stop, make(chan struct{})
	go s.janitor(janitorCtx)
	return s, nil
}

// quietOnce silences go-redis's own logger, which is process-wide and
// writes plain text to stderr: every failure it would report reaches the
// store's caller as an error, which the switch logs in its JSON log.
var quietOnce sync.Once

// tune sets the client defaults the store needs where the URL left them:
// no blind retries, short dials, and reads that outlast a WAIT.
func tune(maxRetries *int, dial, read, write *time.Duration, ctxTimeout *bool, pool, dialRetries *int, wait time.Duration) {
	*maxRetries = -1
	*ctxTimeout = true
	if *dial == 0 {
		*dial = 2 * time.Second
	}
	if *read == 0 {
		*read = max(3*time.Second, wait+2*time.Second)
	}
	if *write == 0 {
		*write = 3 * time.Second
	}
	if *pool == 0 {
		// Held payment requests hold no connection, but a busy switch has
		// many commits and reads in flight at once.
		*pool = 64
	}
	if *dialRetries == 0 {
		// A Redis that refuses connections is down: say so at once (the
		// engine answers 503) rather than after five dial attempts.
		*dialRetries = 1
	}
}

// check verifies the server and loads the scripts.
func (s *Store) check(ctx context.Context) error {
	ctx = withOp(ctx, opPing)
	err := s.eachServer(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server", "memory").Result()
		if err != nil {
			return unavailable("connecting to redis", err)
		}
		fields := infoFields(info)
		v := fields["redis_version"]
		if major, err := strconv.Atoi(strings.Split(v, ".")[0]); err != nil || major < 7 {
			return fmt.Errorf("redis %q: the store needs Redis 7.0 or later", v)
		}
		if p := fields["maxmemory_policy"]; strings.HasPrefix(p, "allkeys-") {
			return fmt.Errorf("redis maxmemory-policy is %s: it may evict payments and queued advices; set noeviction (see deploy/redis.conf)", p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, sc := range []*redis.Script{commitScript, claimScript, janitorScript, walkScript, lookupScript, statsScript, controlsScript} {
		if err := sc.Load(ctx, s.c).Err(); err != nil {
			return unavailable("loading the store's scripts", err)
		}
	}
	return s.checkShards(ctx)
}

// eachServer calls fn with the one server of a standalone or Sentinel
// store, or with every master of a cluster (in parallel; the first error
// is returned).
func (s *Store) eachServer(ctx context.Context, fn func(ctx context.Context, c *redis.Client) error) error {
	if s.cluster == nil {
		return fn(ctx, s.c.(*redis.Client))
	}
	var mu sync.Mutex
	var first error
	err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		err := fn(ctx, c)
		if err != nil {
			mu.Lock()
			first = cmp.Or(first, err)
			mu.Unlock()
		}
		return err
	})
	switch {
	case first != nil:
		return first
	case err != nil:
		return unavailable("reaching the cluster's masters", err)
	}
	return nil
}

// infoFields reads "name:value" lines of an INFO reply.
func infoFields(info string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Prefix returns the key prefix of the store's keys (on a sharded store,
// of its home slot; each shard extends its hash tag).
func (s *Store) Prefix() string { return s.home.prefix }

// Shards returns the number of shards (1: every key in one slot).
func (s *Store) Shards() int { return len(s.shards) }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(withOp(ctx, opPing)).Err(); err != nil {
		return unavailable("pinging redis", err)
	}
	return nil
}

// Close stops the janitor and closes the connections. Records committed
// before Close are in Redis. Close is idempotent; calls after it fail with
// an error wrapping ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopJanitor()
		<-s.janitorDone
		s.closeErr = s.c.Close()
	})
	return s.closeErr
}

func (s *Store) janitor(ctx context.Context) {
	defer close(s.janitorDone)
	if s.opts.JanitorInterval < 0 {
		return
	}
	t := time.NewTicker(s.opts.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// An error (Redis away) is retried at the next tick; nothing
			// is lost by a late sweep.
			s.Sweep(ctx)
		}
	}
}

// Sweep deletes the finished payments whose retention has ended, with
// their advices, traces and index entries, and returns how many it deleted.
// The janitor calls it every JanitorInterval. A sharded store sweeps each
// shard in turn; one it cannot reach (its master failing over) does not
// keep the others from being swept, and the first error is returned.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	ctx = withOp(ctx, opSweep)
	total := 0
	var first error
	for _, sh := range s.shards {
		n, err := s.sweep(ctx, sh)
		total += n
		first = cmp.Or(first, err)
	}
	return total, first
}

func (s *Store) sweep(ctx context.Context, sh *shard) (int, error) {
	total := 0
	for {
		res, err := janitorScript.Run(ctx, s.c, sh.route, sh.prefix, s.opts.Retention.Milliseconds(), s.opts.QRKeep.Milliseconds(), sweepBatch).Int64Slice()
		if err != nil {
			return total, unavailable("sweeping finished payments", err)
		}
		if len(res) != 2 {
			return total, fmt.Errorf("sweeping finished payments: unexpected reply %v", res)
		}
		total += int(res[0])
		if res[1] < sweepBatch {
			return total, nil
		}
	}
}

// unavailable wraps a Redis error so that callers see ErrUnavailable and
// the cause.
func unavailable(doing string, err error) error {
	return fmt.Errorf("%s: %w: %w", doing, qrswitch.ErrUnavailable, err)
}

// isNoScript reports whether err says the server does not know a script.
func isNoScript(err error) bool {
	return errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")
}

// --- round trips ------------------------------------------------------------

// op names the Store method a round trip is made for.
type op int

const (
	opCommit op = iota
	opClaim
	opQR
	opPayment
	opAdvice
	opTrace
	opPaymentAdvices
	opLookup
	opSearch
	opListAdvices
	opOrphans
	opQueueStats
	opControls
	opPing
	opNotify
	opSweep
	opRecord
	opRecords
	numOps
)

var opNames = [numOps]string{"Commit", "ClaimAdvices", "QR", "Payment", "Advice", "Trace", "PaymentAdvices",
	"Lookup", "Search", "ListAdvices", "Orphans", "QueueStats", "QueueControls", "Ping", "Notify", "Sweep",
	"Record", "Records"}

type opKey struct{}

func withOp(ctx context.Context, o op) context.Context { return context.WithValue(ctx, opKey{}, o) }

// counter is a go-redis hook counting round trips: one per command sent
// alone, one per pipeline. A new connection's handshake (HELLO, AUTH,
// SELECT), which go-redis also runs through the hook, is not an operation's
// cost and is not counted.
type counter struct{ s *Store }

func (h counter) count(ctx context.Context) {
	o, ok := ctx.Value(opKey{}).(op)
	if !ok {
		o = opPing
	}
	h.s.trips[o].Add(1)
}

func (h counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "auth", "select":
		default:
			h.count(ctx)
		}
		err := next(ctx, cmd)
		if to, ok := movedTo(err); ok && h.s.cluster != nil {
			// Refused before it ran: its slot has another master now (a
			// failover). Wait for the slot map to say so and send it
			// there, once. An ASK is not followed (see the package comment).
			h.s.awaitMaster(ctx, firstKey(cmd), to)
			cmd.SetErr(nil)
			err = next(ctx, cmd)
		}
		h.s.failed(err)
		return err
	}
}

func (h counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.count(ctx)
		err := next(ctx, cmds)
		h.s.failed(err)
		return err
	}
}

// failed has a cluster's slot map read again, at most every
// clusterReloadEvery, after an error that is not an answer of Redis (a
// connection refused, reset or timed out). go-redis re-reads it on a MOVED,
// but a master that died answers nothing: without this, the store would
// dial it until the client's periodic reload, a minute after its replica
// took over.
func (s *Store) failed(err error) {
	var answer redis.Error
	if s.cluster == nil || err == nil || errors.As(err, &answer) ||
		errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) {
		return
	}
	now, last := time.Now().UnixNano(), s.reloaded.Load()
	if now-last < int64(clusterReloadEvery) || !s.reloaded.CompareAndSwap(last, now) {
		return
	}
	s.cluster.ReloadState(context.Background()) // go-redis reloads in the background
}

// clusterReloadEvery bounds how often failed re-reads the slot map.
const clusterReloadEvery = 250 * time.Millisecond

// movedTo returns the address a MOVED refusal names.
func movedTo(err error) (string, bool) {
	if !redis.HasErrorPrefix(err, "MOVED ") {
		return "", false
	}
	f := strings.Fields(err.Error())
	return f[len(f)-1], true
}

// firstKey returns the key a command of the store names first: a script's
// declared key, or a read's key.
func firstKey(cmd redis.Cmder) string {
	args, i := cmd.Args(), 1
	switch cmd.Name() {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
		i = 3
	}
	if i < len(args) {
		if k, ok := args[i].(string); ok {
			return k
		}
	}
	return ""
}

// awaitMaster has the cluster client read the slot map again until it
// names addr as the master of key's slot (go-redis reloads it in the
// background), for at most clusterMovedWait.
func (s *Store) awaitMaster(ctx context.Context, key, addr string) {
	for deadline := time.Now().Add(clusterMovedWait); time.Now().Before(deadline); {
		s.cluster.ReloadState(ctx)
		if m, err := s.cluster.MasterForKey(ctx, key); err == nil && m.Options().Addr == addr {
			return
		}
		if sleep(ctx, 20*time.Millisecond) != nil {
			return
		}
	}
}

// clusterMovedWait bounds awaitMaster: time for every node to learn of a
// new master, which a client may ask any of.
const clusterMovedWait = 2 * time.Second

// RoundTrips returns how many round trips to Redis the store has made since
// Open (store.Benchmarks reports them per operation).
func (s *Store) RoundTrips() int64 {
	var n int64
	for i := range s.trips {
		n += s.trips[i].Load()
	}
	return n
}

// Stats returns the round trips since Open by the method that made them:
// the Store's methods, Notify (wake-ups), and Sweep (the janitor). Open's
// own checks count as Ping.
func (s *Store) Stats() map[string]int64 {
	m := make(map[string]int64, numOps)
	for i := range s.trips {
		m[opNames[i]] = s.trips[i].Load()
	}
	return m
}

// ServerCPU returns the CPU time (user and system) the Redis server has
// used since it started (on a cluster: every master), from INFO cpu;
// store.Benchmarks reports it per operation. It counts every client of the
// server, not only this store.
func (s *Store) ServerCPU(ctx context.Context) (time.Duration, error) {
	var mu sync.Mutex
	var total float64
	err := s.eachServer(withOp(ctx, opPing), func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			return unavailable("reading the server's CPU time", err)
		}
		f := infoFields(info)
		for _, name := range []string{"used_cpu_user", "used_cpu_sys"} {
			v, err := strconv.ParseFloat(f[name], 64)
			if err != nil {
				return fmt.Errorf("INFO cpu %s = %q: %w", name, f[name], err)
			}
			mu.Lock()
			total += v
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(total * float64(time.Second)), nil
}

// Interface guards
var _ qrswitch.Store = (*Store)(nil)

// recheck bounds how long a wake-up lost between replicas (Redis pub/sub
// does not queue) can delay a held request: it re-reads the store this
// often. One read per held request per second is cheap next to the scan
// wait it shortens.
const recheck = time.Second

func init() {
	open := func(ctx context.Context, url string, o store.Options) (*store.Backend, error) {
		s, err := Open(ctx, url, Options{Retention: o.Retention, WaitReplicas: o.WaitReplicas, WaitTimeout: o.WaitTimeout})
		if err != nil {
			return nil, err
		}
		return &store.Backend{Store: s, Notifier: s.Notifier(), Recheck: recheck, Sharded: s.Shards() > 1}, nil
	}
	for _, scheme := range []string{"redis", "rediss", "redis+sentinel", "redis+cluster", "rediss+cluster"} {
		store.Register(scheme, open)
	}
}
