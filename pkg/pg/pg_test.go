package pg_test

// Integration tests: they need Postgres (pgtest: GYRE_TEST_DATABASE_URL or a private server).

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gyreml/gyre/migrations"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pgtest"
)

func connect(t *testing.T, url, schema string) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.Connect(t.Context(), url, schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestMigrateAppliesCommonThenServiceFilesOnce(t *testing.T) {
	pool := connect(t, pgtest.DatabaseURL(t), "svc")
	fsys := fstest.MapFS{
		"common/001_base.sql": {Data: []byte("CREATE TABLE base (id int PRIMARY KEY);")},
		// 002 sorts after 010 as text; number order must win.
		"svc/010_more.sql":   {Data: []byte("ALTER TABLE things ADD COLUMN note text;")},
		"svc/002_things.sql": {Data: []byte("CREATE TABLE things (id int REFERENCES base); INSERT INTO base VALUES (1);")},
		"other/001_x.sql":    {Data: []byte("CREATE TABLE not_mine (id int);")},
	}
	for range 2 {
		if err := pg.Migrate(t.Context(), pool, "svc", fsys, "svc"); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM svc.base"); n != 1 {
		t.Fatalf("svc.base has %d rows, want 1 (002 applied once)", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'svc' AND table_name = 'things' AND column_name = 'note'"); n != 1 {
		t.Fatal("010_more.sql not applied to svc.things")
	}
	if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = 'not_mine'"); n != 0 {
		t.Fatal("another service's migration was applied")
	}
	rows, _ := pool.Query(t.Context(), "SELECT name FROM svc.schema_migrations ORDER BY applied_at, name")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(names, ","), "common/001_base.sql,svc/002_things.sql,svc/010_more.sql"; got != want {
		t.Fatalf("schema_migrations = %s, want %s", got, want)
	}

	fsys["svc/011_later.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO base VALUES (2);")}
	if err := pg.Migrate(t.Context(), pool, "svc", fsys, "svc"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, "SELECT count(*) FROM svc.base"); n != 2 {
		t.Fatalf("svc.base has %d rows after a new migration, want 2", n)
	}
}

func TestMigrateConcurrentReplicasApplyEachFileOnce(t *testing.T) {
	url := pgtest.DatabaseURL(t)
	setup := connect(t, url, "public")
	if _, err := setup.Exec(t.Context(), "CREATE TABLE public.applications (file text)"); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"common/001_events.sql": {Data: []byte("INSERT INTO public.applications VALUES ('common/001'); CREATE TABLE c (id int);")},
		"svc/001_a.sql":         {Data: []byte("INSERT INTO public.applications VALUES ('svc/001'); CREATE TABLE a (id int); SELECT pg_sleep(0.05);")},
		"svc/002_b.sql":         {Data: []byte("INSERT INTO public.applications VALUES ('svc/002'); CREATE TABLE b (id int);")},
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		pool := connect(t, url, "svc") // each replica has its own pool
		wg.Go(func() { errs[i] = pg.Migrate(t.Context(), pool, "svc", fsys, "svc") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if n := count(t, setup, "SELECT count(*) FROM public.applications"); n != 3 {
		t.Fatalf("%d migration files applied, want 3 (each once)", n)
	}
	if n := count(t, setup, "SELECT count(DISTINCT file) FROM public.applications"); n != 3 {
		t.Fatalf("%d distinct files applied, want 3", n)
	}
}

func TestMigrateFailedFileRollsBackAndNamesIt(t *testing.T) {
	pool := connect(t, pgtest.DatabaseURL(t), "svc")
	fsys := fstest.MapFS{
		"common/001_ok.sql": {Data: []byte("CREATE TABLE ok (id int);")},
		"svc/001_bad.sql":   {Data: []byte("CREATE TABLE half (id int); SELEC 1;")},
	}
	err := pg.Migrate(t.Context(), pool, "svc", fsys, "svc")
	if err == nil || !strings.Contains(err.Error(), "svc/001_bad.sql") {
		t.Fatalf("Migrate = %v, want an error naming svc/001_bad.sql", err)
	}
	if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = 'svc' AND tablename = 'half'"); n != 0 {
		t.Fatal("the failed file's first statement was kept")
	}
	if n := count(t, pool, "SELECT count(*) FROM svc.schema_migrations"); n != 1 {
		t.Fatalf("%d migrations recorded, want 1 (only the good one)", n)
	}
}

func TestMigrateRefusesBadNames(t *testing.T) {
	pool := connect(t, pgtest.DatabaseURL(t), "svc")
	for name, fsys := range map[string]fstest.MapFS{
		"unnumbered":  {"common/001_a.sql": {}, "svc/init.sql": {}},
		"same number": {"common/001_a.sql": {}, "svc/001_a.sql": {}, "svc/1_b.sql": {}},
		"no dir":      {"common/001_a.sql": {}},
	} {
		if err := pg.Migrate(t.Context(), pool, "svc", fsys, "svc"); err == nil {
			t.Errorf("%s: Migrate succeeded, want an error", name)
		}
	}
}

func TestEmbeddedCommonMigrations(t *testing.T) {
	pool := connect(t, pgtest.DatabaseURL(t), "svc")
	if err := pg.Migrate(t.Context(), pool, "svc", migrations.FS, ""); err != nil {
		t.Fatal(err)
	}
	// Unqualified names resolve in the pool's schema.
	for _, table := range []string{"outbox", "handled_events"} {
		if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = 'svc' AND tablename = $1", table); n != 1 {
			t.Fatalf("svc.%s missing", table)
		}
		if n := count(t, pool, "SELECT count(*) FROM "+table); n != 0 {
			t.Fatalf("%s not empty", table)
		}
	}
}

func TestInTx(t *testing.T) {
	pool := connect(t, pgtest.DatabaseURL(t), "public")
	if _, err := pool.Exec(t.Context(), "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	insert := func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "INSERT INTO t VALUES (1)")
		return err
	}
	boom := errors.New("boom")
	err := pg.InTx(t.Context(), pool, func(tx pgx.Tx) error {
		if err := insert(tx); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("InTx = %v, want fn's error unchanged", err)
	}
	if n := count(t, pool, "SELECT count(*) FROM t"); n != 0 {
		t.Fatalf("%d rows after a failed transaction, want 0", n)
	}
	if err := pg.InTx(t.Context(), pool, insert); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, "SELECT count(*) FROM t"); n != 1 {
		t.Fatalf("%d rows after a committed transaction, want 1", n)
	}
}

func TestConnectRefusesBadURLWithoutLeakingPassword(t *testing.T) {
	_, err := pg.Connect(t.Context(), "postgres://u:s3cret@host:notaport/db", "svc")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Connect = %v, want an error without the password", err)
	}
}
