// Package logctx carries a request's logging fields (its request id and
// tranId) in its context and builds the request's logger only when
// something is logged. Building a zerolog sub-logger allocates its field
// buffer; a switch logs on a handful of requests in ten thousand, so the
// logger is made lazily instead of on every request.
package logctx

import (
	"context"

	"github.com/rs/zerolog"
)

type key struct{}

type fields struct {
	base      *zerolog.Logger
	requestID string
	tranID    string
}

// New returns ctx carrying base and the request id.
func New(ctx context.Context, base *zerolog.Logger, requestID string) context.Context {
	return context.WithValue(ctx, key{}, &fields{base: base, requestID: requestID})
}

// WithTranID returns ctx with the request's tranId added, or ctx itself when
// it carries no request fields.
func WithTranID(ctx context.Context, tranID string) context.Context {
	f, ok := ctx.Value(key{}).(*fields)
	if !ok || tranID == "" {
		return ctx
	}
	g := *f
	g.tranID = tranID
	return context.WithValue(ctx, key{}, &g)
}

// TranID returns the tranId ctx carries, or "".
func TranID(ctx context.Context) string {
	if f, ok := ctx.Value(key{}).(*fields); ok {
		return f.tranID
	}
	return ""
}

// Logger returns a logger with the request's fields, or fallback when ctx
// carries none.
func Logger(ctx context.Context, fallback *zerolog.Logger) *zerolog.Logger {
	f, ok := ctx.Value(key{}).(*fields)
	if !ok {
		return fallback
	}
	c := f.base.With().Str("request_id", f.requestID)
	if f.tranID != "" {
		c = c.Str("tranId", f.tranID)
	}
	l := c.Logger()
	return &l
}
