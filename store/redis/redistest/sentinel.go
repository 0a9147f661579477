package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the sentinels of StartSentinel know the master by.
const MasterName = "qrs-master"

// Sentinel is a failover topology on loopback: a master, one replica of it
// and three sentinels (quorum 2) that watch it, declare it down after one
// second without an answer, and promote the replica.
type Sentinel struct {
	t         testing.TB
	Master    *Server
	Replica   *Server
	Sentinels []*Server
}

// StartSentinel starts the topology and waits until the replica is in sync
// and every sentinel knows the replica and the two other sentinels, so that
// a failover can happen.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	st := &Sentinel{t: t}
	st.Master = Start(t)
	st.Replica = StartWith(t, Options{ReplicaOf: st.Master.Addr()})
	st.waitInSync(st.Master, st.Replica)
	bin := sentinelBinary(t)
	for range 3 {
		s := &Server{t: t, Port: freePort(t), Dir: t.TempDir(), bin: bin}
		conf := filepath.Join(s.Dir, "sentinel.conf")
		text := fmt.Sprintf(`port %d
bind 127.0.0.1
daemonize no
dir %s
logfile redis.log
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 5000
sentinel parallel-syncs %s 1
`, s.Port, s.Dir, MasterName, st.Master.Port, MasterName, MasterName, MasterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = []string{conf}
		if filepath.Base(bin) == "redis-server" {
			s.args = append(s.args, "--sentinel")
		}
		s.start()
		st.Sentinels = append(st.Sentinels, s)
	}
	st.eventually("every sentinel to know the replica and the other sentinels", func(ctx context.Context) error {
		for _, s := range st.Sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
			m, err := c.Master(ctx, MasterName).Result()
			c.Close()
			if err != nil {
				return err
			}
			if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel %d sees %s replicas and %s other sentinels", s.Port, m["num-slaves"], m["num-other-sentinels"])
			}
		}
		return nil
	})
	return st
}

// sentinelBinary is redis-sentinel, or redis-server (run with --sentinel)
// where only that is installed.
func sentinelBinary(t testing.TB) string {
	if path, err := exec.LookPath("redis-sentinel"); err == nil {
		return path
	}
	return binary(t, "redis-server")
}

// URL is the store URL that reaches the master through the sentinels.
func (st *Sentinel) URL() string {
	addrs := make([]string, len(st.Sentinels))
	for i, s := range st.Sentinels {
		addrs[i] = s.Addr()
	}
	return "redis+sentinel://" + MasterName + "/" + strings.Join(addrs, ",") + "/0"
}

// MasterAddr asks the first sentinel that answers where the master is.
func (st *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range st.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		addr, err := c.GetMasterAddrByName(ctx, MasterName).Result()
		c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		last = err
	}
	return "", last
}

// Server returns the data node listening on addr (the master or the
// replica), or nil.
func (st *Sentinel) Server(addr string) *Server {
	for _, s := range []*Server{st.Master, st.Replica} {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// WaitFailover waits until the sentinels have promoted another node than
// old, and that node says it is a master; it returns the new master.
func (st *Sentinel) WaitFailover(old string) *Server {
	st.t.Helper()
	var promoted *Server
	st.eventually("a failover away from "+old, func(ctx context.Context) error {
		addr, err := st.MasterAddr(ctx)
		if err != nil {
			return err
		}
		if addr == old {
			return fmt.Errorf("the sentinels still name %s", old)
		}
		s := st.Server(addr)
		if s == nil {
			return fmt.Errorf("the sentinels name %s, which is no node of the topology", addr)
		}
		if role := info(ctx, s, "replication")["role"]; role != "master" {
			return fmt.Errorf("%s is promoted but says it is a %s", addr, role)
		}
		promoted = s
		return nil
	})
	return promoted
}

// WaitReplicaOf waits until replica is a replica of master in sync with it.
func (st *Sentinel) WaitReplicaOf(replica, master *Server) {
	st.t.Helper()
	st.waitInSync(master, replica)
}

func (st *Sentinel) waitInSync(master, replica *Server) {
	st.t.Helper()
	WaitReplica(st.t, master, replica)
}

// WaitReplica waits until replica replicates master and master counts it
// online (so WAIT counts its acknowledgements).
func WaitReplica(t testing.TB, master, replica *Server) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to replicate %s", replica.Addr(), master.Addr()), func(ctx context.Context) error {
		r := info(ctx, replica, "replication")
		if r["role"] != "slave" || r["master_port"] != strconv.Itoa(master.Port) || r["master_link_status"] != "up" {
			return fmt.Errorf("replica says role %s, master port %s, link %s", r["role"], r["master_port"], r["master_link_status"])
		}
		m := info(ctx, master, "replication")
		for k, v := range m {
			if strings.HasPrefix(k, "slave") && strings.Contains(v, "port="+strconv.Itoa(replica.Port)+",") && strings.Contains(v, "state=online") {
				return nil
			}
		}
		return fmt.Errorf("master does not count the replica online yet")
	})
}

func (st *Sentinel) eventually(what string, check func(ctx context.Context) error) {
	st.t.Helper()
	eventually(st.t, what, check)
}

// eventually retries check for up to a minute, a backstop: the check is
// the verdict.
func eventually(t testing.TB, what string, check func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// info returns the fields of one INFO section of s, or none when it does
// not answer.
func info(ctx context.Context, s *Server, section string) map[string]string {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	m := map[string]string{}
	text, err := c.Info(ctx, section).Result()
	if err != nil {
		return m
	}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}
