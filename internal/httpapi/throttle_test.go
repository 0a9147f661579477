package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// fakeClock is the throttle's clock in these tests: locks end when the test
// says so, not when the machine gets round to it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// throttleServer serves /retail over TLS on 127.0.0.1 behind an
// authenticator on clock, with no trusted proxy.
func throttleServer(t *testing.T, clock *fakeClock) (*httptest.Server, *Authenticator) {
	t.Helper()
	auth, err := NewAuthenticator([]Account{
		{Username: "shop", Hash: hash(t, "shop-pw"), Principal: Principal{Kind: KindRetailer, ID: "shop-1"}},
		{Username: "other", Hash: hash(t, "other-pw"), Principal: Principal{Kind: KindRetailer, ID: "shop-2"}},
	}, AuthOptions{Now: clock.Now, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r.POST("/retail", auth.Require(KindRetailer), func(c *gin.Context) { c.Status(http.StatusCreated) })
	srv := httptest.NewUnstartedServer(r)
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, auth
}

// clientFrom returns a client whose connections leave from the loopback
// address local (Linux routes all of 127.0.0.0/8 to lo), so the server sees
// distinct client addresses without any header.
func clientFrom(t *testing.T, srv *httptest.Server, local string) *http.Client {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// post sends one authenticated request and returns the status and
// Retry-After in seconds (0 when absent).
func post(t *testing.T, c *http.Client, srv *httptest.Server, user, pass string, header ...string) (int, int) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/retail", strings.NewReader("{}"))
	req.SetBasicAuth(user, pass)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ra := 0
	if v := resp.Header.Get("Retry-After"); v != "" {
		if ra, err = strconv.Atoi(v); err != nil {
			t.Fatalf("Retry-After = %q, want seconds", v)
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests && ra <= 0 {
		t.Fatalf("429 without a Retry-After")
	}
	return resp.StatusCode, ra
}

// TestGuesserDoesNotLockOutTheTill: a guesser hammering a shop's username
// from one address is answered 429 with a Retry-After that doubles with
// every failure past the free ones, while the shop's till, from another
// address, keeps getting in with the right password throughout.
func TestGuesserDoesNotLockOutTheTill(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	srv, _ := throttleServer(t, clock)
	guesser := clientFrom(t, srv, "127.0.0.2")
	till := clientFrom(t, srv, "127.0.0.3")
	tillWorks := func(when string) {
		t.Helper()
		if status, _ := post(t, till, srv, "shop", "shop-pw"); status != http.StatusCreated {
			t.Fatalf("till with the right password %s = %d, want 201", when, status)
		}
	}
	tillWorks("before the guessing")
	// The free failures: 401 each.
	for i := range 9 {
		if status, _ := post(t, guesser, srv, "shop", fmt.Sprint("guess-", i)); status != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d, want 401", i+1, status)
		}
	}
	var afters []int
	for i := 9; len(afters) < 12; i++ {
		// The guess that spends the free failures, or the first after a
		// lock ended, is answered 401 and locks the pair again.
		if status, _ := post(t, guesser, srv, "shop", fmt.Sprint("guess-", i)); status != http.StatusUnauthorized {
			t.Fatalf("guess %d, after the lock ended = %d, want 401", i+1, status)
		}
		status, after := post(t, guesser, srv, "shop", fmt.Sprint("guess-again-", i))
		if status != http.StatusTooManyRequests {
			t.Fatalf("guess right after guess %d = %d, want 429", i+1, status)
		}
		// Even the right password from the guesser's address waits.
		if status, _ := post(t, guesser, srv, "shop", "shop-pw"); status != http.StatusTooManyRequests {
			t.Fatalf("right password from the locked address = %d, want 429", status)
		}
		tillWorks(fmt.Sprintf("while the guesser waits %ds", after))
		afters = append(afters, after)
		clock.Advance(time.Duration(after) * time.Second)
	}
	want := []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900}
	if fmt.Sprint(afters) != fmt.Sprint(want) {
		t.Fatalf("Retry-After of the guesser = %v, want %v (doubling, capped at 15 min)", afters, want)
	}
	t.Logf("guesser's Retry-After, lock after lock: %v s", afters)
	// An hour without failures after the last lock forgets them: the free
	// failures are free again.
	clock.Advance(time.Hour)
	for i := range 9 {
		if status, _ := post(t, guesser, srv, "shop", fmt.Sprint("later-", i)); status != http.StatusUnauthorized {
			t.Fatalf("guess %d an hour after the last lock = %d, want 401", i+1, status)
		}
	}
}

// TestRotatingUsernamesThrottlesTheSource: a guesser trying many usernames
// from one address is throttled as a source after four times the free
// failures of one pair (40), for every username; other addresses are not.
func TestRotatingUsernamesThrottlesTheSource(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	srv, _ := throttleServer(t, clock)
	guesser := clientFrom(t, srv, "127.0.0.2")
	till := clientFrom(t, srv, "127.0.0.3")
	for i := range 40 {
		if status, _ := post(t, guesser, srv, fmt.Sprint("user-", i), "guess"); status != http.StatusUnauthorized {
			t.Fatalf("guess %d (a fresh username each) = %d, want 401", i+1, status)
		}
	}
	for _, user := range []string{"user-new", "shop", "other"} {
		if status, after := post(t, guesser, srv, user, "guess"); status != http.StatusTooManyRequests || after != 1 {
			t.Fatalf("guess for %s after 40 failures from the address = %d (Retry-After %d), want 429 (1)", user, status, after)
		}
	}
	if status, _ := post(t, guesser, srv, "other", "other-pw"); status != http.StatusTooManyRequests {
		t.Fatalf("right password from the throttled address = %d, want 429", status)
	}
	if status, _ := post(t, till, srv, "other", "other-pw"); status != http.StatusCreated {
		t.Fatalf("right password from another address = %d, want 201", status)
	}
	clock.Advance(time.Second)
	if status, _ := post(t, guesser, srv, "user-41", "guess"); status != http.StatusUnauthorized {
		t.Fatalf("guess after the source's lock = %d, want 401", status)
	}
	if status, after := post(t, guesser, srv, "user-42", "guess"); status != http.StatusTooManyRequests || after != 2 {
		t.Fatalf("next guess = %d (Retry-After %d), want 429 (2): the source's lock doubles", status, after)
	}
}

// TestSpoofedForwardedForDoesNotEvadeThePair: without a trusted proxy, a
// guesser naming a new X-Forwarded-For on every guess is still one pair.
func TestSpoofedForwardedForDoesNotEvadeThePair(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	srv, _ := throttleServer(t, clock)
	guesser := clientFrom(t, srv, "127.0.0.2")
	for i := range 10 {
		post(t, guesser, srv, "shop", "guess", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i), "X-Real-IP", fmt.Sprintf("198.51.100.%d", i))
	}
	if status, _ := post(t, guesser, srv, "shop", "guess", "X-Forwarded-For", "203.0.113.99"); status != http.StatusTooManyRequests {
		t.Fatalf("11th guess under a new X-Forwarded-For = %d, want 429", status)
	}
}

// TestParallelGuessesAreCountedAsTheyArrive: guesses sent at once cannot
// all pass before the first is counted: exactly the free ones reach
// bcrypt.
func TestParallelGuessesAreCountedAsTheyArrive(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	_, auth := throttleServer(t, clock)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			_, err := auth.Verify("shop", fmt.Sprint("guess-", i), "192.0.2.1")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	bad, throttled := 0, 0
	for err := range errs {
		var te *ThrottledError
		switch {
		case errors.Is(err, ErrBadCredentials):
			bad++
		case errors.As(err, &te):
			throttled++
		default:
			t.Fatalf("Verify(wrong password) = %v", err)
		}
	}
	if bad != 10 || throttled != 40 {
		t.Fatalf("50 parallel guesses: %d compared, %d throttled; want 10 and 40", bad, throttled)
	}
}

// TestFloodOfSourcesIsBounded: distinct addresses and usernames beyond the
// table's size evict the least recently seen entries; the table, and the
// heap, stop growing.
func TestFloodOfSourcesIsBounded(t *testing.T) {
	t.Run("through Verify", func(t *testing.T) {
		clock := &fakeClock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
		auth, err := NewAuthenticator([]Account{{Username: "shop", Hash: hash(t, "shop-pw")}},
			AuthOptions{Now: clock.Now, TableSize: 256})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1024 {
			auth.Verify(fmt.Sprint("user-", i), "guess", fmt.Sprintf("198.18.%d.%d", i/256, i%256))
		}
		if n := auth.throttle.len(); n != 256 {
			t.Fatalf("table after 1024 sources = %d entries, want the bound, 256", n)
		}
		// A recent guesser is still remembered.
		for range 9 {
			auth.Verify("shop", "guess", "192.0.2.7")
		}
		var te *ThrottledError
		if _, err := auth.Verify("shop", "guess", "192.0.2.7"); err == nil || errors.As(err, &te) {
			t.Fatalf("10th guess = %v, want ErrBadCredentials", err)
		}
		if _, err := auth.Verify("shop", "shop-pw", "192.0.2.7"); !errors.As(err, &te) {
			t.Fatalf("after 10 failures = %v, want throttled", err)
		}
	})
	t.Run("heap", func(t *testing.T) {
		const size = 1 << 14
		th := newThrottle(10, 40, time.Second, 15*time.Minute, time.Hour, size)
		now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
		heap := func() uint64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		flood := func(from, to int) {
			for i := from; i < to; i++ {
				s, p := keys(fmt.Sprint("user-", i), fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff))
				th.attempt(s, p, now)
			}
		}
		before := heap()
		flood(0, 4*size) // fills the table (each attempt adds a source and a pair)
		full := heap()
		flood(4*size, 16*size) // four times as many again
		after := heap()
		if n := th.len(); n != size {
			t.Fatalf("table = %d entries, want %d", n, size)
		}
		t.Logf("throttle table: %d entries; heap %.1f MB when full (%d B an entry), %.1f MB after %d more distinct sources",
			size, float64(full-before)/1e6, (full-before)/size, float64(after-before)/1e6, 12*size)
		if after-before > (full-before)+(full-before)/4 {
			t.Fatalf("heap grew from %d to %d bytes after the table was full", full, after)
		}
	})
}

// TestSourceOf: IPv4 addresses count one by one, IPv6 by /64.
func TestSourceOf(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not-an-ip", "not-an-ip"},
	} {
		if got := sourceOf(tt.in); got != tt.want {
			t.Errorf("sourceOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
