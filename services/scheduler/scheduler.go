// Package scheduler is the trainer-scheduler: it turns triggers into
// training jobs, queues them in Postgres, hands them to workers that pull
// them under a lease, and registers the model version a job produced.
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// Schema is the scheduler's Postgres schema (migrations/scheduler).
const Schema = "scheduler"

const source = "gyre/scheduler"

// notifyChannel wakes polling workers when a job may have become claimable.
const notifyChannel = "gyre_jobs"

// Config tunes the queue.
type Config struct {
	// LeaseDuration: a worker that does not heartbeat within it loses its job.
	LeaseDuration time.Duration
	// MaxRunningPerPipeline bounds concurrent jobs of one pipeline.
	MaxRunningPerPipeline int
	// RetryBackoff is the wait before attempt 2; it doubles per attempt.
	RetryBackoff time.Duration
	// ReapInterval is how often expired leases and timeouts are checked.
	ReapInterval time.Duration
}

func (c *Config) defaults() {
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 30 * time.Second
	}
	if c.MaxRunningPerPipeline <= 0 {
		c.MaxRunningPerPipeline = 4
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 5 * time.Second
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = time.Second
	}
}

// Service implements SchedulerService and WorkerService.
type Service struct {
	schedulerv1.UnimplementedSchedulerServiceServer
	schedulerv1.UnimplementedWorkerServiceServer

	pool      *pgxpool.Pool
	registry  registryv1.RegistryServiceClient
	ingestion ingestionv1.IngestionServiceClient
	cfg       Config
	log       *slog.Logger
	wake      *broadcast
}

func New(pool *pgxpool.Pool, registry registryv1.RegistryServiceClient, ingestion ingestionv1.IngestionServiceClient, cfg Config, log *slog.Logger) *Service {
	cfg.defaults()
	return &Service{pool: pool, registry: registry, ingestion: ingestion, cfg: cfg, log: log, wake: newBroadcast()}
}

// Workers exposes the worker-facing API (a separate gRPC service).
func (s *Service) Workers() schedulerv1.WorkerServiceServer { return workerAPI{s} }

// Run listens for queue changes (LISTEN/NOTIFY, so a queued job reaches an
// idle worker at once, not at the next poll) and reaps expired leases and
// timed-out jobs, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.listen(ctx) })
	wg.Go(func() { s.reapLoop(ctx) })
	wg.Go(func() { s.scheduleLoop(ctx) })
	wg.Wait()
	return nil
}

func (s *Service) listen(ctx context.Context) {
	for ctx.Err() == nil {
		if err := s.listenOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("job notifications interrupted", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *Service) listenOnce(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	// Anything queued while we were not listening: wake the pollers once.
	s.wake.signal()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		s.wake.signal()
	}
}

func notify(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", notifyChannel)
	return err
}

// broadcast wakes every goroutine waiting on the current channel.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}
