// Package gyre assembles a gyre process from its modules. modules.go is the
// module table: which targets exist, what each needs, and how each starts and
// stops. Add a service here and nowhere else.
package gyre

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gyreml/gyre/migrations"
	"github.com/gyreml/gyre/pkg/app"
	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/inference"
	"github.com/gyreml/gyre/pkg/kube"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	inferencepb "github.com/gyreml/gyre/pkg/pb/inference"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/server"
	"github.com/gyreml/gyre/pkg/telemetry"
	"github.com/gyreml/gyre/services/deployer"
	"github.com/gyreml/gyre/services/evaluator"
	"github.com/gyreml/gyre/services/ingestion"
	"github.com/gyreml/gyre/services/monitor"
	"github.com/gyreml/gyre/services/registry"
	"github.com/gyreml/gyre/services/scheduler"
)

// Module and target names.
const (
	Tracing   = "tracing"
	Server    = "server"
	Postgres  = "postgres"
	NATS      = "nats"
	S3        = "s3"
	Registry  = "registry"
	Ingestion = "ingestion"
	Scheduler = "scheduler"
	Evaluator = "evaluator"
	Deployer  = "deployer"
	Inference = "inference"
	Monitor   = "monitor"
	All       = "all"
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
	// modules this process runs, in start order.
	modules []string
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
		{Name: Ingestion, Deps: []string{Server, Postgres, NATS, S3}, Init: p.initIngestion},
		{Name: Scheduler, Deps: []string{Server, Postgres, NATS}, Init: p.initScheduler},
		{Name: Evaluator, Deps: []string{Server, Postgres, NATS, S3}, Init: p.initEvaluator},
		{Name: Inference, Deps: []string{Server, NATS, S3}, Init: p.initInference},
		{Name: Deployer, Deps: []string{Server, Postgres, NATS, S3}, Init: p.initDeployer},
		{Name: Monitor, Deps: []string{Server, Postgres, NATS, S3}, Init: p.initMonitor},
		{Name: All, Deps: []string{Registry, Ingestion, Scheduler, Evaluator, Inference, Deployer, Monitor}, Init: noService},
	}
	m, err := app.NewManager(log, mods...)
	if err != nil {
		return nil, err
	}
	p.manager = m
	return p, nil
}

// Start starts the configured targets (dependencies first).
func (p *Process) Start(ctx context.Context) error {
	order, err := p.manager.Order(p.Config.Targets)
	if err != nil {
		return err
	}
	p.modules = order
	return p.manager.Start(ctx, p.Config.Targets)
}

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

// eventLoop runs a service's background event work: its outbox relay and any
// consumers. Stopping it stops the consumers, flushes the outbox and closes
// the service's pool.
type eventLoop struct {
	relay     *events.Relay
	consumers []*events.Consumer
	// runners are a service's own background loops.
	runners []func(context.Context) error
	pool    *pgxpool.Pool
	log     *slog.Logger
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (p *Process) newEventLoop(pool *pgxpool.Pool, consumers ...*events.Consumer) *eventLoop {
	for _, c := range consumers {
		c.Pool, c.JS, c.Logger = pool, p.JS, p.Log
	}
	return &eventLoop{relay: &events.Relay{Pool: pool, JS: p.JS, Logger: p.Log}, consumers: consumers, pool: pool, log: p.Log}
}

func (l *eventLoop) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Go(func() {
		if err := l.relay.Run(ctx); err != nil && ctx.Err() == nil {
			l.log.Error("outbox relay stopped", "err", err)
		}
	})
	for _, c := range l.consumers {
		l.wg.Go(func() {
			if err := c.Run(ctx); err != nil && ctx.Err() == nil {
				l.log.Error("event consumer stopped", "consumer", c.Name, "err", err)
			}
		})
	}
	for _, run := range l.runners {
		l.wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				l.log.Error("service loop stopped", "err", err)
			}
		})
	}
	return nil
}

func (l *eventLoop) Stop(ctx context.Context) error {
	l.cancel()
	l.wg.Wait()
	err := l.relay.Flush(ctx)
	l.pool.Close()
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
	return p.newEventLoop(pool, &events.Consumer{Name: "registry", Subjects: registry.ConsumedSubjects, Handler: svc.HandleEvent}), nil
}

// serviceConn reaches another service: in this process, or at its
// configured address.
func (p *Process) serviceConn(target, addr string) (*grpc.ClientConn, error) {
	if addr != "" {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithStatsHandler(otelgrpc.NewClientHandler()), grpc.WithChainUnaryInterceptor(server.PropagateRequestInfo))
		if err != nil {
			return nil, fmt.Errorf("%s client %s: %w", target, addr, err)
		}
		return conn, nil
	}
	if !slices.Contains(p.modules, target) {
		return nil, fmt.Errorf("the %[1]s is neither a target of this process nor configured (services.%[1]s / GYRE_SERVICES_%[2]s)",
			target, strings.ToUpper(target))
	}
	return p.Server.Conn, nil
}

func (p *Process) registryClient() (registryv1.RegistryServiceClient, error) {
	conn, err := p.serviceConn(Registry, p.Config.Services.Registry)
	if err != nil {
		return nil, err
	}
	return registryv1.NewRegistryServiceClient(conn), nil
}

// registryAndIngestion are the clients of the services a scheduler or an
// evaluator reads from.
func (p *Process) registryAndIngestion() (registryv1.RegistryServiceClient, ingestionv1.IngestionServiceClient, error) {
	reg, err := p.registryClient()
	if err != nil {
		return nil, nil, err
	}
	conn, err := p.serviceConn(Ingestion, p.Config.Services.Ingestion)
	if err != nil {
		return nil, nil, err
	}
	return reg, ingestionv1.NewIngestionServiceClient(conn), nil
}

func (p *Process) initEvaluator(ctx context.Context) (app.Service, error) {
	reg, ing, err := p.registryAndIngestion()
	if err != nil {
		return nil, err
	}
	pool, err := p.servicePool(ctx, evaluator.Schema)
	if err != nil {
		return nil, err
	}
	svc := evaluator.New(pool, p.Blobs, reg, ing, p.Config.Ingestion.SpoolDir, p.Log.With("service", Evaluator))
	evaluatorv1.RegisterEvaluatorServiceServer(p.Server.GRPC, svc)
	if err := evaluatorv1.RegisterEvaluatorServiceHandler(ctx, p.Server.Gateway, p.Server.Conn); err != nil {
		pool.Close()
		return nil, err
	}
	p.Server.SetServing(evaluatorv1.EvaluatorService_ServiceDesc.ServiceName)
	loop := p.newEventLoop(pool, &events.Consumer{Name: "evaluator", Subjects: evaluator.ConsumedSubjects, Handler: svc.HandleEvent})
	loop.runners = append(loop.runners, svc.Run)
	return loop, nil
}

func (p *Process) initScheduler(ctx context.Context) (app.Service, error) {
	reg, ing, err := p.registryAndIngestion()
	if err != nil {
		return nil, err
	}
	pool, err := p.servicePool(ctx, scheduler.Schema)
	if err != nil {
		return nil, err
	}
	c := p.Config.Scheduler
	svc := scheduler.New(pool, reg, ing, scheduler.Config{
		LeaseDuration: c.LeaseDuration, MaxRunningPerPipeline: c.MaxRunningPerPipeline, RetryBackoff: c.RetryBackoff,
	}, p.Log.With("service", Scheduler))
	schedulerv1.RegisterSchedulerServiceServer(p.Server.GRPC, svc)
	schedulerv1.RegisterWorkerServiceServer(p.Server.GRPC, svc.Workers())
	if err := schedulerv1.RegisterSchedulerServiceHandler(ctx, p.Server.Gateway, p.Server.Conn); err != nil {
		pool.Close()
		return nil, err
	}
	p.Server.SetServing(schedulerv1.SchedulerService_ServiceDesc.ServiceName)
	p.Server.SetServing(schedulerv1.WorkerService_ServiceDesc.ServiceName)
	loop := p.newEventLoop(pool, &events.Consumer{Name: "scheduler", Subjects: scheduler.ConsumedSubjects, Handler: svc.HandleEvent})
	loop.runners = append(loop.runners, svc.Run)
	return loop, nil
}

func (p *Process) initIngestion(ctx context.Context) (app.Service, error) {
	reg, err := p.registryClient()
	if err != nil {
		return nil, err
	}
	pool, err := p.servicePool(ctx, ingestion.Schema)
	if err != nil {
		return nil, err
	}
	c := p.Config.Ingestion
	svc, err := ingestion.New(pool, p.Blobs, reg, ingestion.Config{
		MaxUploadBytes: c.MaxUploadBytes, PseudonymizationKey: []byte(c.PseudonymizationKey), SpoolDir: c.SpoolDir,
	}, p.Log.With("service", Ingestion))
	if err != nil {
		pool.Close()
		return nil, err
	}
	ingestionv1.RegisterIngestionServiceServer(p.Server.GRPC, svc)
	if err := ingestionv1.RegisterIngestionServiceHandler(ctx, p.Server.Gateway, p.Server.Conn); err != nil {
		pool.Close()
		return nil, err
	}
	p.Server.Handle(ingestion.UploadPattern, http.HandlerFunc(svc.ServeUpload))
	p.Server.SetServing(ingestionv1.IngestionService_ServiceDesc.ServiceName)
	return p.newEventLoop(pool), nil
}

func (p *Process) initDeployer(ctx context.Context) (app.Service, error) {
	reg, ing, err := p.registryAndIngestion()
	if err != nil {
		return nil, err
	}
	conn, err := p.serviceConn(Inference, p.Config.Services.Inference)
	if err != nil {
		return nil, err
	}
	targets := map[string]deployer.Target{pipeline.TargetLocal: deployer.NewLocal(conn)}
	// The kubernetes target is there when the deployer has a cluster: a
	// kubeconfig, or the service account of the pod it runs in.
	if kc := p.Config.Deployer.Kubernetes; kc.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cs, err := kube.NewClient(kc.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("deployer.kubernetes: %w", err)
		}
		targets[pipeline.TargetKubernetes] = deployer.NewKubernetes(cs, kc)
	}
	pool, err := p.servicePool(ctx, deployer.Schema)
	if err != nil {
		return nil, err
	}
	c := p.Config.Deployer
	svc := deployer.New(pool, p.Blobs, reg, ing, targets, deployer.Config{TickInterval: c.TickInterval, WorkDir: p.Config.Inference.BundleDir},
		p.Log.With("service", Deployer))
	deployerv1.RegisterDeployerServiceServer(p.Server.GRPC, svc)
	if err := deployerv1.RegisterDeployerServiceHandler(ctx, p.Server.Gateway, p.Server.Conn); err != nil {
		pool.Close()
		return nil, err
	}
	p.Server.SetServing(deployerv1.DeployerService_ServiceDesc.ServiceName)
	loop := p.newEventLoop(pool, &events.Consumer{Name: "deployer", Subjects: deployer.ConsumedSubjects, Handler: svc.HandleEvent})
	loop.runners = append(loop.runners, svc.Run)
	return loop, nil
}

func (p *Process) initMonitor(ctx context.Context) (app.Service, error) {
	reg, ing, err := p.registryAndIngestion()
	if err != nil {
		return nil, err
	}
	pool, err := p.servicePool(ctx, monitor.Schema)
	if err != nil {
		return nil, err
	}
	c := p.Config.Monitor
	var sinks []monitor.Sink
	for _, u := range c.Sinks.WebhookURLs {
		sinks = append(sinks, monitor.Sink{URL: u, Format: monitor.FormatJSON})
	}
	for _, u := range c.Sinks.SlackURLs {
		sinks = append(sinks, monitor.Sink{URL: u, Format: monitor.FormatSlack})
	}
	svc, err := monitor.New(pool, p.Blobs, reg, ing, monitor.Config{
		TickInterval: c.TickInterval, CloseDelay: c.CloseDelay, LabelHorizon: c.LabelHorizon, Retention: c.Retention,
		ResolveAfter: c.ResolveAfter, ResolveMargin: c.ResolveMargin, AlertEnvironment: c.AlertEnvironment,
		Sinks: sinks, SigningSecret: []byte(c.Sinks.SigningSecret), MaxAttempts: c.Sinks.MaxAttempts,
		RetryBackoff: c.Sinks.RetryBackoff, MaxBackoff: c.Sinks.MaxBackoff, Timeout: c.Sinks.Timeout,
	}, p.Metrics, p.Log.With("service", Monitor))
	if err != nil {
		pool.Close()
		return nil, err
	}
	monitorv1.RegisterMonitorServiceServer(p.Server.GRPC, svc)
	if err := monitorv1.RegisterMonitorServiceHandler(ctx, p.Server.Gateway, p.Server.Conn); err != nil {
		pool.Close()
		return nil, err
	}
	p.Server.SetServing(monitorv1.MonitorService_ServiceDesc.ServiceName)
	loop := p.newEventLoop(pool, &events.Consumer{Name: "monitor", Subjects: monitor.ConsumedSubjects, Handler: svc.HandleEvent})
	loop.runners = append(loop.runners, svc.Run, svc.RunDeliveries)
	return loop, nil
}

// initInference runs the data plane: OIP v2 over REST (/v2, /staging/v2)
// and gRPC, the control API the deployer drives, and the prediction log.
func (p *Process) initInference(ctx context.Context) (app.Service, error) {
	svc, err := inference.New(inference.Options{
		Config: p.Config.Inference, Blobs: p.Blobs, JS: p.JS, Registerer: p.Metrics,
		Logger: p.Log.With("service", Inference), Version: BuildVersion,
	})
	if err != nil {
		return nil, err
	}
	if err := svc.SetStaticRoute(ctx, p.Config.Inference.Static); err != nil {
		return nil, fmt.Errorf("inference.static: %w", err)
	}
	inferencepb.RegisterGRPCInferenceServiceServer(p.Server.GRPC, svc.GRPC())
	inferencev1.RegisterInferenceControlServiceServer(p.Server.GRPC, svc.Control())
	svc.Mount(p.Server)
	p.Server.SetServing(inferencepb.GRPCInferenceService_ServiceDesc.ServiceName)
	p.Server.SetServing(inferencev1.InferenceControlService_ServiceDesc.ServiceName)
	return svc, nil
}

// BuildVersion is the gyre version the inference server reports (set by main).
var BuildVersion = "dev"
