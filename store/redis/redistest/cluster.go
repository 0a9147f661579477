package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster on loopback: masters, each with its
// replicas, every node a redis-server of its own (AOF on, a two-second
// node timeout so that failovers happen within a test).
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// clusterNodeTimeout is how long a master may not answer before its
// replica takes over.
const clusterNodeTimeout = 2000 // ms

// StartCluster starts masters × (1 + replicas) nodes, joins them with
// `redis-cli --cluster create` (the slots spread evenly over the masters),
// and waits until every node says the cluster is ok and every replica is
// in sync.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	cli := binary(t, "redis-cli")
	c := &Cluster{t: t}
	for range masters * (1 + replicas) {
		bus := freePort(t)
		c.Nodes = append(c.Nodes, StartWith(t, Options{extra: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout), "--cluster-port", strconv.Itoa(bus),
		}}))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is the store URL of the cluster: redis+cluster:// and every node.
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// Client returns a cluster client (MOVED and ASK followed), closed when
// the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DialTimeout: time.Second})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Role returns a node's role ("master" or "slave") and, for a replica, its
// master's port and whether the link to it is up.
func (c *Cluster) Role(ctx context.Context, n *Server) (role string, masterPort int, linkUp bool, err error) {
	cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer cl.Close()
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return "", 0, false, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "role":
			role = v
		case "master_port":
			masterPort, _ = strconv.Atoi(v)
		case "master_link_status":
			linkUp = v == "up"
		}
	}
	return role, masterPort, linkUp, nil
}

// MasterOf returns the node that serves key's slot now.
func (c *Cluster) MasterOf(ctx context.Context, key string) (*Server, error) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DialTimeout: time.Second})
	defer cc.Close()
	var port int
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.Exists(ctx, key).Result()
		if err == nil && n == 1 {
			_, p, _ := strings.Cut(m.Options().Addr, ":")
			port, _ = strconv.Atoi(p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if n.Port == port {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no master holds %q", key)
}

// WaitOK waits until every running node reports cluster_state:ok and
// every replica's link to its master is up.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	eventually(c.t, "the cluster to be ok", func(ctx context.Context) error {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second})
			info, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("node %s: cluster not ok", n.Addr())
			}
			role, _, up, err := c.Role(ctx, n)
			if err != nil {
				return err
			}
			if role == "slave" && !up {
				return fmt.Errorf("replica %s: not in sync", n.Addr())
			}
		}
		return nil
	})
}
