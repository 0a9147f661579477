// Package httpapi is the plumbing every HTTP surface of the switch shares:
// the gin router with its middleware (request ids, panic recovery, access
// logs), HTTP Basic authentication against bcrypt hashes, body limits, and
// rendering of ErrorDetail answers. It is the only package besides the
// surfaces themselves (retailers, partners/scanapi, support) that imports gin.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/logctx"
	"github.com/qrswitch/qrswitch/internal/wire"
)

// MaxBody is the largest request body accepted. The interface's messages
// are a few KiB; anything near this is abuse or a bug.
const MaxBody = 64 << 10

// Context keys set by the middleware.
const (
	keyPrincipal = "qrswitch.principal"
	keyPanics    = "qrswitch.panics"
)

// Observer counts what the plumbing sees; a nil Observer counts nothing.
type Observer interface {
	Request(route, method string, status int, took time.Duration)
	Panic(route string)
}

// Options configure a router.
type Options struct {
	Logger zerolog.Logger
	// AccessLog logs every request at info level when true, and only
	// failures (status ≥ 400) otherwise.
	AccessLog bool
	Observer  Observer
	// TrustedProxies are the load balancers (IPs or CIDRs) whose
	// X-Forwarded-For and X-Real-IP headers name the client. Empty: the
	// connection's address is the client's, whatever the headers say.
	TrustedProxies []string
}

func init() { gin.SetMode(gin.ReleaseMode) }

// NewRouter returns a gin engine with the shared middleware installed and
// ErrorDetail answers for unknown routes and methods. It fails only on a
// TrustedProxies entry that is neither an IP nor a CIDR.
func NewRouter(o Options) (*gin.Engine, error) {
	r := gin.New()
	// Client addresses come from the connection, not from headers, unless
	// the connection is a trusted proxy: gin trusts X-Forwarded-For from
	// anyone by default, which would let a client pick the address its
	// failed logins are throttled under (or throttle someone else's) and
	// forge the address in the access log.
	r.ForwardedByClientIP = len(o.TrustedProxies) > 0
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(middleware(o))
	r.NoRoute(func(c *gin.Context) {
		Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.FunctionNotSupported, "No such operation", "", ""))
	})
	r.NoMethod(func(c *gin.Context) {
		Fail(c, http.StatusMethodNotAllowed, wire.NewErrorDetail(wire.FunctionNotSupported, "Method not allowed", "", ""))
	})
	return r, nil
}

// middleware assigns a request id, puts a request logger in the context,
// turns a panic into a 500 ErrorDetail, and writes the access log line.
func middleware(o Options) gin.HandlerFunc {
	base := &o.Logger
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = wire.NewID()
		}
		c.Header("X-Request-Id", id)
		c.Request = c.Request.WithContext(logctx.New(c.Request.Context(), base, id))
		defer func() {
			route := c.FullPath()
			if route == "" {
				route = "unmatched"
			}
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logctx.Logger(c.Request.Context(), base).Error().Str("panic", panicText(v)).Str("route", route).Msg("handler panicked")
				if o.Observer != nil {
					o.Observer.Panic(route)
				}
				if !c.Writer.Written() {
					Fail(c, http.StatusInternalServerError, wire.NewErrorDetail(wire.GeneralError, "Internal error", "", ""))
				}
			}
			status := c.Writer.Status()
			took := time.Since(start)
			if o.Observer != nil {
				o.Observer.Request(route, c.Request.Method, status, took)
			}
			if o.AccessLog || status >= 400 {
				log := logctx.Logger(c.Request.Context(), base)
				ev := log.Info()
				if status >= 500 {
					ev = log.Warn()
				}
				if p, ok := PrincipalOf(c); ok {
					ev = ev.Str("principal", p.Kind+":"+p.ID)
				}
				ev.Str("method", c.Request.Method).Str("path", c.Request.URL.Path).Int("status", status).
					Dur("took", took).Str("remote", c.ClientIP()).Msg("request")
			}
		}()
		c.Next()
	}
}

// SetTranID adds the request's tranId to what its log lines carry.
func SetTranID(c *gin.Context, tranID string) {
	if tranID == "" {
		return
	}
	c.Request = c.Request.WithContext(logctx.WithTranID(c.Request.Context(), tranID))
}

// Logger returns the request's logger: the server's, with the request id
// and tranId.
func Logger(c *gin.Context) *zerolog.Logger {
	nop := zerolog.Nop()
	return logctx.Logger(c.Request.Context(), &nop)
}

// ReadBody reads the request body, refusing one larger than MaxBody with a
// 400 FORMAT_ERROR. It reports whether the handler may go on.
func ReadBody(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		d := wire.NewErrorDetail(wire.FormatError, "Request body too large", "", "")
		d.DetailMessage = wire.Detail("the body must be at most 64 KiB")
		Fail(c, http.StatusBadRequest, d)
		return nil, false
	case err != nil:
		d := wire.NewErrorDetail(wire.FormatError, "Request body unreadable", "", "")
		d.DetailMessage = wire.Detail(err.Error())
		Fail(c, http.StatusBadRequest, d)
		return nil, false
	}
	return body, true
}

// Decode reads and decodes a JSON request body into v, answering 400
// FORMAT_ERROR naming the field when it cannot. It reports whether the
// handler may go on, and returns the raw body for the trace.
func Decode(c *gin.Context, v any) ([]byte, bool) {
	body, ok := ReadBody(c)
	if !ok {
		return nil, false
	}
	if err := wire.Decode(body, v); err != nil {
		d := wire.NewErrorDetail(wire.FormatError, "Malformed request", "", "")
		var fe *wire.FieldError
		if errors.As(err, &fe) && fe.Field != "" {
			d.ErrorMessage = wire.ShortMessage("Invalid field " + fe.Field)
		}
		d.DetailMessage = wire.Detail(err.Error())
		Fail(c, http.StatusBadRequest, d)
		return nil, false
	}
	return body, true
}

// FailCause answers like Fail, and logs cause — the private reason behind
// the answer, such as the store error behind a 503, which the ErrorDetail
// never shows — with the request's id. A nil cause logs nothing.
func FailCause(c *gin.Context, status int, d *wire.ErrorDetail, cause error) {
	if cause != nil {
		Logger(c).Error().Err(cause).Int("status", status).
			Str("errorType", d.ErrorType).Msg("request failed")
	}
	Fail(c, status, d)
}

// Fail answers with status and an ErrorDetail body.
func Fail(c *gin.Context, status int, d *wire.ErrorDetail) {
	c.Abort()
	JSON(c, status, d)
}

// JSON answers with status and v encoded as JSON.
func JSON(c *gin.Context, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Logger(c).Error().Err(err).Msg("encoding an answer")
		status, b = http.StatusInternalServerError, []byte(`{"errorType":"GENERAL_ERROR","errorMessage":"Internal error"}`)
	}
	Raw(c, status, b)
}

// Raw answers with status and an already-encoded JSON body.
func Raw(c *gin.Context, status int, body []byte) {
	c.Data(status, "application/json", body)
}

// Apart runs f on another goroutine and waits for it; a panic in f is
// raised again here, so the router's recovery still answers 500.
//
// It is for a handler that holds its request open for long (a payment
// request waits up to scan_wait): decoding JSON by reflection and encoding
// records grow a goroutine's stack from 8 to 16 KiB, the runtime halves a
// waiting goroutine's stack at most once per collection, and the handler
// would keep what it grew while it waits. Done apart, the waiting goroutine
// keeps only what net/http, gin and the wait need.
//
// The other goroutines are a pool of at most maxApartWorkers workers that
// keep their grown stacks between calls (one idle for apartIdle ends), and
// beyond them goroutines that end with their call. What it costs
// (BenchmarkApart, a payment request decoded and encoded again): nothing
// measurable while every P is busy, as under load (8.5–8.8 µs against 9.3
// inline; a goroutine started per call instead of the pool cost 9.4–11.2
// µs); 8 µs more than inline while a P is idle, which then wakes a thread
// to run the worker.
func Apart(f func()) {
	j := apartJobs.Get().(*apartJob)
	j.f = f
	select {
	case apartWork <- j: // an idle worker took it
	default:
		if apartWorkers.Add(1) <= maxApartWorkers {
			go apartWorker(j)
		} else {
			apartWorkers.Add(-1)
			go runApart(j) // a burst: this goroutine ends with its call
		}
	}
	p := <-j.done
	j.f = nil
	apartJobs.Put(j)
	switch {
	case p == errApartGoexit:
		runtime.Goexit() // f called it (a test's t.FailNow): so does its caller
	case p != nil:
		panic(p)
	}
}

// apartIdle is how long a worker of Apart waits for a call before it ends,
// and maxApartWorkers the most that wait: in a burst of requests (10 000
// arriving in 3 s) the calls beyond them run on goroutines that end with
// them, so that the burst's grown stacks are not kept by idle workers.
const (
	apartIdle       = 10 * time.Second
	maxApartWorkers = 64
)

type apartJob struct {
	f    func()
	done chan any
}

var (
	apartWork    = make(chan *apartJob)
	apartWorkers atomic.Int64
	apartJobs    = sync.Pool{New: func() any { return &apartJob{done: make(chan any, 1)} }}
)

func apartWorker(j *apartJob) {
	defer apartWorkers.Add(-1)
	idle := time.NewTimer(apartIdle)
	defer idle.Stop()
	for {
		runApart(j)
		idle.Reset(apartIdle)
		select {
		case j = <-apartWork:
		case <-idle.C:
			return
		}
	}
}

// errApartGoexit stands for a runtime.Goexit in Apart's f.
var errApartGoexit = errors.New("apart: runtime.Goexit")

// runApart runs j.f and answers j.done: nil, what f panicked with, or
// errApartGoexit when f called runtime.Goexit (which also ends this
// worker).
func runApart(j *apartJob) {
	returned := false
	defer func() {
		p := recover()
		if p == nil && !returned {
			p = errApartGoexit
		}
		j.done <- p
	}()
	j.f()
	returned = true
}
