package sqlite

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"

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
