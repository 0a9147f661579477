package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// syncBuffer is a log sink the server's goroutines write while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type credentials struct {
	User     string
	Password string
}

// TestPanicsAreMasked: a handler that panics with a password, a card number
// or a bearer token — as a string, an error, a JSON body or a struct — gets
// a 500, and the log line of the panic carries none of them.
func TestPanicsAreMasked(t *testing.T) {
	const (
		password = "hunter2-Secret!"
		pan      = "4111111111111111"
		token    = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzaG9wLTEifQ.c2lnbmF0dXJl"
	)
	tests := []struct {
		name  string
		value any
		gone  []string // must not appear in the log
		kept  []string // must appear: the message stays useful
	}{
		{"password as text", "login failed for shop-1: password=" + password, []string{password}, []string{"login failed for shop-1", "password=****"}},
		{"password in a JSON body", fmt.Sprintf(`decoding {"username":"shop-1","password":%q}`, password), []string{password}, []string{"username", "shop-1"}},
		{"password in a struct", credentials{User: "shop-1", Password: password}, []string{password}, []string{"shop-1"}},
		{"password in %+v", fmt.Sprintf("%+v", credentials{User: "shop-1", Password: password}), []string{password}, []string{"User:shop-1"}},
		{"card number in an error", errors.New("charging card " + pan + " failed"), []string{pan}, []string{"411111******1111", "failed"}},
		{"card number inside a word", "card4111111111111111x refused", []string{pan}, []string{"refused"}},
		{"card number with spaces", "pan 4111 1111 1111 1111 refused", []string{"4111 1111 1111 1111", pan}, []string{"refused"}},
		{"card number in JSON", `{"cardNumber":"` + pan + `"}`, []string{pan}, []string{"cardNumber"}},
		{"bearer token", "upstream said no to Authorization: Bearer " + token, []string{token, "c2lnbmF0dXJl"}, []string{"upstream said no"}},
		{"basic credentials", "header Basic c2hvcC0xOmh1bnRlcjI= rejected", []string{"c2hvcC0xOmh1bnRlcjI="}, []string{"rejected"}},
		{"token field", "token=" + token, []string{token}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			r, err := NewRouter(Options{Logger: zerolog.New(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			r.GET("/panic", func(*gin.Context) { panic(tt.value) })
			srv := httptest.NewServer(r)
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/panic")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError {
				t.Fatalf("GET /panic = %d, want 500", resp.StatusCode)
			}
			// The panic is logged before the 500 is written, so it is in
			// the log once the answer arrived.
			got := logs.String()
			if !strings.Contains(got, "handler panicked") {
				t.Fatalf("log = %s, want the panic logged", got)
			}
			for _, s := range tt.gone {
				if strings.Contains(got, s) {
					t.Errorf("log = %s, carries %q in clear", got, s)
				}
			}
			for _, s := range tt.kept {
				if !strings.Contains(got, s) {
					t.Errorf("log = %s, want it to keep %q", got, s)
				}
			}
		})
	}
}

// FuzzMaskText: whatever a panic carries, masking never panics and leaves
// no run of 13 or more digits in clear, wherever it stands.
func FuzzMaskText(f *testing.F) {
	for _, s := range []string{
		"password=hunter2", `{"cardNumber":"4111111111111111"}`, "card4111111111111111x",
		"4111-1111-1111-1111", "Authorization: Bearer abc.def", "12345678901234567890123", "token: '", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := maskText(s)
		digits := 0
		for i := 0; i < len(out); i++ {
			switch c := out[i]; {
			case isDigit(c):
				digits++
			case (c == ' ' || c == '-') && i+1 < len(out) && isDigit(out[i+1]) && digits > 0:
			default:
				digits = 0
			}
			if digits >= 13 {
				t.Fatalf("maskText(%q) = %q: 13 digits in a row left in clear", s, out)
			}
		}
	})
}

// TestApartRaisesPanicsInTheHandler: work run apart (Apart) that panics
// still reaches the router's recovery: a 500, and the panic logged; work
// that returns has run to its end when Apart returns.
func TestApartRaisesPanicsInTheHandler(t *testing.T) {
	var logs syncBuffer
	r, err := NewRouter(Options{Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	r.GET("/apart/panic", func(*gin.Context) { Apart(func() { panic("decoding went wrong") }) })
	r.GET("/apart/ok", func(c *gin.Context) {
		var n int
		Apart(func() {
			for i := range 1000 {
				n += i
			}
		})
		c.String(http.StatusOK, "%d", n)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/apart/panic")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("GET /apart/panic = %d, want 500", resp.StatusCode)
	}
	if got := logs.String(); !strings.Contains(got, "handler panicked") || !strings.Contains(got, "decoding went wrong") {
		t.Errorf("log = %s, want the panic logged with its value", got)
	}
	resp, err = srv.Client().Get(srv.URL + "/apart/ok")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "499500" {
		t.Errorf("GET /apart/ok = %d %q, want 200 499500", resp.StatusCode, body)
	}
}

// TestApartPassesGoexitOn: f calling runtime.Goexit (a test's t.FailNow)
// ends Apart's caller too, instead of leaving it waiting for ever; the
// next call gets a worker as usual.
func TestApartPassesGoexitOn(t *testing.T) {
	ended := make(chan bool)
	go func() {
		returned := false
		defer func() { ended <- returned }()
		Apart(runtime.Goexit)
		returned = true
	}()
	if <-ended {
		t.Fatal("Apart returned after f called runtime.Goexit")
	}
	ran := false
	Apart(func() { ran = true })
	if !ran {
		t.Fatal("Apart after a Goexit did not run f")
	}
}

// TestApartBurst: more calls at once than Apart keeps workers for all run
// at once (the rest on goroutines of their own), and none is lost.
func TestApartBurst(t *testing.T) {
	const n = 3 * maxApartWorkers
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	results := make(chan int, n)
	for i := range n {
		go func() {
			Apart(func() {
				started.Done()
				<-release // every call is running at once
				results <- i
			})
		}()
	}
	started.Wait()
	close(release)
	seen := make(map[int]bool)
	for range n {
		seen[<-results] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct calls ran, want %d", len(seen), n)
	}
	if w := apartWorkers.Load(); w > maxApartWorkers {
		t.Errorf("%d workers, want at most %d", w, maxApartWorkers)
	}
}
