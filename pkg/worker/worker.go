// Package worker is `gyre worker`: it advertises its CPUs, memory and GPUs to
// the scheduler, pulls training jobs under a lease, runs them (a built-in
// trainer, or any program through the file contract), uploads the model
// bundle and reports the result. It needs only the scheduler's address and
// the artifact store: no database, no broker.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gyreml/gyre/pkg/blob"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// Config is what a worker needs.
type Config struct {
	// Scheduler is the scheduler's gRPC address (host:port).
	Scheduler string
	Name      string
	S3        blob.Config
	// WorkDir holds each job's files while it runs (default: the OS temp dir).
	WorkDir string
	Labels  map[string]string
	// CPU and MemoryMiB override what is detected (0: detect).
	CPU       float64
	MemoryMiB int64
	Logger    *slog.Logger
	Version   string
}

// Worker runs jobs one at a time.
type Worker struct {
	cfg   Config
	conn  *grpc.ClientConn
	api   schedulerv1.WorkerServiceClient
	blobs *blob.Store
	log   *slog.Logger
	id    string
	lease time.Duration
	gpus  []*schedulerv1.GPU
}

func New(ctx context.Context, cfg Config) (*Worker, error) {
	if cfg.Scheduler == "" {
		return nil, errors.New("worker: the scheduler's address is required (--scheduler)")
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CPU == 0 {
		cfg.CPU = float64(runtime.NumCPU())
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = detectMemoryMiB()
	}
	blobs, err := blob.Open(ctx, cfg.S3)
	if err != nil {
		return nil, fmt.Errorf("worker: artifact store: %w", err)
	}
	conn, err := grpc.NewClient(cfg.Scheduler, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("worker: scheduler %s: %w", cfg.Scheduler, err)
	}
	return &Worker{cfg: cfg, conn: conn, api: schedulerv1.NewWorkerServiceClient(conn), blobs: blobs, log: cfg.Logger,
		gpus: DetectGPUs(ctx)}, nil
}

// Run registers and pulls jobs until ctx ends; a job running then is
// stopped and reported as failed, so the scheduler retries it elsewhere.
func (w *Worker) Run(ctx context.Context) error {
	defer w.conn.Close()
	if err := w.register(ctx); err != nil {
		return err
	}
	for ctx.Err() == nil {
		// The scheduler answers at once when a job is queued (NOTIFY) or a
		// queued job's notBefore passes; the wait only bounds how long a
		// lost notification connection can delay a job.
		resp, err := w.api.PollJob(ctx, &schedulerv1.PollJobRequest{WorkerId: w.id, Wait: durationpb.New(pollWait)})
		switch {
		case ctx.Err() != nil:
			return nil
		case status.Code(err) == codes.NotFound:
			// The scheduler forgot us (e.g. its database was reset): register again.
			if err := w.register(ctx); err != nil {
				return err
			}
			continue
		case err != nil:
			w.log.Warn("poll failed", "err", err)
			sleep(ctx, 2*time.Second)
			continue
		}
		if resp.GetJob() != nil {
			w.run(ctx, resp)
		}
	}
	return nil
}

func (w *Worker) register(ctx context.Context) error {
	for {
		resp, err := w.api.RegisterWorker(ctx, &schedulerv1.RegisterWorkerRequest{
			Name: w.cfg.Name, Cpu: w.cfg.CPU, MemoryMib: w.cfg.MemoryMiB, Gpus: w.gpus, Labels: w.cfg.Labels,
		})
		if err == nil {
			w.id, w.lease = resp.GetWorkerId(), resp.GetLeaseDuration().AsDuration()
			w.log.Info("worker registered", "worker", w.id, "name", w.cfg.Name, "cpu", w.cfg.CPU, "memory_mib", w.cfg.MemoryMiB, "gpus", len(w.gpus))
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("register failed, retrying", "scheduler", w.cfg.Scheduler, "err", err)
		sleep(ctx, 2*time.Second)
	}
}

// pollWait is how long one PollJob waits for a job.
const pollWait = 10 * time.Second

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
