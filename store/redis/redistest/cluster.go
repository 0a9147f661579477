package redistest

import (
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"slices"
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
		c.Nodes = append(c.Nodes, StartWith(t, Options{extra: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
		}, clusterBus: true}))
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

// MasterOf returns the master that serves key's slot now, as the slot map
// of a client made now says.
func (c *Cluster) MasterOf(ctx context.Context, key string) (*Server, error) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DialTimeout: time.Second})
	defer cc.Close()
	m, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return nil, err
	}
	_, p, _ := strings.Cut(m.Options().Addr, ":")
	port, _ := strconv.Atoi(p)
	for _, n := range c.Nodes {
		if n.Port == port {
			return n, nil
		}
	}
	return nil, fmt.Errorf("the master of %q is %s, not a node of this cluster", key, m.Options().Addr)
}

// WaitOK waits until every running node reports cluster_state:ok, every
// replica's link to its master is up, and every node has the same slot map
// (a client may read it from any of them).
func (c *Cluster) WaitOK() {
	c.t.Helper()
	eventually(c.t, "the cluster to be ok", func(ctx context.Context) error {
		var agreed string
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second})
			info, err := cl.ClusterInfo(ctx).Result()
			var slots []redis.ClusterSlot
			if err == nil {
				slots, err = cl.ClusterSlots(ctx).Result()
			}
			cl.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("node %s: cluster not ok", n.Addr())
			}
			var owners []string
			for _, sl := range slots {
				if len(sl.Nodes) > 0 {
					owners = append(owners, fmt.Sprintf("%d-%d:%s", sl.Start, sl.End, sl.Nodes[0].Addr))
				}
			}
			slices.Sort(owners)
			if m := strings.Join(owners, " "); agreed == "" {
				agreed = m
			} else if m != agreed {
				return fmt.Errorf("node %s: a slot map the others do not have yet", n.Addr())
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

// Failover makes replica the master of its master's slots with CLUSTER
// FAILOVER (the operator's kind: the master hands over once the replica
// caught up) and waits until both say so. A manual failover that does not
// complete within Redis's own timeout (5 s) is asked for again.
func (c *Cluster) Failover(replica *Server) {
	c.t.Helper()
	var asked time.Time
	cl := replica.Client(c.t)
	eventually(c.t, replica.Addr()+" to take over", func(ctx context.Context) error {
		role, _, _, err := c.Role(ctx, replica)
		if err == nil && role != "master" {
			err = fmt.Errorf("%s is a %s", replica.Addr(), role)
			if time.Since(asked) > 6*time.Second {
				asked = time.Now()
				if ferr := cl.Do(ctx, "CLUSTER", "FAILOVER").Err(); ferr != nil {
					err = ferr
				}
			}
		}
		return err
	})
	c.WaitOK()
}

// MoveSlot moves key's slot from the master serving it to master to, the
// way redis-cli --cluster reshard does: the slot is marked importing and
// migrating, its keys are sent over with MIGRATE a few at a time (step is
// called after each batch, so a test can work while the slot moves), and
// then every master is told its new owner.
func (c *Cluster) MoveSlot(ctx context.Context, key string, to *Server, step func()) {
	c.t.Helper()
	from, err := c.MasterOf(ctx, key)
	if err != nil {
		c.t.Fatal(err)
	}
	if from == to {
		c.t.Fatalf("%s already serves %q", to.Addr(), key)
	}
	src, dst := from.Client(c.t), to.Client(c.t)
	slot, err := src.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	srcID, err1 := src.Do(ctx, "CLUSTER", "MYID").Text()
	dstID, err2 := dst.Do(ctx, "CLUSTER", "MYID").Text()
	if err := cmp.Or(err1, err2); err != nil {
		c.t.Fatal(err)
	}
	must := func(what string, err error) {
		c.t.Helper()
		if err != nil {
			c.t.Fatalf("moving slot %d: %s: %v", slot, what, err)
		}
	}
	must("IMPORTING", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must("MIGRATING", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 5).Result()
		must("GETKEYSINSLOT", err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to.Port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must("MIGRATE", src.Do(ctx, args...).Err())
		if step != nil {
			step()
		}
	}
	for _, n := range c.Nodes {
		if role, _, _, err := c.Role(ctx, n); err == nil && role == "master" {
			must("NODE on "+n.Addr(), n.Client(c.t).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
		}
	}
	c.WaitOK()
}
