// Package gyretest starts a real gyre process for a test: its own Postgres
// database (pgtest), an in-process NATS JetStream and S3 server in a temp dir,
// and the requested targets on free loopback ports.
package gyretest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/devstack"
	"github.com/gyreml/gyre/pkg/gyre"
	"github.com/gyreml/gyre/pkg/pgtest"
)

// Env is a running gyre process and clients of it.
type Env struct {
	Process     *gyre.Process
	Config      config.Config
	DatabaseURL string
	// Conn is a gRPC client of the process.
	Conn *grpc.ClientConn
	// BaseURL is the HTTP address, e.g. http://127.0.0.1:41234.
	BaseURL string
	// JS is a separate client of the NATS server, for watching events.
	JS jetstream.JetStream
}

// Start runs targets (default "all") until the test ends.
func Start(t testing.TB, targets ...string) *Env {
	t.Helper()
	return StartWith(t, nil, targets...)
}

// StartWith is Start with a chance to change the configuration first.
func StartWith(t testing.TB, configure func(*config.Config), targets ...string) *Env {
	t.Helper()
	if len(targets) == 0 {
		targets = []string{gyre.All}
	}
	dir := t.TempDir()
	natsSrv, err := devstack.StartNATS(devstack.NATSOptions{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatalf("gyretest: nats: %v", err)
	}
	t.Cleanup(natsSrv.Stop)
	s3, err := devstack.StartS3(devstack.S3Options{Dir: filepath.Join(dir, "s3")})
	if err != nil {
		t.Fatalf("gyretest: s3: %v", err)
	}
	t.Cleanup(func() { _ = s3.Stop(context.Background()) })

	cfg := config.Default()
	cfg.Targets = targets
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Database.URL = pgtest.DatabaseURL(t)
	cfg.NATS.URL = natsSrv.URL
	cfg.S3.Endpoint, cfg.S3.AccessKey, cfg.S3.SecretKey = s3.Endpoint, s3.AccessKey, s3.SecretKey
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Ingestion.PseudonymizationKey = "gyretest-pseudonymization-key"
	cfg.Ingestion.SpoolDir = filepath.Join(dir, "spool")
	if configure != nil {
		configure(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("gyretest: config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("GYRE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := gyre.New(cfg, log)
	if err != nil {
		t.Fatalf("gyretest: %v", err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("gyretest: start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("gyretest: stop: %v", err)
		}
	})
	conn, err := grpc.NewClient(p.Server.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("gyretest: dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	nc, err := nats.Connect(natsSrv.URL)
	if err != nil {
		t.Fatalf("gyretest: nats client: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("gyretest: jetstream: %v", err)
	}
	return &Env{Process: p, Config: cfg, DatabaseURL: cfg.Database.URL, Conn: conn, BaseURL: "http://" + p.Server.HTTPAddr(), JS: js}
}
