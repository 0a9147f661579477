// Package redistest runs real Redis processes for tests: a standalone
// redis-server on a free loopback port with its own data directory, a
// Sentinel topology (a master, a replica and three sentinels), and a Redis
// Cluster (masters with their replicas, formed by redis-cli --cluster
// create). Every
// process it starts is stopped when the test ends, and is killed with the
// test process if that dies first (on Linux). A missing redis-server fails
// the test with an install hint: Redis tests never skip.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const installHint = "the Redis tests run real servers: install them with `apt-get install redis-server redis-sentinel` (scripts/test does it)"

// binary returns the path of a Redis program, failing the test when it is
// missing.
func binary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: %s", name, installHint)
	}
	return path
}

// Server is one redis-server (or sentinel) process on 127.0.0.1.
type Server struct {
	t    testing.TB
	Port int
	// Dir is the server's working directory: its AOF, its log (redis.log)
	// and, for a sentinel, its configuration file.
	Dir  string
	bin  string
	args []string
	cmd  *exec.Cmd
	exit chan struct{}
}

// Options adjust a standalone server.
type Options struct {
	// AppendFsync is the AOF's fsync policy: everysec (default, unless
	// ConfigFile says otherwise) or always.
	AppendFsync string
	// ReplicaOf, "host:port", starts the server as a replica of that master.
	ReplicaOf string
	// ConfigFile is a redis.conf to start from instead of the test
	// defaults; the port, bind address, directory, log file and the
	// settings above override it.
	ConfigFile string
	// extra are more arguments (a cluster node's), and clusterBus gives
	// the node a cluster bus port of its own.
	extra      []string
	clusterBus bool
}

// Start runs a redis-server with the AOF on (appendfsync everysec), no RDB
// snapshots, bound to loopback on a free port, and waits until it answers.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := newServer(t, o)
		err := s.startOnce()
		if err == nil {
			return s
		}
		if attempt == 5 || !strings.Contains(err.Error(), "Address already in use") {
			t.Fatal(err)
		}
		// A port found free was taken before the server listened on it
		// (by another test's process, or an outgoing connection): pick
		// others.
	}
}

// newServer prepares a server on free ports, in a new directory.
func newServer(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{t: t, Port: freePort(t), Dir: t.TempDir(), bin: binary(t, "redis-server")}
	if o.ConfigFile != "" {
		file, err := filepath.Abs(o.ConfigFile) // the server runs in its own directory
		if err != nil {
			t.Fatal(err)
		}
		s.args = []string{file}
	} else {
		if o.AppendFsync == "" {
			o.AppendFsync = "everysec"
		}
		s.args = []string{"--save", "", "--appendonly", "yes", "--maxmemory-policy", "noeviction",
			// A master waits this long for more replicas before a full
			// sync; tests have one and no time to lose.
			"--repl-diskless-sync-delay", "0"}
	}
	if o.AppendFsync != "" {
		s.args = append(s.args, "--appendfsync", o.AppendFsync)
	}
	s.args = append(s.args, "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--logfile", "redis.log", "--daemonize", "no")
	if o.ReplicaOf != "" {
		host, port, _ := strings.Cut(o.ReplicaOf, ":")
		s.args = append(s.args, "--replicaof", host, port)
	}
	s.args = append(s.args, o.extra...)
	if o.clusterBus {
		s.args = append(s.args, "--cluster-port", strconv.Itoa(freePort(t)))
	}
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the store URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a go-redis client of the server, closed when the test
// ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.startOnce(); err != nil {
		s.t.Fatal(err)
	}
}

// startOnce starts the process and waits until it answers; it returns an
// error when the process exits at start.
func (s *Server) startOnce() error {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = sysProcAttr()
	out, err := os.Create(filepath.Join(s.Dir, "stdout.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		s.t.Fatalf("starting %s: %v", s.bin, err)
	}
	out.Close()
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	s.cmd, s.exit = cmd, exit
	s.t.Cleanup(func() { s.Kill() })
	return s.waitReady()
}

// waitReady waits until the server answers PING, and returns an error if
// it exits first.
func (s *Server) waitReady() error {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	// A backstop: a loaded machine may take seconds to start a server
	// or load its AOF.
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exit:
			return fmt.Errorf("%s on port %d exited at start: %s", filepath.Base(s.bin), s.Port, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s on port %d not answering after a minute: %v; %s", filepath.Base(s.bin), s.Port, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{"redis.log", "stdout.log"} {
		if data, err := os.ReadFile(filepath.Join(s.Dir, name)); err == nil {
			if len(data) > 2000 {
				data = data[len(data)-2000:]
			}
			fmt.Fprintf(&b, "%s: %s\n", name, data)
		}
	}
	return b.String()
}

// Running reports whether the process has not exited.
func (s *Server) Running() bool {
	select {
	case <-s.exit:
		return false
	default:
		return true
	}
}

// Stop shuts the server down gracefully (SIGTERM: it flushes its AOF) and
// waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	select {
	case <-s.exit:
		return
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exit
	}
}

// Restart starts the server again, stopped or killed, on the same port and
// directory (so with the data its AOF kept).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// RestartAsReplicaOf starts the server again, stopped or killed, on the
// same port and directory, as a replica of master: how a failed master
// rejoins after a failover. (Sentinel would turn it into a replica too, but
// only at its next INFO round, up to 10 s later.)
func (s *Server) RestartAsReplicaOf(master *Server) {
	s.t.Helper()
	s.Stop()
	if i := slices.Index(s.args, "--replicaof"); i >= 0 {
		s.args = slices.Delete(s.args, i, i+3)
	}
	s.args = append(s.args, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	s.start()
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
