// Package pg is Gyre's Postgres plumbing: a pool bound to a service's schema,
// embedded SQL migrations applied at start, and a transaction helper.
//
// Each service owns one schema. Its pool sets search_path to that schema, so
// the service's SQL (and its migrations) use unqualified table names.
package pg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CommonDir holds the migrations every service schema gets before its own.
const CommonDir = "common"

// Connect opens a pool whose connections use search_path=schema and checks
// that the server answers. The schema need not exist yet (Migrate creates it).
func Connect(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("parse database url: invalid connection string")
	}
	if schema == "" {
		return nil, errors.New("connect: empty schema")
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping %s@%s:%d/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// InTx runs fn in a transaction and commits it when fn returns nil; otherwise
// it rolls back and returns fn's error unchanged.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// Rollback after a commit is a no-op.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

var migrationName = regexp.MustCompile(`^([0-9]+)_[A-Za-z0-9_]+\.sql$`)

type migration struct {
	name string // recorded in schema_migrations: "<dir>/NNN_name.sql"
	num  int
}

// Migrate creates schema if missing and applies fsys's common/*.sql, then
// dir/*.sql, in number order, skipping files already recorded in
// <schema>.schema_migrations. Each file runs in its own transaction together
// with its record, with search_path set to schema. A session advisory lock
// keyed on the schema serializes replicas that start at the same time.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, fsys fs.FS, dir string) error {
	files, err := listMigrations(fsys, CommonDir)
	if err != nil {
		return err
	}
	if dir != "" && dir != CommonDir {
		own, err := listMigrations(fsys, dir)
		if err != nil {
			return err
		}
		files = append(files, own...)
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: acquire connection: %w", schema, err)
	}
	defer conn.Release()
	lockKey := "gyre.migrate." + schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey); err != nil {
		return fmt.Errorf("migrate %s: take lock: %w", schema, err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey); err != nil {
			// Closing the session releases its locks.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ident); err != nil {
		return fmt.Errorf("migrate %s: create schema: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+ident+`.schema_migrations (
		name       text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", schema, err)
	}
	rows, _ := conn.Query(ctx, "SELECT name FROM "+ident+".schema_migrations")
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("migrate %s: read schema_migrations: %w", schema, err)
	}

	for _, m := range files {
		if slices.Contains(applied, m.name) {
			continue
		}
		sql, err := fs.ReadFile(fsys, m.name)
		if err != nil {
			return fmt.Errorf("migrate %s: read %s: %w", schema, m.name, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident); err != nil {
				return err
			}
			// No arguments: the simple protocol runs a file of many statements.
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+ident+".schema_migrations (name) VALUES ($1)", m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: apply %s: %w", schema, m.name, err)
		}
	}
	return nil
}

// listMigrations returns dir's NNN_name.sql files in number order.
func listMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("list migrations %s: %w", dir, err)
	}
	var out []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s/%s: name must be NNN_name.sql", dir, e.Name())
		}
		num, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("migration %s/%s: %w", dir, e.Name(), err)
		}
		out = append(out, migration{name: path.Join(dir, e.Name()), num: num})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.num - b.num })
	for i := 1; i < len(out); i++ {
		if out[i].num == out[i-1].num {
			return nil, fmt.Errorf("migrations %s and %s have the same number", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}
