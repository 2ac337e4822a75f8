package devstack

// Integration tests: they run the PostgreSQL binaries installed on the machine.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresDir returns a fresh directory the server user can reach when tests run as
// root: t.TempDir() sits in a mode 0700 directory.
func postgresDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gyre-devstack-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func startPostgres(t *testing.T, opts PostgresOptions) *Postgres {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	pg, err := StartPostgres(t.Context(), opts)
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(context.Background()); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return pg
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestPostgresRestartKeepsData(t *testing.T) {
	dir := postgresDir(t)
	pg := startPostgres(t, PostgresOptions{Dir: dir})
	if want := fmt.Sprintf("postgres://gyre@127.0.0.1:%d/gyre?sslmode=disable", pg.Port); pg.URL != want {
		t.Fatalf("URL = %q, want %q", pg.URL, want)
	}
	conn := connect(t, pg.URL)
	if got := queryString(t, conn, "SELECT current_user || '/' || current_database()"); got != "gyre/gyre" {
		t.Fatalf("user/database = %q, want gyre/gyre", got)
	}
	if got := queryString(t, conn, "SHOW fsync"); got != "on" {
		t.Fatalf("fsync = %q, want on (durable by default)", got)
	}
	if got := queryString(t, conn, "SHOW listen_addresses"); got != "127.0.0.1" {
		t.Fatalf("listen_addresses = %q, want 127.0.0.1", got)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(fmt.Sprintf("/proc/%d", postmasterPID(t, dir)))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Fatal("postgres runs as root, want an unprivileged user")
		}
	}
	_ = conn.Close(t.Context())
	if err := pg.Stop(t.Context()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("postmaster.pid after stop: %v, want it gone", err)
	}

	t0 := time.Now()
	again := startPostgres(t, PostgresOptions{Dir: dir, Ephemeral: true})
	t.Logf("restart took %s", time.Since(t0))
	if again.URL != pg.URL {
		t.Fatalf("restart URL = %q, want the remembered %q", again.URL, pg.URL)
	}
	conn = connect(t, again.URL)
	if got := queryString(t, conn, "SELECT body FROM notes"); got != "kept" {
		t.Fatalf("after restart notes = %q, want kept", got)
	}
	if got := queryString(t, conn, "SHOW fsync"); got != "off" {
		t.Fatalf("fsync = %q, want off when ephemeral", got)
	}
}

func TestPostgresReusesRunningServerAndSurvivesCrash(t *testing.T) {
	dir := postgresDir(t)
	pg := startPostgres(t, PostgresOptions{Dir: dir}) // durable: ephemeral commits may be lost in a crash
	if _, err := connect(t, pg.URL).Exec(t.Context(), "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	pid := postmasterPID(t, dir)

	// A second process finds the server running and shares it.
	shared := startPostgres(t, PostgresOptions{Dir: dir})
	if shared.URL != pg.URL {
		t.Fatalf("second start URL = %q, want the running server's %q", shared.URL, pg.URL)
	}
	if got := postmasterPID(t, dir); got != pid {
		t.Fatalf("second start replaced the server: pid %d, want %d", got, pid)
	}

	// A crash kills every server process and leaves postmaster.pid, whose pid a
	// restarted machine has given to another process of the server's user.
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill postgres: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); pg.serves(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("postgres still running after SIGKILL")
		}
	}
	pidPath := filepath.Join(dir, "data", "postmaster.pid")
	b, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatalf("postmaster.pid after crash: %v", err)
	}
	lines := strings.SplitN(string(b), "\n", 2)
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(startAsServerUser(t, pg, "sleep", "60"))+"\n"+lines[1]), 0o600); err != nil {
		t.Fatal(err)
	}

	restarted := startPostgres(t, PostgresOptions{Dir: dir, Ephemeral: true})
	if got := queryString(t, connect(t, restarted.URL), "SELECT body FROM notes"); got != "kept" {
		t.Fatalf("after crash notes = %q, want kept", got)
	}
}

// startAsServerUser starts a program as the user postgres runs as and returns its pid; it is killed when the test ends.
func startAsServerUser(t *testing.T, pg *Postgres, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if pg.owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: pg.owner.uid, Gid: pg.owner.gid}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

func TestPostgresMissingBinaries(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	old := postgresSearchRoot
	postgresSearchRoot = empty
	t.Cleanup(func() { postgresSearchRoot = old })

	if _, err := FindPostgresBin(); !errors.Is(err, ErrPostgresNotFound) {
		t.Fatalf("FindPostgresBin error = %v, want ErrPostgresNotFound", err)
	}
	_, err := StartPostgres(t.Context(), PostgresOptions{Dir: filepath.Join(empty, "pg")})
	if !errors.Is(err, ErrPostgresNotFound) {
		t.Fatalf("StartPostgres error = %v, want ErrPostgresNotFound", err)
	}
	for _, want := range []string{"apt-get install postgresql", "GYRE_DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestFindPostgresBinPicksNewestCompleteVersion(t *testing.T) {
	root := t.TempDir()
	for version, programs := range map[string][]string{
		"9.6": {"initdb", "pg_ctl", "postgres"},
		"10":  {"initdb", "pg_ctl", "postgres"},
		"16":  {"pg_ctl"}, // client-only install: no server
	} {
		bin := filepath.Join(root, version, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range programs {
			if err := os.WriteFile(filepath.Join(bin, p), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", t.TempDir())
	old := postgresSearchRoot
	postgresSearchRoot = root
	t.Cleanup(func() { postgresSearchRoot = old })

	got, err := FindPostgresBin()
	if want := filepath.Join(root, "10", "bin"); err != nil || got != want {
		t.Fatalf("FindPostgresBin = %q, %v; want %q", got, err, want)
	}
}

func TestPostgresAsRootNeedsReachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs postgres as another user")
	}
	dir := filepath.Join(t.TempDir(), "pg") // t.TempDir's parent is mode 0700
	_, err := StartPostgres(t.Context(), PostgresOptions{Dir: dir})
	if err == nil {
		t.Fatal("StartPostgres in a directory the server user cannot reach succeeded")
	}
	blocked := filepath.Dir(filepath.Dir(dir))
	for _, want := range []string{"cannot enter " + blocked + " ", "chmod o+x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
