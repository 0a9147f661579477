package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// crashEnv switches the test binary into the crashing child of
// TestKill9KeepsAcknowledgedCommits; it holds the database path.
const crashEnv = "QRSWITCH_SQLITE_CRASH_DB"

// TestKill9KeepsAcknowledgedCommits runs a child process that commits from
// many goroutines, prints each acknowledged Commit, and kills itself with
// SIGKILL right after a Commit returns, while others are in flight. Every
// acknowledged record must be in the file when the parent reopens it.
func TestKill9KeepsAcknowledgedCommits(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := tempDB(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9KeepsAcknowledgedCommits$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	// ack lines: "payment KEY VERSION TRACE", "advice KEY VERSION".
	type ack struct {
		kind, key      string
		version, trace int64
	}
	var acks []ack
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || (f[0] != "payment" && f[0] != "advice") {
			continue
		}
		a := ack{kind: f[0], key: f[1]}
		a.version, _ = strconv.ParseInt(f[2], 10, 64)
		if len(f) > 3 {
			a.trace, _ = strconv.ParseInt(f[3], 10, 64)
		}
		acks = append(acks, a)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	if len(acks) < 100 {
		t.Fatalf("child acknowledged %d commits, want at least 100; stderr:\n%s", len(acks), stderr.String())
	}

	s := openAt(t, path, "") // the dead child's lock is gone with it
	ctx := t.Context()
	for _, a := range acks {
		switch a.kind {
		case "payment":
			p, err := s.Payment(ctx, a.key)
			if err != nil {
				t.Errorf("Payment(%s) acknowledged at version %d: error = %v", a.key, a.version, err)
				continue
			}
			if p.Version < a.version {
				t.Errorf("Payment(%s) Version = %d, want at least the acknowledged %d", a.key, p.Version, a.version)
			}
			if trace, _ := s.Trace(ctx, a.key); int64(len(trace)) < a.trace {
				t.Errorf("Trace(%s) has %d entries, want at least the acknowledged %d", a.key, len(trace), a.trace)
			}
		case "advice":
			if _, err := s.Advice(ctx, a.key); err != nil {
				t.Errorf("Advice(%s) acknowledged: error = %v", a.key, err)
			}
		}
	}
	if !t.Failed() {
		t.Logf("%d acknowledged commits survived kill -9", len(acks))
	}
}

// crashChild is the child's side: it never returns.
func crashChild(path string) {
	s, err := Open(context.Background(), "sqlite://"+path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line straight to the pipe: once it returns, the
		// parent reads it whatever happens to this process.
		os.Stdout.WriteString(fmt.Sprintf(format, args...))
	}
	var acked atomic.Int64
	const killAfter = 300
	for w := range 16 {
		go func() {
			for i := 0; ; i++ {
				now := time.Now().UTC()
				p := &qrswitch.Payment{RetailerID: "shop-1", RequestID: fmt.Sprintf("pay-%d-%d", w, i),
					State: outcome.AwaitingScan, CreatedAt: now, UpdatedAt: now}
				step := func(c *qrswitch.Change) {
					if err := s.Commit(context.Background(), c); err != nil {
						fmt.Fprintln(os.Stderr, "child: Commit:", err)
						os.Exit(2)
					}
				}
				step(&qrswitch.Change{Payment: p, Trace: []qrswitch.TraceEntry{{At: now, Operation: "pay"}}})
				say("payment %s %d 1\n", p.Key(), p.Version)
				p.State = outcome.Forwarded
				a := &qrswitch.Advice{Sender: "shop-1", ID: fmt.Sprintf("adv-%d-%d", w, i), PaymentKey: p.Key(),
					State: qrswitch.AdvicePending, CreatedAt: now}
				step(&qrswitch.Change{Payment: p, Advices: []*qrswitch.Advice{a}, Trace: []qrswitch.TraceEntry{{At: now, Operation: "notifyScan"}}})
				say("payment %s %d 2\nadvice %s 1\n", p.Key(), p.Version, a.Key())
				if acked.Add(2) >= killAfter {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}()
	}
	select {}
}
