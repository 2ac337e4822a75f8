package main

// Needs the PostgreSQL server binaries: `gyre dev` starts its own private Postgres.

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// reachableDir is a temp dir the unprivileged Postgres user can enter when tests run as root.
func reachableDir(t *testing.T) string {
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDevStartsServesStopsAndRestartsOnTheSameState(t *testing.T) {
	t.Setenv("GYRE_DATABASE_URL", "")
	os.Unsetenv("GYRE_DATABASE_URL")
	state := filepath.Join(reachableDir(t), "state")
	for round := 1; round <= 2; round++ {
		httpAddr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() { done <- runDev(ctx, out, state, serverFlags{httpAddr: httpAddr, grpcAddr: freeAddr(t)}) }()

		base := "http://" + httpAddr
		waitDevReady(t, base, done, out)
		if !strings.Contains(out.String(), "Gyre dev is ready") || !strings.Contains(out.String(), base[len("http://"):]) {
			t.Fatalf("dev did not say where it runs:\n%s", out)
		}
		if round == 1 {
			resp, err := http.Post(base+"/v1/models", "application/json", strings.NewReader(`{"name": "survives-restart"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("create model: %d", resp.StatusCode)
			}
		} else {
			resp, err := http.Get(base + "/v1/models/survives-restart")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("state lost across restart: GET model = %d", resp.StatusCode)
			}
		}
		cancel() // what SIGTERM does through signal.NotifyContext
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: dev stopped with %v", round, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: dev did not stop", round)
		}
		if _, err := http.Get(base + "/livez"); err == nil {
			t.Fatalf("round %d: still serving after stop", round)
		}
	}
}

func waitDevReady(t *testing.T, base string, done chan error, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("dev exited before ready: %v\n%s", err, out)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("dev not ready in time:\n%s", out)
}
