package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gyreml/gyre/pkg/model"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// errStopped is the cause of a job context the scheduler asked to stop.
type errStopped struct{ reason string }

func (e errStopped) Error() string { return "stopped by the scheduler: " + e.reason }

// result is what a finished run hands back.
type result struct {
	bundleDir string
	metrics   map[string]float64
}

// run executes one claimed job: heartbeats keep its lease (and carry the
// scheduler's stop), log lines go to the scheduler in batches, and the
// outcome is reported once.
func (w *Worker) run(ctx context.Context, claim *schedulerv1.PollJobResponse) {
	job, lease := claim.GetJob(), claim.GetLeaseId()
	start := time.Now()
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	logs := newLogSink(w, job.GetId(), lease)
	defer logs.close()

	var hb sync.WaitGroup
	hb.Go(func() { w.heartbeat(jobCtx, cancel, job.GetId(), lease) })
	defer hb.Wait()
	defer cancel(nil)

	dir, err := os.MkdirTemp(w.cfg.WorkDir, "gyre-job-*")
	if err != nil {
		w.complete(ctx, job, lease, nil, fmt.Errorf("work dir: %w", err), start, logs)
		return
	}
	defer os.RemoveAll(dir)
	logs.printf("worker %s (%s) runs job %s attempt %d: pipeline %s, dataset %s@%d, trainer %s",
		w.cfg.Name, w.id, job.GetId(), job.GetAttempt(), job.GetPipeline(), job.GetDataset(), job.GetDatasetVersion(), job.GetTrainer())

	var res *result
	if job.GetTrainer() == "command" {
		res, err = w.runCommand(jobCtx, job, dir, logs)
	} else {
		res, err = w.runBuiltin(jobCtx, job, dir, logs)
	}
	if cause := context.Cause(jobCtx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	w.complete(ctx, job, lease, res, err, start, logs)
}

func (w *Worker) heartbeat(ctx context.Context, stop context.CancelCauseFunc, job, lease string) {
	every := max(w.lease/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := w.api.Heartbeat(ctx, &schedulerv1.HeartbeatRequest{WorkerId: w.id, Job: job, LeaseId: lease})
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("heartbeat failed", "job", job, "err", err)
			}
			continue
		}
		if resp.GetStop() {
			w.log.Info("job stopped by the scheduler", "job", job, "reason", resp.GetReason())
			stop(errStopped{resp.GetReason()})
			return
		}
	}
}

// complete uploads the bundle and reports success, or reports the failure.
// Reporting is retried: the scheduler registers the model version on
// success, and a lost answer must not lose the job.
func (w *Worker) complete(ctx context.Context, job *schedulerv1.Job, lease string, res *result, runErr error, start time.Time, logs *logSink) {
	req := &schedulerv1.CompleteJobRequest{Job: job.GetId(), LeaseId: lease, Duration: durationpb.New(time.Since(start))}
	if runErr == nil {
		obj, format, err := w.upload(ctx, job, res.bundleDir)
		if err != nil {
			runErr = err
		} else {
			req.Succeeded, req.BundleUri, req.BundleSha256, req.BundleSize, req.Format, req.Metrics =
				true, w.blobs.URI(obj.Key), obj.SHA256, obj.Size, format, res.metrics
			logs.printf("bundle uploaded: %s (%d bytes, sha256 %s)", req.BundleUri, obj.Size, obj.SHA256)
		}
	}
	if runErr != nil {
		req.Error = runErr.Error()
		logs.printf("job failed: %v", runErr)
	}
	logs.close()
	// Report even when the worker is shutting down, within a bound; a
	// worker that is stopping tries once (the lease covers the rest).
	attempts, bound := 5, 2*time.Minute
	if ctx.Err() != nil {
		attempts, bound = 1, 5*time.Second
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	defer cancel()
	for attempt := 1; ; attempt++ {
		resp, err := w.api.CompleteJob(rctx, req)
		if err == nil {
			w.log.Info("job finished", "job", job.GetId(), "succeeded", req.GetSucceeded(), "model_version", resp.GetModelVersion(),
				"duration", time.Since(start).Round(time.Millisecond))
			return
		}
		if attempt >= attempts || rctx.Err() != nil {
			w.log.Error("could not report the job's end; the scheduler will re-run it when the lease expires", "job", job.GetId(), "err", err)
			return
		}
		sleep(rctx, time.Duration(attempt)*time.Second)
	}
}

// upload packs the verified bundle and stores it content-addressed.
func (w *Worker) upload(ctx context.Context, job *schedulerv1.Job, dir string) (obj blobObject, format string, err error) {
	m, err := model.VerifyBundle(dir)
	if err != nil {
		return obj, "", fmt.Errorf("the trainer's output is not a valid model bundle: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dir), "bundle-*.tar.gz")
	if err != nil {
		return obj, "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := model.Pack(dir, tmp); err != nil {
		return obj, "", fmt.Errorf("pack bundle: %w", err)
	}
	if _, err := tmp.Seek(0, 0); err != nil {
		return obj, "", err
	}
	obj, err = w.blobs.PutContent(ctx, "models/"+job.GetModel(), tmp, "application/gzip")
	if err != nil {
		return obj, "", fmt.Errorf("upload bundle: %w", err)
	}
	return obj, m.Format, nil
}
