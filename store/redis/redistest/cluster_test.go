package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCluster starts a cluster of 3 masters and 3 replicas, writes keys
// over every master (each acknowledged by its replica), kills the master of
// one key and waits for its replica to take over: every key is still
// there, and the old master comes back as a replica.
func TestCluster(t *testing.T) {
	c := StartCluster(t, 3, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	masters := 0
	for _, n := range c.Nodes {
		role, _, _, err := c.Role(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if role == "master" {
			masters++
		}
	}
	if masters != 3 {
		t.Fatalf("%d masters, want 3", masters)
	}
	cc := c.Client(t)
	const keys = 100
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	// Every master's writes are on its replica before the failover.
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.Do(ctx, "WAIT", 1, 5000).Int()
		if err == nil && n < 1 {
			err = fmt.Errorf("master %s: WAIT acknowledged by %d replicas", m.Options().Addr, n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	victim, err := c.MasterOf(ctx, "k0")
	if err != nil {
		t.Fatal(err)
	}
	victim.Kill()
	c.WaitOK()
	// A new client learns the new slot map (an old one keeps dialling the
	// dead master until it reloads it: the store must handle that).
	cc = c.Client(t)
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		if v, err := cc.Get(ctx, k).Int(); err != nil || v != i {
			t.Fatalf("GET %s after the failover = %d, %v; want %d", k, v, err, i)
		}
	}
	if now, err := c.MasterOf(ctx, "k0"); err != nil || now == victim {
		t.Fatalf("k0's master after the failover: %v, %v; want the promoted replica", now, err)
	}
	victim.start() // back, with its nodes.conf: it rejoins as a replica
	c.WaitOK()
	if role, _, up, err := c.Role(ctx, victim); err != nil || role != "slave" || !up {
		t.Fatalf("the old master came back as %q (link up %v, %v), want a replica in sync", role, up, err)
	}
}

// TestStartOnceSaysAPortIsTaken: a server whose port was taken after it was
// found free exits at start with "Address already in use", which StartWith
// answers by picking other ports.
func TestStartOnceSaysAPortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := newServer(t, Options{})
	taken := ln.Addr().(*net.TCPAddr).Port
	for i, a := range s.args {
		if a == "--port" {
			s.args[i+1], s.Port = strconv.Itoa(taken), taken
		}
	}
	if err := s.startOnce(); err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("startOnce on a taken port = %v, want an error saying the address is in use", err)
	}
	if srv := Start(t); srv.Port == taken {
		t.Fatalf("Start chose the taken port %d", taken)
	}
}
