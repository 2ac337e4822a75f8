// Package gyre assembles a gyre process from its modules. modules.go is the
// module table: which targets exist, what each needs, and how each starts and
// stops. Add a service here and nowhere else.
package gyre

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gyreml/gyre/migrations"
	"github.com/gyreml/gyre/pkg/app"
	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/events"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/server"
	"github.com/gyreml/gyre/pkg/telemetry"
	"github.com/gyreml/gyre/services/registry"
)

// Module and target names.
const (
	Tracing  = "tracing"
	Server   = "server"
	Postgres = "postgres"
	NATS     = "nats"
	S3       = "s3"
	Registry = "registry"
	All      = "all"
)

// Process is one running gyre process: the modules its targets need, and what
// they share.
type Process struct {
	Config   config.Config
	Log      *slog.Logger
	Metrics  *prometheus.Registry
	Server   *server.Server
	NATSConn *nats.Conn
	JS       jetstream.JetStream
	Blobs    *blob.Store

	manager *app.Manager
}

// New builds the module table for cfg; nothing starts until Start.
func New(cfg config.Config, log *slog.Logger) (*Process, error) {
	p := &Process{Config: cfg, Log: log, Metrics: telemetry.NewRegistry()}
	mods := []app.Module{
		{Name: Tracing, Init: p.initTracing},
		{Name: Server, Deps: []string{Tracing}, Init: p.initServer},
		{Name: Postgres, Deps: []string{Server}, Init: p.initPostgres},
		{Name: NATS, Deps: []string{Server}, Init: p.initNATS},
		{Name: S3, Deps: []string{Server}, Init: p.initS3},
		{Name: Registry, Deps: []string{Server, Postgres, NATS}, Init: p.initRegistry},
		{Name: All, Deps: []string{Registry, S3}, Init: noService},
	}
	m, err := app.NewManager(log, mods...)
	if err != nil {
		return nil, err
	}
	p.manager = m
	return p, nil
}

// Start starts the configured targets (dependencies first).
func (p *Process) Start(ctx context.Context) error { return p.manager.Start(ctx, p.Config.Targets) }

// Stop drains and stops everything within the configured shutdown timeout.
func (p *Process) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.Config.ShutdownTimeout)
	defer cancel()
	return p.manager.Stop(ctx)
}

func noService(context.Context) (app.Service, error) { return nil, nil }

func (p *Process) initTracing(ctx context.Context) (app.Service, error) {
	shutdown, err := telemetry.SetupTracing(ctx, "gyre", p.Config.Tracing.OTLPEndpoint, p.Config.Tracing.SampleRatio)
	if err != nil {
		return nil, err
	}
	return app.Funcs{StopFunc: shutdown}, nil
}

func (p *Process) initServer(context.Context) (app.Service, error) {
	srv, err := server.New(server.Options{GRPCAddr: p.Config.GRPCAddr, HTTPAddr: p.Config.HTTPAddr, Logger: p.Log, Registry: p.Metrics})
	if err != nil {
		return nil, err
	}
	p.Server = srv
	return serverService{srv}, nil
}

// serverService drains (stops taking requests, finishes in-flight ones)
// before any other module stops.
type serverService struct{ *server.Server }

func (s serverService) Drain(ctx context.Context) error { return s.Server.Stop(ctx) }
func (s serverService) Stop(context.Context) error      { return nil }

func (p *Process) initPostgres(ctx context.Context) (app.Service, error) {
	// Each service opens its own pool on its own schema; this module only
	// proves the database is reachable and reports readiness.
	pool, err := pg.Connect(ctx, p.Config.Database.URL, "public")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	p.Server.AddReadiness("postgres", pool.Ping)
	return app.Funcs{StopFunc: func(context.Context) error { pool.Close(); return nil }}, nil
}

func (p *Process) initNATS(ctx context.Context) (app.Service, error) {
	nc, err := nats.Connect(p.Config.NATS.URL, nats.Name("gyre"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", p.Config.NATS.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := events.EnsureStream(ctx, js); err != nil {
		nc.Close()
		return nil, err
	}
	p.NATSConn, p.JS = nc, js
	p.Server.AddReadiness("nats", func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("nats %s", s)
		}
		return nil
	})
	return app.Funcs{StopFunc: func(context.Context) error { return nc.Drain() }}, nil
}

func (p *Process) initS3(ctx context.Context) (app.Service, error) {
	c := p.Config.S3
	store, err := blob.Open(ctx, blob.Config{Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Bucket: c.Bucket, Region: c.Region, Secure: c.Secure})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	p.Blobs = store
	p.Server.AddReadiness("s3", store.Ping)
	return nil, nil
}

// servicePool opens a service's pool on its schema and applies its migrations.
func (p *Process) servicePool(ctx context.Context, schema string) (*pgxpool.Pool, error) {
	pool, err := pg.Connect(ctx, p.Config.Database.URL, schema)
	if err != nil {
		return nil, err
	}
	if err := pg.Migrate(ctx, pool, schema, migrations.FS, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate %s: %w", schema, err)
	}
	return pool, nil
}

// relay runs a service's outbox relay; stopping it flushes what is pending.
type relay struct {
	r      *events.Relay
	pool   *pgxpool.Pool
	cancel context.CancelFunc
	done   chan struct{}
	log    *slog.Logger
}

func (p *Process) newRelay(pool *pgxpool.Pool) *relay {
	return &relay{r: &events.Relay{Pool: pool, JS: p.JS, Logger: p.Log}, pool: pool, log: p.Log, done: make(chan struct{})}
}

func (r *relay) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		if err := r.r.Run(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("outbox relay stopped", "err", err)
		}
	}()
	return nil
}

func (r *relay) Stop(ctx context.Context) error {
	r.cancel()
	<-r.done
	err := r.r.Flush(ctx)
	r.pool.Close()
	if err != nil {
		return fmt.Errorf("flush outbox: %w", err)
	}
	return nil
}

func (p *Process) initRegistry(ctx context.Context) (app.Service, error) {
	pool, err := p.servicePool(ctx, registry.Schema)
	if err != nil {
		return nil, err
	}
	svc := registry.New(pool, p.Log.With("service", Registry))
	registryv1.RegisterRegistryServiceServer(p.Server.GRPC, svc)
	if err := registryv1.RegisterRegistryServiceHandler(ctx, p.Server.Gateway, p.Server.Conn); err != nil {
		pool.Close()
		return nil, err
	}
	p.Server.SetServing(registryv1.RegistryService_ServiceDesc.ServiceName)
	return p.newRelay(pool), nil
}
