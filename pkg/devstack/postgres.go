package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrPostgresNotFound means no PostgreSQL server binaries are installed where FindPostgresBin looks.
var ErrPostgresNotFound = errors.New("no PostgreSQL binaries found on PATH or in /usr/lib/postgresql/*/bin: " +
	"install the postgresql package (apt-get install postgresql) or set GYRE_DATABASE_URL")

// postgresSearchRoot holds one <version>/bin per installed major version (Debian and Ubuntu); tests point it elsewhere.
var postgresSearchRoot = "/usr/lib/postgresql"

const (
	postgresSuperuser    = "gyre"
	postgresDatabase     = "gyre"
	postgresStartTimeout = 60 * time.Second
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Dir holds the cluster in Dir/data, the server log in Dir/postgres.log and the chosen port in Dir/port.
	Dir string
	// Port is the TCP port on 127.0.0.1. 0 picks a free port, remembered in Dir so that later starts reuse it while it is free.
	Port int
	// Ephemeral turns off fsync, synchronous_commit and full_page_writes: fast, but a crash of the server
	// loses its last commits and a crash of the machine can corrupt the data. For tests.
	Ephemeral bool
	Logger    *slog.Logger
}

// Postgres is a private PostgreSQL server listening on 127.0.0.1 only, with trust
// authentication for the superuser "gyre" and a database "gyre".
//
// When the process runs as root, the server runs as the user "postgres" (or "nobody"
// where there is none), because PostgreSQL refuses to run as root. That user must be
// able to enter Dir and every directory above it: StartPostgres checks this and says
// which directory is in the way (a root home or a t.TempDir() is mode 0700).
type Postgres struct {
	// URL is postgres://gyre@127.0.0.1:PORT/gyre?sslmode=disable.
	URL  string
	Port int

	dir     string
	dataDir string
	binDir  string
	owner   *serverUser // nil unless we run as root
	log     *slog.Logger
}

// StartPostgres starts the server in opts.Dir, creating the cluster on first use.
// A server already running on that directory (left by an earlier process) is reused.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return nil, errors.New("start postgres: no directory given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	binDir, err := FindPostgresBin()
	if err != nil {
		return nil, err
	}
	owner, err := lookupServerUser()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if owner != nil {
		if err := owner.checkCanEnter(dir); err != nil {
			return nil, err
		}
	}
	p := &Postgres{dir: dir, dataDir: filepath.Join(dir, "data"), binDir: binDir, owner: owner, log: log}

	pid, port, running, err := p.runningServer()
	if err != nil {
		return nil, err
	}
	if running {
		if opts.Port != 0 && opts.Port != port {
			return nil, fmt.Errorf("start postgres: a server (pid %d) already runs on %s with port %d, not %d", pid, p.dataDir, port, opts.Port)
		}
		p.setPort(port)
		if err := p.createDatabase(ctx); err != nil {
			return nil, err
		}
		log.Info("postgres already running, reusing it", "url", p.URL, "pid", pid)
		return p, nil
	}

	t0 := time.Now()
	if err := p.initCluster(ctx); err != nil {
		return nil, err
	}
	if err := p.start(ctx, opts); err != nil {
		return nil, err
	}
	if err := p.createDatabase(ctx); err != nil {
		return nil, errors.Join(err, p.Stop(context.WithoutCancel(ctx)))
	}
	log.Info("postgres started", "url", p.URL, "dir", dir, "took", time.Since(t0).Round(time.Millisecond))
	return p, nil
}

// Stop shuts the server down, aborting open transactions (pg_ctl stop -m fast). Stopping a stopped server does nothing.
func (p *Postgres) Stop(ctx context.Context) error {
	_, _, running, err := p.runningServer()
	if err != nil || !running {
		return err
	}
	secs := strconv.Itoa(int(postgresStartTimeout.Seconds()))
	if out, err := p.command(ctx, "pg_ctl", "stop", "-D", p.dataDir, "-m", "fast", "-w", "-t", secs, "-s").CombinedOutput(); err != nil {
		return fmt.Errorf("stop postgres in %s: %w: %s", p.dataDir, err, bytes.TrimSpace(out))
	}
	p.log.Info("postgres stopped", "dir", p.dir)
	return nil
}

// FindPostgresBin returns the directory holding initdb, pg_ctl and postgres: the one
// pg_ctl on PATH lives in (symlinks resolved), else the newest /usr/lib/postgresql/*/bin.
func FindPostgresBin() (string, error) {
	if path, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(path); err == nil && hasPostgresBinaries(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(postgresSearchRoot, "*", "bin"))
	slices.SortFunc(dirs, func(a, b string) int {
		return -compareVersions(filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b)))
	})
	for _, dir := range dirs {
		if hasPostgresBinaries(dir) {
			return dir, nil
		}
	}
	return "", ErrPostgresNotFound
}

func hasPostgresBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// compareVersions orders PostgreSQL version directories numerically: 9.6 < 10 < 16.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var na, nb int
		if i < len(pa) {
			na, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			nb, _ = strconv.Atoi(pb[i])
		}
		if na != nb {
			return na - nb
		}
	}
	return strings.Compare(a, b)
}

func (p *Postgres) setPort(port int) {
	p.Port = port
	p.URL = fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", postgresSuperuser, port, postgresDatabase)
}

// initCluster runs initdb on first use. It builds the cluster beside Dir/data and renames
// it into place, so an interrupted initdb never leaves a half-made cluster behind.
func (p *Postgres) initCluster(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(p.dataDir, "PG_VERSION")); err == nil {
		return p.giveToOwner(p.dataDir, true)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("init postgres: %w", err)
	}
	t0 := time.Now()
	tmp := p.dataDir + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("init postgres: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("init postgres: %w", err)
	}
	if err := p.giveToOwner(tmp, false); err != nil {
		return err
	}
	out, err := p.command(ctx, "initdb", "-D", tmp, "-U", postgresSuperuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", tmp, err, tail(out))
	}
	conf, err := os.OpenFile(filepath.Join(tmp, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("init postgres: %w", err)
	}
	_, err = io.WriteString(conf, "\n# Written by gyre at every start.\ninclude_if_exists = 'gyre.conf'\n")
	if err := errors.Join(err, conf.Close()); err != nil {
		return fmt.Errorf("init postgres: %w", err)
	}
	if err := os.Rename(tmp, p.dataDir); err != nil {
		return fmt.Errorf("init postgres: %w", err)
	}
	p.log.Info("postgres cluster created", "dir", p.dataDir, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// start runs pg_ctl start and waits until the server accepts connections.
func (p *Postgres) start(ctx context.Context, opts PostgresOptions) error {
	logPath := filepath.Join(p.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	_ = logFile.Close()
	if err := p.giveToOwner(logPath, false); err != nil {
		return err
	}
	secs := strconv.Itoa(int(postgresStartTimeout.Seconds()))
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = p.choosePort(); err != nil {
				return err
			}
		}
		if err := p.writeConf(port, opts.Ephemeral); err != nil {
			return err
		}
		var offset int64
		if fi, err := os.Stat(logPath); err == nil {
			offset = fi.Size()
		}
		out, err := p.command(ctx, "pg_ctl", "start", "-D", p.dataDir, "-l", logPath, "-w", "-t", secs, "-s").CombinedOutput()
		if err == nil {
			p.setPort(port)
			return nil
		}
		logTail := readTail(logPath, offset)
		// Another process can take a free port between our check and the server's bind.
		if opts.Port == 0 && attempt < 3 && strings.Contains(logTail, "Address already in use") {
			p.log.Warn("postgres port taken, trying another", "port", port)
			continue
		}
		return fmt.Errorf("start postgres in %s: %w: %s\n%s:\n%s", p.dataDir, err, bytes.TrimSpace(out), logPath, logTail)
	}
}

// choosePort returns the port remembered in Dir/port while it is free, else a new free one (and remembers it).
func (p *Postgres) choosePort() (int, error) {
	path := filepath.Join(p.dir, "port")
	if b, err := os.ReadFile(path); err == nil {
		if port, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && portFree(port) {
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick postgres port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if err := os.WriteFile(path, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("remember postgres port: %w", err)
	}
	return port, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// writeConf rewrites Dir/data/gyre.conf, which postgresql.conf includes, so each start applies the current options.
func (p *Postgres) writeConf(port int, ephemeral bool) error {
	var b strings.Builder
	b.WriteString("# Rewritten by gyre at every start: put your own settings in postgresql.conf.\n")
	b.WriteString("listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&b, "port = %d\n", port)
	// Unix socket paths are limited to 107 bytes; a deep Dir goes without one (TCP is what gyre uses).
	if len(p.dataDir)+len("/.s.PGSQL.65535") < 108 {
		fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", strings.ReplaceAll(p.dataDir, "'", "''"))
	} else {
		b.WriteString("unix_socket_directories = ''\n")
	}
	b.WriteString("max_connections = 200\n")
	if ephemeral {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	path := filepath.Join(p.dataDir, "gyre.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write postgres settings: %w", err)
	}
	return p.giveToOwner(path, false)
}

// createDatabase creates the database "gyre" when it is missing, waiting for the server to accept connections.
func (p *Postgres) createDatabase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, postgresStartTimeout)
	defer cancel()
	admin := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", postgresSuperuser, p.Port)
	var conn *pgx.Conn
	for {
		var err error
		if conn, err = pgx.Connect(ctx, admin); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connect to postgres on port %d: %w", p.Port, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", postgresDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", postgresDatabase, err)
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+postgresDatabase)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P04" {
		return nil // another process created it meanwhile
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", postgresDatabase, err)
	}
	return nil
}

// runningServer reads Dir/data/postmaster.pid and reports the server serving this
// directory, if any. A pid file whose pid is a zombie (a container whose init does
// not reap) or now belongs to another process of the server's user (recycled after a
// crash or a container restart) is removed: postgres would refuse to start on it,
// since it cannot tell that process from an old server of its own.
func (p *Postgres) runningServer() (pid, port int, running bool, err error) {
	pidPath := filepath.Join(p.dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read %s: %w", pidPath, err)
	}
	lines := strings.Split(string(b), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return 0, 0, false, fmt.Errorf("read %s: bad pid %q", pidPath, lines[0])
	}
	// A dead pid is left to postgres: it removes the file itself after checking that no old backend still uses the shared memory.
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return 0, 0, false, nil
	}
	if !p.serves(pid) {
		// The unix socket's lock file names the same dead server.
		socketLocks, _ := filepath.Glob(filepath.Join(p.dataDir, ".s.PGSQL.*.lock"))
		for _, path := range append(socketLocks, pidPath) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, 0, false, fmt.Errorf("remove stale %s: %w", path, err)
			}
		}
		p.log.Warn("removed stale postmaster.pid", "dir", p.dataDir, "pid", pid)
		return 0, 0, false, nil
	}
	if len(lines) > 3 {
		port, err = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	if len(lines) <= 3 || err != nil {
		return 0, 0, false, fmt.Errorf("postgres (pid %d) on %s is still starting: try again", pid, p.dataDir)
	}
	return pid, port, true, nil
}

// serves reports whether the live process pid is a postgres server on p.dataDir: the postmaster's working directory is its data directory.
func (p *Postgres) serves(pid int) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if errors.Is(err, fs.ErrPermission) {
		// Without ptrace rights (root in a container lacks CAP_SYS_PTRACE) trust the name: never start a second server on live data.
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return err == nil && strings.TrimSpace(string(comm)) == "postgres"
	}
	if err != nil {
		return false // exited meanwhile, or a zombie
	}
	want, err := filepath.EvalSymlinks(p.dataDir)
	return err == nil && cwd == want
}

// command runs a PostgreSQL program from Dir, as the unprivileged server user when we are root.
func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, name), args...)
	cmd.Dir = p.dir
	if p.owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: p.owner.uid, Gid: p.owner.gid, Groups: p.owner.groups}}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// giveToOwner hands path (and, with tree, everything under it when its top is not yet the server user's) to the server user when we are root.
func (p *Postgres) giveToOwner(path string, tree bool) error {
	if p.owner == nil {
		return nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == p.owner.uid && st.Gid == p.owner.gid {
		return nil
	}
	if !tree {
		if err := os.Lchown(path, int(p.owner.uid), int(p.owner.gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		return nil
	}
	return filepath.WalkDir(path, func(sub string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(sub, int(p.owner.uid), int(p.owner.gid)); err != nil {
			return fmt.Errorf("chown %s: %w", sub, err)
		}
		return nil
	})
}

// serverUser is the account that runs PostgreSQL's programs when we run as root.
type serverUser struct {
	name     string
	uid, gid uint32
	groups   []uint32
}

// lookupServerUser returns nil when we are not root, else the user "postgres" or, lacking it, "nobody".
func lookupServerUser() (*serverUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("user %s: %w", name, err)
		}
		su := &serverUser{name: name, uid: uint32(uid), gid: uint32(gid)}
		gids, _ := u.GroupIds()
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				su.groups = append(su.groups, uint32(n))
			}
		}
		return su, nil
	}
	return nil, errors.New(`postgres refuses to run as root and there is no user "postgres" or "nobody" to run it as: ` +
		"create one (useradd --system postgres) or set GYRE_DATABASE_URL")
}

// checkCanEnter checks that u may search dir and every directory above it, so that the server can reach its data.
func (u *serverUser) checkCanEnter(dir string) error {
	for path := dir; ; path = filepath.Dir(path) {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("start postgres: %w", err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !u.canSearch(fi.Mode().Perm(), st.Uid, st.Gid) {
			return fmt.Errorf("start postgres in %s: we run as root, so postgres runs as user %q, which cannot enter %s (mode %s, owner uid %d): "+
				"use a directory that user can reach (for example under /var/lib or %s) or allow it in (chmod o+x %s)",
				dir, u.name, path, fi.Mode().Perm(), st.Uid, os.TempDir(), path)
		}
		if path == filepath.Dir(path) {
			return nil
		}
	}
}

func (u *serverUser) canSearch(perm fs.FileMode, uid, gid uint32) bool {
	switch {
	case uid == u.uid:
		return perm&0o100 != 0
	case gid == u.gid || slices.Contains(u.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// readTail returns the last lines written to path after offset, for error messages.
func readTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<20))
	if err != nil {
		return err.Error()
	}
	return tail(b)
}

// tail keeps the last 20 lines of out.
func tail(out []byte) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
