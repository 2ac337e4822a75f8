package pgtest

// Integration tests: GYRE_TEST_DATABASE_URL's server, or the private one when it is unset.

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestDatabaseURLGivesDistinctEmptyDatabases(t *testing.T) {
	a, b := DatabaseURL(t), DatabaseURL(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", redact(a))
	}
	conns := map[string]*pgx.Conn{}
	for _, u := range []string{a, b} {
		conn, err := pgx.Connect(t.Context(), u)
		if err != nil {
			t.Fatalf("connect %s: %v", redact(u), err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		var tables int
		err = conn.QueryRow(t.Context(),
			"SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").Scan(&tables)
		if err != nil || tables != 0 {
			t.Fatalf("%s has %d tables (%v), want an empty database", redact(u), tables, err)
		}
		conns[u] = conn
	}
	if _, err := conns[a].Exec(t.Context(), "CREATE TABLE marker (id int)"); err != nil {
		t.Fatal(err)
	}
	var seen bool
	if err := conns[b].QueryRow(t.Context(), "SELECT to_regclass('marker') IS NOT NULL").Scan(&seen); err != nil || seen {
		t.Fatalf("table created in one database is visible in the other (%v)", err)
	}
}

func TestDatabaseDroppedWhenTestEnds(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		if err := Pool(t).QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "t_") {
			t.Fatalf("database %q, want a t_ name", name)
		}
	})
	conn, err := pgx.Connect(t.Context(), serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil || exists {
		t.Fatalf("database %s still exists after its test (%v)", name, err)
	}
}
