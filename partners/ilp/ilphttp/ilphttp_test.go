package ilphttp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/ildcp"
)

// startServer runs h on a loopback httptest server with timeouts set.
func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.ReadTimeout = 30 * time.Second
	srv.Config.WriteTimeout = 30 * time.Second
	srv.Config.IdleTimeout = 60 * time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

var peers = []Peer{
	{Name: "alice", Token: "alice-token", Address: "test.switch.alice", AssetCode: "USD", AssetScale: 2},
	{Name: "bob", Token: "bob-token"},
}

func echoHandler(seen *[]string) *Handler {
	return &Handler{
		Peers:   peers,
		Address: "test.switch",
		Handle: func(ctx context.Context, peer *Peer, p *ilp.Prepare) (ilp.Reply, error) {
			*seen = append(*seen, peer.Name)
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("no deadline")
			}
			if p.Amount == 13 {
				return nil, errors.New("unlucky")
			}
			return &ilp.Reject{Code: ilp.F99ApplicationError, TriggeredBy: "test.switch", Message: string(p.Destination), Data: p.Data}, nil
		},
	}
}

func prepare(amount uint64) *ilp.Prepare {
	return &ilp.Prepare{Amount: amount, ExpiresAt: time.Now().Add(time.Minute), Destination: "test.switch.x", Data: []byte{1, 2, 3}}
}

func TestClientAndHandler(t *testing.T) {
	var seen []string
	var errs []error
	h := echoHandler(&seen)
	h.OnError = func(_ *http.Request, err error) { errs = append(errs, err) }
	srv := startServer(t, h)
	ctx := context.Background()

	rep, err := NewClient(srv.URL, "alice-token", 30*time.Second).Send(ctx, prepare(5))
	rj, ok := rep.(*ilp.Reject)
	if err != nil || !ok || rj.Message != "test.switch.x" || !bytes.Equal(rj.Data, []byte{1, 2, 3}) {
		t.Fatalf("Send() = %+v, %v, want the echo Reject", rep, err)
	}
	if len(seen) != 1 || seen[0] != "alice" {
		t.Errorf("handler saw peers %v, want [alice]", seen)
	}
	rep, err = NewClient(srv.URL, "bob-token", 30*time.Second).Send(ctx, prepare(13))
	if rj, ok := rep.(*ilp.Reject); err != nil || !ok || rj.Code != ilp.T00InternalError {
		t.Errorf("Send(handler error) = %+v, %v, want T00", rep, err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "unlucky") {
		t.Errorf("OnError heard %v, want the handler's error", errs)
	}

	_, err = NewClient(srv.URL, "nobody", 30*time.Second).Send(ctx, prepare(5))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Errorf("Send(bad token) error = %v, want HTTP 401", err)
	}
}

func TestHandlerRefuses(t *testing.T) {
	var seen []string
	srv := startServer(t, echoHandler(&seen))
	good, _ := prepare(1).MarshalBinary()
	fulfill, _ := (&ilp.Fulfill{}).MarshalBinary()
	tests := []struct {
		name, method, ctype, auth string
		body                      []byte
		want                      int
	}{
		{"ok octet-stream", "POST", "application/octet-stream", "Bearer alice-token", good, 200},
		{"ok ilp+octet-stream", "POST", "application/ilp+octet-stream", "Bearer bob-token", good, 200},
		{"lower-case scheme", "POST", "application/octet-stream", "bearer alice-token", good, 200},
		{"GET", "GET", "", "Bearer alice-token", nil, 405},
		{"no token", "POST", "application/octet-stream", "", good, 401},
		{"basic auth", "POST", "application/octet-stream", "Basic YWxpY2U6eA==", good, 401},
		{"empty bearer", "POST", "application/octet-stream", "Bearer ", good, 401},
		{"json", "POST", "application/json", "Bearer alice-token", good, 415},
		{"not a prepare", "POST", "application/octet-stream", "Bearer alice-token", fulfill, 400},
		{"garbage", "POST", "application/octet-stream", "Bearer alice-token", []byte("hello"), 400},
		{"too large", "POST", "application/octet-stream", "Bearer alice-token", make([]byte, MaxPacketBytes+1), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL, bytes.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.want)
			}
			if tt.want == 200 && resp.Header.Get("Content-Type") != ContentType {
				t.Errorf("%s: Content-Type %q, want %s", tt.name, resp.Header.Get("Content-Type"), ContentType)
			}
		})
	}
}

func TestClientStatusAndTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != ContentType || r.Header.Get("Accept") != ContentType {
			http.Error(w, "wrong headers", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/slow" {
			<-release
			return
		}
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	_, err := NewClient(srv.URL, "t", 30*time.Second).Send(context.Background(), prepare(1))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 500 || !strings.Contains(se.Body, "boom") {
		t.Errorf("Send(500) error = %v, want StatusError 500 boom", err)
	}
	p := prepare(1)
	p.ExpiresAt = time.Now().Add(300 * time.Millisecond)
	_, err = NewClient(srv.URL+"/slow", "t", 30*time.Second).Send(context.Background(), p)
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send(past expiry) error = %v, want context.DeadlineExceeded", err)
	}
}

// TestILDCPOverHTTP: the handler answers IL-DCP with the peer's own
// configuration, and refuses a request with the wrong condition.
func TestILDCPOverHTTP(t *testing.T) {
	var seen []string
	srv := startServer(t, echoHandler(&seen))
	rep, err := NewClient(srv.URL, "alice-token", 30*time.Second).Send(context.Background(), ildcp.Request(time.Now().Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ildcp.ReadReply(rep)
	if err != nil || cfg != (ildcp.Config{ClientAddress: "test.switch.alice", AssetCode: "USD", AssetScale: 2}) {
		t.Errorf("IL-DCP for alice = %+v, %v", cfg, err)
	}
	rep, _ = NewClient(srv.URL, "bob-token", 30*time.Second).Send(context.Background(), ildcp.Request(time.Now().Add(time.Minute)))
	if rj, ok := rep.(*ilp.Reject); !ok || rj.Code != ilp.F02Unreachable {
		t.Errorf("IL-DCP for bob (no address) = %+v, want F02", rep)
	}
	if len(seen) != 0 {
		t.Errorf("IL-DCP reached Handle: %v", seen)
	}
}
