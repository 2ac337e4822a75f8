package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/pg"
)

// workerAPI is the WorkerService face of the scheduler.
type workerAPI struct{ *Service }

const maxPollWait = 60 * time.Second

func (w workerAPI) RegisterWorker(ctx context.Context, req *schedulerv1.RegisterWorkerRequest) (*schedulerv1.RegisterWorkerResponse, error) {
	id := uuid.Must(uuid.NewV7()).String()
	gpus, err := json.Marshal(gpuList(req.GetGpus()))
	if err != nil {
		return nil, err
	}
	labels, err := json.Marshal(req.GetLabels())
	if err != nil {
		return nil, err
	}
	if _, err := w.pool.Exec(ctx, `INSERT INTO workers (id, name, cpu, memory_mib, gpus, labels) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, req.GetName(), req.GetCpu(), req.GetMemoryMib(), gpus, labels); err != nil {
		return nil, err
	}
	w.log.InfoContext(ctx, "worker registered", "worker", id, "name", req.GetName(), "cpu", req.GetCpu(), "gpus", len(req.GetGpus()))
	return &schedulerv1.RegisterWorkerResponse{WorkerId: id, LeaseDuration: durationpb.New(w.cfg.LeaseDuration)}, nil
}

type gpu struct {
	Index     int32  `json:"index"`
	Model     string `json:"model"`
	MemoryMiB int64  `json:"memoryMiB"`
}

func gpuList(in []*schedulerv1.GPU) []gpu {
	out := []gpu{}
	for _, g := range in {
		out = append(out, gpu{g.GetIndex(), g.GetModel(), g.GetMemoryMib()})
	}
	return out
}

// PollJob claims the best job the worker can run now, or waits for one
// (woken by NOTIFY when jobs are queued or resources free up).
func (w workerAPI) PollJob(ctx context.Context, req *schedulerv1.PollJobRequest) (*schedulerv1.PollJobResponse, error) {
	wait := min(req.GetWait().AsDuration(), maxPollWait)
	deadline := time.Now().Add(wait)
	for {
		woken := w.wake.wait() // taken before claiming, so no wake-up is missed
		resp, err := w.claim(ctx, req.GetWorkerId())
		if err != nil || resp.GetJob() != nil {
			return resp, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return resp, nil
		}
		// A job waiting out a retry backoff becomes claimable with no
		// notification: wake up for it too.
		var due *time.Time
		if err := w.pool.QueryRow(ctx, `SELECT min(not_before) FROM jobs WHERE state = 'queued' AND not_before > now()`).Scan(&due); err != nil {
			return nil, err
		}
		if due != nil {
			left = min(left, time.Until(*due)+10*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(left):
		case <-woken:
		}
	}
}

// claim takes the highest-priority queued job that fits the worker's free
// resources, under FOR UPDATE SKIP LOCKED (no two workers get one job) and
// the pipeline's concurrency limit (checked under its advisory lock).
func (w workerAPI) claim(ctx context.Context, workerID string) (*schedulerv1.PollJobResponse, error) {
	resp := &schedulerv1.PollJobResponse{}
	err := pg.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		var name string
		var cpu float64
		var mem int64
		var gpusJSON []byte
		err := tx.QueryRow(ctx, `UPDATE workers SET last_seen = now() WHERE id = $1 RETURNING name, cpu, memory_mib, gpus`, workerID).
			Scan(&name, &cpu, &mem, &gpusJSON)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.NotFound("worker %q is not registered", workerID)
		}
		if err != nil {
			return err
		}
		var gpus []gpu
		if err := json.Unmarshal(gpusJSON, &gpus); err != nil {
			return err
		}
		// What the worker's running jobs already hold.
		var usedCPU float64
		var usedMem int64
		var usedDevices []string
		rows, err := tx.Query(ctx, `SELECT cpu, memory_mib, gpu_devices FROM jobs WHERE state = 'running' AND worker = $1`, workerID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c float64
			var m int64
			var d string
			if err := rows.Scan(&c, &m, &d); err != nil {
				rows.Close()
				return err
			}
			usedCPU, usedMem = usedCPU+c, usedMem+m
			if d != "" {
				usedDevices = append(usedDevices, strings.Split(d, ",")...)
			}
		}
		rows.Close()
		var free []gpu
		for _, g := range gpus {
			if !slices.Contains(usedDevices, strconv.Itoa(int(g.Index))) {
				free = append(free, g)
			}
		}
		freeModels := map[string]int{}
		for _, g := range free {
			freeModels[g.Model]++
		}
		models := make([]string, 0, len(freeModels))
		for m := range freeModels {
			models = append(models, m)
		}
		skip := []string{} // pipelines at their concurrency limit (not nil: NULL would match nothing)
		for range 8 {
			var id, pipeline, gpuModel string
			var gpuCount int
			err := tx.QueryRow(ctx, `SELECT id::text, pipeline, gpu, gpu_model FROM jobs
				WHERE state = 'queued' AND not_before <= now() AND NOT (pipeline = ANY($5))
					AND cpu <= $1 AND (memory_mib <= $2 OR $2 <= 0) AND gpu <= $3 AND (gpu = 0 OR gpu_model = '' OR gpu_model = ANY($4))
				ORDER BY priority DESC, create_time LIMIT 1 FOR UPDATE SKIP LOCKED`,
				max(cpu-usedCPU, 0)+1e-9, mem-usedMem, len(free), models, skip).Scan(&id, &pipeline, &gpuCount, &gpuModel)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('gyre-pipeline:' || $1, 0))`, pipeline); err != nil {
				return err
			}
			var running int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE pipeline = $1 AND state = 'running'`, pipeline).Scan(&running); err != nil {
				return err
			}
			if running >= w.cfg.MaxRunningPerPipeline {
				skip = append(skip, pipeline)
				continue
			}
			devices := pickDevices(free, gpuCount, gpuModel)
			leaseID := uuid.NewString()
			var expires time.Time
			if err := tx.QueryRow(ctx, `UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = $2, lease_id = $3,
					lease_expires = now() + $4::interval, gpu_devices = $5, start_time = now(), reason = ''
				WHERE id = $1 RETURNING lease_expires`, id, workerID, leaseID, w.cfg.LeaseDuration.String(), devices).Scan(&expires); err != nil {
				return err
			}
			if err := w.jobEvent(ctx, tx, id, "started", "on worker "+name); err != nil {
				return err
			}
			job, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
			if err != nil {
				return err
			}
			resp.Job, resp.LeaseId, resp.LeaseExpireTime = job, leaseID, timestamppb.New(expires)
			return nil
		}
		return nil
	})
	return resp, err
}

// pickDevices chooses n free GPUs (of the model, when one is asked for).
func pickDevices(free []gpu, n int, model string) string {
	var picked []string
	for _, g := range free {
		if len(picked) == n {
			break
		}
		if model == "" || g.Model == model {
			picked = append(picked, strconv.Itoa(int(g.Index)))
		}
	}
	return strings.Join(picked, ",")
}

// Heartbeat extends the lease; it tells the worker to stop when the job was
// cancelled, timed out or the lease is no longer its own.
func (w workerAPI) Heartbeat(ctx context.Context, req *schedulerv1.HeartbeatRequest) (*schedulerv1.HeartbeatResponse, error) {
	if _, err := w.pool.Exec(ctx, `UPDATE workers SET last_seen = now() WHERE id = $1`, req.GetWorkerId()); err != nil {
		return nil, err
	}
	if req.GetJob() == "" {
		return &schedulerv1.HeartbeatResponse{}, nil
	}
	var cancel bool
	var reason string
	var expires time.Time
	err := w.pool.QueryRow(ctx, `UPDATE jobs SET lease_expires = now() + $3::interval
		WHERE id = $1 AND lease_id = $2 AND state = 'running' RETURNING cancel_requested, reason, lease_expires`,
		req.GetJob(), req.GetLeaseId(), w.cfg.LeaseDuration.String()).Scan(&cancel, &reason, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return &schedulerv1.HeartbeatResponse{Stop: true, Reason: "the lease is no longer held (expired, timed out or reassigned)"}, nil
	}
	if err != nil {
		return nil, err
	}
	return &schedulerv1.HeartbeatResponse{Stop: cancel, Reason: reason, LeaseExpireTime: timestamppb.New(expires)}, nil
}

func (w workerAPI) AppendLogs(ctx context.Context, req *schedulerv1.AppendLogsRequest) (*schedulerv1.AppendLogsResponse, error) {
	err := pg.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		var attempt int32
		err := tx.QueryRow(ctx, `SELECT attempt FROM jobs WHERE id = $1 AND lease_id = $2 AND state = 'running'`, req.GetJob(), req.GetLeaseId()).Scan(&attempt)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.FailedPrecondition("job %s is not running under lease %s", req.GetJob(), req.GetLeaseId())
		}
		if err != nil {
			return err
		}
		for _, l := range req.GetLines() {
			if _, err := tx.Exec(ctx, `INSERT INTO job_logs (job, attempt, stream, text) VALUES ($1, $2, $3, $4)`,
				req.GetJob(), attempt, l.GetStream(), l.GetText()); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify('gyre_job_logs', $1)", req.GetJob())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &schedulerv1.AppendLogsResponse{}, nil
}

// CompleteJob records a job's end. On success the scheduler registers the
// model version first, with the job as its training job: the registry gives
// a retried or re-run job the version it registered before, so a job never
// registers two versions.
func (w workerAPI) CompleteJob(ctx context.Context, req *schedulerv1.CompleteJobRequest) (*schedulerv1.CompleteJobResponse, error) {
	job, err := scanJob(w.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1 AND lease_id = $2 AND state = 'running'`,
		req.GetJob(), req.GetLeaseId()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.FailedPrecondition("job %s is not running under lease %s", req.GetJob(), req.GetLeaseId())
	}
	if err != nil {
		return nil, err
	}
	if !req.GetSucceeded() {
		return &schedulerv1.CompleteJobResponse{}, w.fail(ctx, job, req.GetLeaseId(), req.GetError())
	}
	if req.GetBundleUri() == "" || len(req.GetBundleSha256()) != 64 {
		return nil, apierr.InvalidField("bundle_sha256", "a succeeded job needs its bundle's uri and sha256")
	}
	params := job.GetParams()
	if params == nil {
		params = &structpb.Struct{}
	}
	mv, err := w.registry.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{
		Model: job.GetModel(), ArtifactUri: req.GetBundleUri(), ArtifactSha256: req.GetBundleSha256(), SizeBytes: req.GetBundleSize(),
		Format: req.GetFormat(), Params: params, Metrics: req.GetMetrics(),
		Tags: map[string]string{"trigger": job.GetTrigger(), "duration": req.GetDuration().AsDuration().Round(time.Millisecond).String()},
		Lineage: &registryv1.VersionLineage{
			Dataset: job.GetDataset(), DatasetVersion: job.GetDatasetVersion(), DatasetDigest: job.GetDatasetSha256(),
			Pipeline: job.GetPipeline(), PipelineVersion: job.GetPipelineVersion(), TrainingJob: job.GetId(),
			CodeRef: job.GetCodeRef(), Trainer: job.GetTrainer(), Worker: job.GetWorker() + gpuNote(job.GetGpuDevices()),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("register model version: %w", err)
	}
	metrics, err := json.Marshal(req.GetMetrics())
	if err != nil {
		return nil, err
	}
	err = pg.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE jobs SET state = 'succeeded', model_version = $3, metrics = $4, end_time = now(), lease_id = NULL
			WHERE id = $1 AND lease_id = $2 AND state = 'running'`, job.GetId(), req.GetLeaseId(), mv.GetVersion(), metrics)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return apierr.FailedPrecondition("job %s lost its lease while completing", job.GetId())
		}
		if err := w.jobEvent(ctx, tx, job.GetId(), stateSucceeded, ""); err != nil {
			return err
		}
		return notify(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	return &schedulerv1.CompleteJobResponse{ModelVersion: mv.GetVersion()}, nil
}

func gpuNote(devices string) string {
	if devices == "" {
		return ""
	}
	return " (gpus " + devices + ")"
}

// fail ends an attempt: retried later (backoff doubling per attempt) while
// attempts remain, else failed; a cancelled job ends cancelled.
func (s *Service) fail(ctx context.Context, job *schedulerv1.Job, leaseID, reason string) error {
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		return s.endAttempt(ctx, tx, job.GetId(), leaseID, reason)
	})
}

// endAttempt requeues or ends a running job whose attempt is over.
func (s *Service) endAttempt(ctx context.Context, tx pgx.Tx, id, leaseID, reason string) error {
	var attempt, maxAttempts int
	var cancel bool
	err := tx.QueryRow(ctx, `SELECT attempt, max_attempts, cancel_requested FROM jobs
		WHERE id = $1 AND state = 'running' AND ($2 = '' OR lease_id::text = $2) FOR UPDATE`, id, leaseID).Scan(&attempt, &maxAttempts, &cancel)
	if errors.Is(err, pgx.ErrNoRows) {
		return apierr.FailedPrecondition("job %s is not running under lease %s", id, leaseID)
	}
	if err != nil {
		return err
	}
	state := stateQueued
	switch {
	case cancel:
		state = stateCancelled
	case attempt >= maxAttempts:
		state = stateFailed
	}
	backoff := s.cfg.RetryBackoff * time.Duration(1<<min(attempt-1, 10))
	if _, err := tx.Exec(ctx, `UPDATE jobs SET state = $2, reason = $3, lease_id = NULL, lease_expires = NULL, gpu_devices = '',
			worker = CASE WHEN $2 = 'queued' THEN '' ELSE worker END,
			not_before = now() + $4::interval, end_time = CASE WHEN $2 = 'queued' THEN NULL ELSE now() END
		WHERE id = $1`, id, state, truncate(reason, 4096), backoff.String()); err != nil {
		return err
	}
	if err := s.jobEvent(ctx, tx, id, state, reason); err != nil {
		return err
	}
	return notify(ctx, tx)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (s *Service) reapLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Reap(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reap failed", "err", err)
			}
		}
	}
}

// Reap ends attempts whose lease expired (the worker died or was cut off)
// and jobs that ran past their timeout.
func (s *Service) Reap(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT id::text, worker, lease_expires < now() FROM jobs WHERE state = 'running'
		AND (lease_expires < now() OR start_time + timeout_seconds * interval '1 second' < now())`)
	if err != nil {
		return err
	}
	type expired struct {
		id, worker string
		leaseLost  bool
	}
	var todo []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.id, &e.worker, &e.leaseLost); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, e)
	}
	rows.Close()
	for _, e := range todo {
		reason := "timed out"
		if e.leaseLost {
			reason = "worker " + e.worker + " stopped heart-beating: its lease expired"
		}
		err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			if !e.leaseLost {
				// A timeout is final: no retry would finish in time either.
				if _, err := tx.Exec(ctx, `UPDATE jobs SET max_attempts = attempt WHERE id = $1`, e.id); err != nil {
					return err
				}
			}
			return s.endAttempt(ctx, tx, e.id, "", reason)
		})
		if err != nil && !isPrecondition(err) {
			return err
		}
		s.log.Info("job attempt reaped", "job", e.id, "reason", reason)
	}
	return nil
}

func isPrecondition(err error) bool {
	var ae *apierr.Error
	return errors.As(err, &ae)
}
