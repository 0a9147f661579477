package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema's forward steps; migrations[i] takes a database
// from version i to i+1. Append only: a released step is never edited.
//
// Records are stored whole as JSON in data; the other columns are copies of
// the fields that lookups, searches and claims filter on, kept in step by
// every write. Times are Unix nanoseconds (see nanos). The trace is a table
// of its own so that appending never rewrites a payment.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE qr_codes (
	tran_id     TEXT PRIMARY KEY,
	retailer_id TEXT NOT NULL,
	request_id  TEXT NOT NULL,
	version     INTEGER NOT NULL,
	data        TEXT NOT NULL,
	UNIQUE (retailer_id, request_id)
);

CREATE TABLE payments (
	key         TEXT PRIMARY KEY,
	retailer_id TEXT NOT NULL,
	request_id  TEXT NOT NULL,
	tran_id     TEXT NOT NULL,
	rrn         TEXT NOT NULL,
	stan        TEXT NOT NULL,
	partner_id  TEXT NOT NULL,
	merchant_id TEXT NOT NULL,
	terminal_id TEXT NOT NULL,
	state       TEXT NOT NULL,
	amount      INTEGER,           -- request amount in minor units; NULL when none
	created_at  INTEGER NOT NULL,
	hold_until  INTEGER NOT NULL,
	version     INTEGER NOT NULL,
	data        TEXT NOT NULL
);
CREATE INDEX payments_request  ON payments (request_id);
CREATE INDEX payments_tran     ON payments (tran_id);
CREATE INDEX payments_rrn      ON payments (rrn);
CREATE INDEX payments_stan     ON payments (stan);
CREATE INDEX payments_created  ON payments (created_at);
CREATE INDEX payments_retailer ON payments (retailer_id, created_at);
CREATE INDEX payments_partner  ON payments (partner_id, created_at);
CREATE INDEX payments_merchant ON payments (merchant_id, created_at);
CREATE INDEX payments_terminal ON payments (terminal_id, created_at);
CREATE INDEX payments_state    ON payments (state, created_at);
CREATE INDEX payments_amount   ON payments (amount);
-- Only held payments can be orphans, so the index stays small.
CREATE INDEX payments_held     ON payments (hold_until)
	WHERE state IN ('AWAITING_SCAN', 'FORWARDED');

CREATE TABLE advices (
	key         TEXT PRIMARY KEY,
	sender      TEXT NOT NULL,
	id          TEXT NOT NULL,
	payment_key TEXT NOT NULL,
	partner_id  TEXT NOT NULL,
	state       TEXT NOT NULL,
	next_at     INTEGER NOT NULL,
	lease_until INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	version     INTEGER NOT NULL,
	data        TEXT NOT NULL
);
CREATE INDEX advices_id      ON advices (id);
CREATE INDEX advices_payment ON advices (payment_key, created_at);
CREATE INDEX advices_partner ON advices (partner_id, created_at);
CREATE INDEX advices_state   ON advices (state, created_at);
CREATE INDEX advices_created ON advices (created_at);
-- The store-and-forward queue: only pending advices, in claim order.
CREATE INDEX advices_due         ON advices (partner_id, next_at) WHERE state = 'PENDING';
CREATE INDEX advices_due_any     ON advices (next_at) WHERE state = 'PENDING';

-- seq is the rowid: SQLite gives each new row a larger one than any
-- present, and trace rows are never deleted, so seq is the append order
-- without AUTOINCREMENT's extra write to sqlite_sequence.
CREATE TABLE trace (
	seq         INTEGER PRIMARY KEY,
	payment_key TEXT NOT NULL,
	data        TEXT NOT NULL
);
CREATE INDEX trace_payment ON trace (payment_key, seq);
`,
	// 2: support staff's searches and queue statistics, and operators'
	// control of partner queues. Rows written before it get their new
	// columns from their JSON; a QueuedAt read back that way is exact to
	// the millisecond only, which is all queue ages need.
	`
ALTER TABLE payments ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
UPDATE payments SET outcome = CASE
	WHEN state IN ('AWAITING_SCAN', 'FORWARDED') OR json_extract(data, '$.tombstone') THEN ''
	ELSE COALESCE(json_extract(data, '$.payOutcome'), 'unknown') END;
CREATE INDEX payments_outcome ON payments (outcome, created_at);

ALTER TABLE advices ADD COLUMN queued_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE advices ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
UPDATE advices SET
	attempts = COALESCE(json_extract(data, '$.attempts'), 0),
	queued_at = COALESCE(
		unixepoch(json_extract(data, '$.queuedAt')) * 1000000000 + CAST(ROUND(1000 * (
			unixepoch(json_extract(data, '$.queuedAt'), 'subsec') - unixepoch(json_extract(data, '$.queuedAt')))) AS INTEGER) * 1000000,
		-9223372036854775807 - 1);
-- Queue statistics: counts by state and the oldest queued, per partner,
-- without reading a row.
CREATE INDEX advices_queue ON advices (partner_id, state, queued_at, attempts);

CREATE TABLE partner_controls (
	partner_id TEXT PRIMARY KEY,
	paused     INTEGER NOT NULL,
	version    INTEGER NOT NULL,
	data       TEXT NOT NULL
);
`,
	// 3: rails' own records (partners.Record). key is owner/kind/rkey
	// (owners and kinds hold no '/'); due_at is 0 when the record is due
	// for nothing. rail_index holds each record's secondary keys, written
	// again with every write of the record.
	`
CREATE TABLE rail_records (
	key     TEXT PRIMARY KEY,
	owner   TEXT NOT NULL,
	kind    TEXT NOT NULL,
	rkey    TEXT NOT NULL,
	due_at  INTEGER NOT NULL,
	version INTEGER NOT NULL,
	data    TEXT NOT NULL
);
CREATE INDEX rail_records_list ON rail_records (owner, kind, rkey);
CREATE INDEX rail_records_due  ON rail_records (owner, kind, due_at) WHERE due_at <> 0;
CREATE TABLE rail_index (
	owner TEXT NOT NULL,
	kind  TEXT NOT NULL,
	idx   TEXT NOT NULL,
	rkey  TEXT NOT NULL,
	PRIMARY KEY (owner, kind, idx, rkey)
) WITHOUT ROWID;
`,
	// 4: retention (see retention.go). finished_at is when a payment
	// reached a final state (its UpdatedAt then; 0 while it is not final),
	// kept by later updates; rows written before it take their updatedAt,
	// exact to the millisecond. A QR code's expiry and the payment using it
	// become columns, and traces of nothing stored are listed with the time
	// of their last entry.
	`
ALTER TABLE payments ADD COLUMN finished_at INTEGER NOT NULL DEFAULT 0;
UPDATE payments SET finished_at = COALESCE(
	unixepoch(json_extract(data, '$.updatedAt')) * 1000000000 + CAST(ROUND(1000 * (
		unixepoch(json_extract(data, '$.updatedAt'), 'subsec') - unixepoch(json_extract(data, '$.updatedAt')))) AS INTEGER) * 1000000,
	created_at)
	WHERE state IN ('DECLINED', 'NO_SCAN', 'CONFIRMED', 'CONFIRM_FAILED', 'REVERSED', 'REVERSAL_FAILED', 'UNSETTLED');
CREATE INDEX payments_finished ON payments (finished_at) WHERE finished_at <> 0;

ALTER TABLE qr_codes ADD COLUMN payment_key TEXT NOT NULL DEFAULT '';
ALTER TABLE qr_codes ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE qr_codes SET
	payment_key = COALESCE(json_extract(data, '$.paymentKey'), ''),
	expires_at = COALESCE(
		unixepoch(json_extract(data, '$.expiresAt')) * 1000000000 + CAST(ROUND(1000 * (
			unixepoch(json_extract(data, '$.expiresAt'), 'subsec') - unixepoch(json_extract(data, '$.expiresAt')))) AS INTEGER) * 1000000,
		0);
CREATE INDEX qr_codes_expires ON qr_codes (expires_at);

CREATE TABLE orphan_traces (
	trace_key TEXT PRIMARY KEY,
	last_at   INTEGER NOT NULL
);
CREATE INDEX orphan_traces_last ON orphan_traces (last_at);
`,
}

// schemaVersion is the version this code writes.
var schemaVersion = len(migrations)

// migrate brings the database on conn to schemaVersion, one transaction per
// step, and refuses a database written by a newer qrswitch.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
	)`); err != nil {
		return err
	}
	var have int
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&have); err != nil {
		return err
	}
	if have > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this qrswitch knows (%d)", have, schemaVersion)
	}
	for v := have; v < schemaVersion; v++ {
		if err := step(ctx, conn, v+1, migrations[v]); err != nil {
			return fmt.Errorf("to version %d: %w", v+1, err)
		}
	}
	return nil
}

func step(ctx context.Context, conn *sql.Conn, version int, ddl string) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version) VALUES (?)", version); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
