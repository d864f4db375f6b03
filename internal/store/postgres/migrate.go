package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema changes, in order; migration i (1-based) brings
// the schema to version i. Never edit one that has shipped: append.
// {kv} is replaced by the table's qualified name.
var migrations = []func(kv string) string{
	1: func(kv string) string {
		return `CREATE TABLE ` + kv + ` (
			bucket text COLLATE "C" NOT NULL,
			key    bytea NOT NULL,
			value  bytea NOT NULL,
			etag   text NOT NULL,
			PRIMARY KEY (bucket, key)
		)`
	},
	// Rows up to a page stay in the table as they are: by default a row
	// over 2 KB (a certificate with its chain, on every registration) is
	// first run through compression, which DER and base64 resist, and
	// then moved out of line in chunks to the TOAST table, one more heap
	// and index insert per chunk. An engine that does not know the setting
	// keeps its own way.
	2: func(kv string) string {
		return `DO $$ BEGIN
			ALTER TABLE ` + kv + ` SET (toast_tuple_target = 8160);
		EXCEPTION WHEN feature_not_supported OR invalid_parameter_value OR syntax_error THEN NULL;
		END $$`
	},
}

// SchemaVersion is the version this zdps brings a database to.
var SchemaVersion = len(migrations) - 1

// lockID is the advisory lock taken while migrating one schema, so that
// concurrent Opens (replicas starting together) migrate one at a time and
// the later ones find nothing left to do.
func lockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("zdps schema migration\x00" + schema))
	return int64(h.Sum64())
}

// migrate creates the schema if absent and applies the migrations it
// lacks, all in one transaction under an advisory lock.
func (b *Backend) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(b.queryTimeout, 30*time.Second))
	defer cancel()
	version, err := b.migrateTx(ctx)
	if err != nil {
		return err
	}
	if version > SchemaVersion {
		return fmt.Errorf("%w: schema %q is at version %d, this zdps knows up to %d", ErrSchemaTooNew, b.schema, version, SchemaVersion)
	}
	return nil
}

func (b *Backend) migrateTx(ctx context.Context) (int, error) {
	var version int
	err := pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID(b.schema)); err != nil {
			return fmt.Errorf("postgres: migration lock: %w", err)
		}
		// CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when
		// the schema exists; an operator may have created it for a
		// less privileged role.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, b.schema).Scan(&exists); err != nil {
			return fmt.Errorf("postgres: look up schema: %w", err)
		}
		sch := pgx.Identifier{b.schema}.Sanitize()
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA `+sch); err != nil {
				return fmt.Errorf("postgres: create schema %s: %w", b.schema, err)
			}
		}
		versions := pgx.Identifier{b.schema, "schema_migrations"}.Sanitize()
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+versions+` (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("postgres: create migrations table: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+versions).Scan(&version); err != nil {
			return fmt.Errorf("postgres: read schema version: %w", err)
		}
		kv := pgx.Identifier{b.schema, "kv"}.Sanitize()
		for v := version + 1; v <= SchemaVersion; v++ {
			if _, err := tx.Exec(ctx, migrations[v](kv)); err != nil {
				return fmt.Errorf("postgres: migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+versions+` (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("postgres: record migration %d: %w", v, err)
			}
		}
		return nil
	})
	return version, err
}
