package logctx

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestLoggerCarriesRequestFields(t *testing.T) {
	var buf bytes.Buffer
	base := zerolog.New(&buf)
	fallback := zerolog.New(&buf).With().Str("who", "fallback").Logger()

	Logger(context.Background(), &fallback).Info().Msg("no request")
	ctx := New(context.Background(), &base, "req-1")
	Logger(ctx, &fallback).Info().Msg("request")
	ctx2 := WithTranID(ctx, "tran-9")
	Logger(ctx2, &fallback).Info().Msg("with tran")
	Logger(ctx, &fallback).Info().Msg("parent unchanged")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`{"level":"info","who":"fallback","message":"no request"}`,
		`{"level":"info","request_id":"req-1","message":"request"}`,
		`{"level":"info","request_id":"req-1","tranId":"tran-9","message":"with tran"}`,
		`{"level":"info","request_id":"req-1","message":"parent unchanged"}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %s, want %s", i, lines[i], want[i])
		}
	}
	if TranID(ctx2) != "tran-9" || TranID(ctx) != "" || TranID(context.Background()) != "" {
		t.Error("TranID does not read back what was set")
	}
	if got := WithTranID(context.Background(), "x"); got != context.Background() {
		t.Error("WithTranID on a context without request fields changed it")
	}
}
