package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/outcome"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// versions returns the rows of schema_migrations.
func versions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.rdb.QueryContext(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		rows.Scan(&v)
		vs = append(vs, v)
	}
	return vs
}

func TestMigrations(t *testing.T) {
	t.Run("EmptyFile", func(t *testing.T) {
		path := tempDB(t)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s := openAt(t, path, "")
		if got := versions(t, s); len(got) != schemaVersion || got[len(got)-1] != schemaVersion {
			t.Errorf("schema versions after Open of an empty file = %v, want 1..%d", got, schemaVersion)
		}
		if err := s.Commit(t.Context(), &qrswitch.Change{Payment: newPayment("shop-1", "pay-1")}); err != nil {
			t.Errorf("Commit on a migrated file error = %v", err)
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		path := tempDB(t)
		s := openAt(t, path, "")
		p := newPayment("shop-1", "pay-1")
		if err := s.Commit(t.Context(), &qrswitch.Change{Payment: p}); err != nil {
			t.Fatalf("Commit error = %v", err)
		}
		s.Close()
		r := openAt(t, path, "")
		if got := versions(t, r); len(got) != schemaVersion {
			t.Errorf("schema versions after reopening = %v, want each of 1..%d once", got, schemaVersion)
		}
		if got, err := r.Payment(t.Context(), p.Key()); err != nil || got.Version != 1 {
			t.Errorf("Payment after reopening = %+v, %v; want version 1", got, err)
		}
	})
	t.Run("NewerSchema", func(t *testing.T) {
		path := tempDB(t)
		s := openAt(t, path, "")
		s.Close()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO schema_migrations (version) VALUES (99)"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = Open(context.Background(), "sqlite://"+path, Options{})
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("Open(database of schema 99) error = %v, want one saying it is newer", err)
		}
		// The failed Open released the lock.
		f, err := lockFile(path)
		if err != nil {
			t.Fatalf("lockFile after a failed Open error = %v, want nil", err)
		}
		unlockFile(f)
	})
}

// TestMigrationFromVersion1 upgrades a file written by schema 1: the new
// columns of version 2 are filled from each row's JSON, so searches by
// outcome and queue statistics see the records written before.
func TestMigrationFromVersion1(t *testing.T) {
	path := tempDB(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	queued := time.Date(2026, 3, 2, 9, 30, 0, 123456789, time.UTC)
	approved := newPayment("shop-1", "pay-1")
	approved.State, approved.PayOutcome = outcome.Approved, outcome.Successful
	held := newPayment("shop-1", "pay-2")
	adv := &qrswitch.Advice{Sender: "shop-1", ID: "adv-1", Kind: qrswitch.Confirmation, PaymentKey: approved.Key(),
		Destination: "wallet-a", State: qrswitch.AdvicePending, Attempts: 3, QueuedAt: queued, NextAt: queued, CreatedAt: queued}
	stmts := []string{"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT '')",
		migrations[0], "INSERT INTO schema_migrations (version) VALUES (1)"}
	for _, st := range stmts {
		if _, err := db.Exec(st); err != nil {
			t.Fatalf("schema 1: %v", err)
		}
	}
	for _, p := range []*qrswitch.Payment{approved, held} {
		data, _ := json.Marshal(p)
		if _, err := db.Exec(`INSERT INTO payments (key, retailer_id, request_id, tran_id, rrn, stan, partner_id, merchant_id,
			terminal_id, state, amount, created_at, hold_until, version, data) VALUES (?, ?, ?, '', '', '', '', '', '', ?, NULL, 0, 0, 1, ?)`,
			p.Key(), p.RetailerID, p.RequestID, string(p.State), string(data)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := json.Marshal(adv)
	if _, err := db.Exec(`INSERT INTO advices (key, sender, id, payment_key, partner_id, state, next_at, lease_until, created_at, version, data)
		VALUES (?, 'shop-1', 'adv-1', ?, 'wallet-a', 'PENDING', 0, 0, 0, 1, ?)`, adv.Key(), adv.PaymentKey, string(data)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openAt(t, path, "")
	for _, tc := range []struct {
		outcome string
		want    int
	}{{"successful", 1}, {"unknown", 0}, {"", 2}} {
		got, err := s.Search(t.Context(), qrswitch.Query{Outcome: tc.outcome})
		if err != nil || len(got) != tc.want {
			t.Errorf("Search(outcome %q) after migration = %d payments, %v; want %d", tc.outcome, len(got), err, tc.want)
		}
	}
	st, err := s.QueueStats(t.Context(), "wallet-a")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 1 || !st.OldestQueuedAt.Equal(queued.Truncate(time.Millisecond)) || st.Attempts[3] != 1 {
		t.Errorf("QueueStats after migration = %+v, want 1 pending queued at %v with 3 attempts", st, queued.Truncate(time.Millisecond))
	}
}
