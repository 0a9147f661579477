package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/store/redis/redistest"
	store "github.com/qrswitch/qrswitch/store/storetest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// prefixes numbers the key prefixes of the stores a test binary opens, so
// that stores sharing one server start empty.
var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

// openOn opens a store on srv under prefix and closes it when the test ends.
func openOn(t testing.TB, url, prefix string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url+"?key_prefix="+prefix, opts)
	if err != nil {
		t.Fatalf("Open(%s) error = %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	store.ConformanceWith(t, store.Opener{
		Open: func(t *testing.T) qrswitch.Store { return openOn(t, srv.URL(), newPrefix(), Options{}) },
		Reopen: func(t *testing.T, old qrswitch.Store) qrswitch.Store {
			s := old.(*Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error = %v", err)
			}
			return openOn(t, srv.URL(), s.Prefix(), Options{})
		},
	})
}

// BenchmarkStore runs the shared store benchmarks on a standalone Redis
// (appendfsync everysec), and on a master with one replica on loopback where
// every Commit waits for the replica's acknowledgement (WaitReplicas 1).
func BenchmarkStore(b *testing.B) {
	b.Run("wait_replicas=0", func(b *testing.B) {
		srv := redistest.Start(b)
		store.Benchmarks(b, func(b *testing.B) qrswitch.Store { return openOn(b, srv.URL(), newPrefix(), Options{}) })
	})
	b.Run("wait_replicas=1", func(b *testing.B) {
		master := redistest.Start(b)
		replica := redistest.StartWith(b, redistest.Options{ReplicaOf: master.Addr()})
		redistest.WaitReplica(b, master, replica)
		store.Benchmarks(b, func(b *testing.B) qrswitch.Store {
			return openOn(b, master.URL(), newPrefix(), Options{WaitReplicas: 1})
		})
	})
}

// TestClusterConformance runs the suite on a Redis Cluster of three
// masters, each with a replica: every key of a store is in the slot of its
// prefix's hash tag, wherever that slot is.
func TestClusterConformance(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	// WAIT returns once the replica has a write; the long timeout only
	// spares a loaded machine's replica a short deadline.
	opts := Options{WaitReplicas: 1, WaitTimeout: 10 * time.Second}
	store.ConformanceWith(t, store.Opener{
		Open: func(t *testing.T) qrswitch.Store { return openOn(t, c.URL(), newPrefix(), opts) },
		Reopen: func(t *testing.T, old qrswitch.Store) qrswitch.Store {
			s := old.(*Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error = %v", err)
			}
			return openOn(t, c.URL(), s.Prefix(), opts)
		},
	})
}
