// Package pgtest gives each test its own fresh Postgres database.
//
// The server is GYRE_TEST_DATABASE_URL when set (a superuser URL). Otherwise it is
// a private Postgres (devstack.StartPostgres, Ephemeral) in
// $TMPDIR/gyre-pgtest-<uid>, shared by every test package: go test runs packages
// as parallel processes, and the first one to take the directory's lock starts
// the server while the others wait and reuse it. The server keeps running after
// the tests, so the next run starts instantly; stop it with
// `pg_ctl stop -D $TMPDIR/gyre-pgtest-<uid>/data` (as the user "postgres" when
// root) or leave it.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gyreml/gyre/pkg/devstack"
)

// DatabaseURL creates an empty database for this test and drops it when the test ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	admin := serverURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v", redact(admin), err)
	}
	defer conn.Close(ctx)
	name := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: parse url: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Pool opens a pool on a fresh database; it is closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), DatabaseURL(t))
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func serverURL(t testing.TB) string {
	if u := os.Getenv("GYRE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	u, err := privateServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// privateServer starts the shared private server, or finds it already running, once per test process.
var privateServer = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("gyre-pgtest-%d", os.Geteuid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("private postgres: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("private postgres: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("private postgres: lock %s: %w", lock.Name(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: dir, Ephemeral: true})
	if err != nil {
		return "", fmt.Errorf("private postgres (set GYRE_TEST_DATABASE_URL to use another server): %w", err)
	}
	return pg.URL, nil
})

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}
