package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/paging"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// Job states as stored.
const (
	stateQueued    = "queued"
	stateRunning   = "running"
	stateSucceeded = "succeeded"
	stateFailed    = "failed"
	stateCancelled = "cancelled"
)

var stateProto = map[string]schedulerv1.JobState{
	stateQueued: schedulerv1.JobState_JOB_STATE_QUEUED, stateRunning: schedulerv1.JobState_JOB_STATE_RUNNING,
	stateSucceeded: schedulerv1.JobState_JOB_STATE_SUCCEEDED, stateFailed: schedulerv1.JobState_JOB_STATE_FAILED,
	stateCancelled: schedulerv1.JobState_JOB_STATE_CANCELLED,
}

// jobSpec is what a job needs to be queued.
type jobSpec struct {
	pipeline       *registryv1.Pipeline
	spec           *pipeline.Pipeline
	dataset        *ingestionv1.DatasetVersion
	trigger        string
	priority       int32
	codeRef        string
	idempotencyKey string
	notBefore      time.Time
	fireTime       *time.Time
}

func (s *Service) SubmitJob(ctx context.Context, req *schedulerv1.SubmitJobRequest) (*schedulerv1.Job, error) {
	if key := req.GetIdempotencyKey(); key != "" {
		if j, err := s.jobByKey(ctx, key); err != nil || j != nil {
			return j, err
		}
	}
	js, err := s.prepare(ctx, req.GetPipeline(), req.GetDatasetVersion())
	if err != nil {
		return nil, err
	}
	js.trigger, js.priority, js.codeRef, js.idempotencyKey = "manual", req.GetPriority(), req.GetCodeRef(), req.GetIdempotencyKey()
	var id string
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id, err = s.enqueue(ctx, tx, js)
		return err
	})
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && pgErr.SQLState() == "23505" && js.idempotencyKey != "" {
		return s.jobByKey(ctx, js.idempotencyKey) // a concurrent duplicate won
	}
	if err != nil {
		return nil, err
	}
	return s.getJob(ctx, id)
}

// prepare resolves a pipeline and a dataset version into a job spec.
func (s *Service) prepare(ctx context.Context, pipelineName string, datasetVersion int64) (*jobSpec, error) {
	p, err := s.registry.GetPipeline(ctx, &registryv1.GetPipelineRequest{Pipeline: pipelineName})
	if status.Code(err) == codes.NotFound {
		return nil, apierr.NotFound("pipeline %q not found", pipelineName)
	}
	if err != nil {
		return nil, fmt.Errorf("get pipeline %s: %w", pipelineName, err)
	}
	spec, err := pipeline.FromStruct(p.GetSpec())
	if err != nil {
		return nil, fmt.Errorf("stored pipeline %s no longer parses: %w", pipelineName, err)
	}
	if datasetVersion == 0 {
		ds, err := s.ingestion.GetDataset(ctx, &ingestionv1.GetDatasetRequest{Dataset: spec.Spec.Dataset})
		if status.Code(err) == codes.NotFound || (err == nil && ds.GetLatestVersion() == 0) {
			return nil, apierr.FailedPrecondition("dataset %q has no validated version to train on: push one first", spec.Spec.Dataset)
		}
		if err != nil {
			return nil, fmt.Errorf("get dataset %s: %w", spec.Spec.Dataset, err)
		}
		datasetVersion = ds.GetLatestVersion()
	}
	dv, err := s.ingestion.GetDatasetVersion(ctx, &ingestionv1.GetDatasetVersionRequest{Dataset: spec.Spec.Dataset, Version: datasetVersion})
	if status.Code(err) == codes.NotFound {
		return nil, apierr.InvalidField("dataset_version", "dataset %q has no version %d", spec.Spec.Dataset, datasetVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("get dataset version: %w", err)
	}
	return &jobSpec{pipeline: p, spec: spec, dataset: dv}, nil
}

// enqueue inserts a queued job with its event, in the caller's transaction.
func (s *Service) enqueue(ctx context.Context, tx pgx.Tx, js *jobSpec) (string, error) {
	t := js.spec.Spec.Training
	id := uuid.Must(uuid.NewV7()).String()
	params, err := json.Marshal(orEmpty(t.Params))
	if err != nil {
		return "", err
	}
	split, err := json.Marshal(map[string]any{"holdout": t.Split.Holdout, "seed": t.Split.Seed, "stratify": t.Split.Stratify == nil || *t.Split.Stratify})
	if err != nil {
		return "", err
	}
	command, err := json.Marshal(orEmptySlice(t.Command))
	if err != nil {
		return "", err
	}
	notBefore := js.notBefore
	if notBefore.IsZero() {
		notBefore = time.Now()
	}
	var key *string
	if js.idempotencyKey != "" {
		key = &js.idempotencyKey
	}
	_, err = tx.Exec(ctx, `INSERT INTO jobs (id, pipeline, pipeline_version, model, dataset, dataset_version, dataset_sha256, dataset_uri,
			trainer, command, params, split, target, cpu, memory_mib, gpu, gpu_model, priority, max_attempts, timeout_seconds,
			trigger, code_ref, idempotency_key, not_before, fire_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)`,
		id, js.pipeline.GetName(), js.pipeline.GetVersion(), js.spec.ModelName(), js.dataset.GetDataset(), js.dataset.GetVersion(),
		js.dataset.GetSha256(), js.dataset.GetUri(), t.Trainer, command, params, split, t.Target, t.Resources.CPU, t.Resources.MemoryMiB,
		t.Resources.GPU, t.Resources.GPUModel, js.priority, t.MaxAttempts, int64(t.Timeout.Seconds()), js.trigger, js.codeRef, key, notBefore,
		js.fireTime)
	if err != nil {
		return "", err
	}
	if err := s.jobEvent(ctx, tx, id, stateQueued, ""); err != nil {
		return "", err
	}
	return id, notify(ctx, tx)
}

// jobEvent emits gyre.training.job.<state> for the job as it now is.
func (s *Service) jobEvent(ctx context.Context, tx pgx.Tx, id, state, reason string) error {
	var e eventsv1.TrainingJobChanged
	err := tx.QueryRow(ctx, `SELECT id::text, pipeline, model, dataset, dataset_version, attempt, worker, model_version, trigger FROM jobs WHERE id = $1`, id).
		Scan(&e.Job, &e.Pipeline, &e.Model, &e.Dataset, &e.DatasetVersion, &e.Attempt, &e.Worker, &e.ModelVersion, &e.Trigger)
	if err != nil {
		return err
	}
	e.State, e.Reason = state, reason
	_, err = events.Enqueue(ctx, tx, source, "gyre.training.job."+state, &e)
	return err
}

const jobColumns = `id::text, pipeline, pipeline_version, model, dataset, dataset_version, dataset_sha256, dataset_uri, trainer, command,
	params, split, target, cpu, memory_mib, gpu, gpu_model, priority, attempt, max_attempts, timeout_seconds, state, reason, trigger,
	worker, gpu_devices, model_version, metrics, code_ref, create_time, start_time, end_time, cancel_requested, not_before`

func scanJob(row pgx.Row) (*schedulerv1.Job, error) {
	var (
		j                      schedulerv1.Job
		command, params, split []byte
		metrics                []byte
		state                  string
		timeout                int64
		created, notBefore     time.Time
		started, ended         *time.Time
		res                    schedulerv1.Resources
	)
	if err := row.Scan(&j.Id, &j.Pipeline, &j.PipelineVersion, &j.Model, &j.Dataset, &j.DatasetVersion, &j.DatasetSha256, &j.DatasetUri,
		&j.Trainer, &command, &params, &split, &j.Target, &res.Cpu, &res.MemoryMib, &res.Gpu, &res.GpuModel, &j.Priority, &j.Attempt,
		&j.MaxAttempts, &timeout, &state, &j.Reason, &j.Trigger, &j.Worker, &j.GpuDevices, &j.ModelVersion, &metrics, &j.CodeRef,
		&created, &started, &ended, &j.CancelRequested, &notBefore); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(command, &j.Command); err != nil {
		return nil, err
	}
	j.Params = &structpb.Struct{}
	if err := protojson.Unmarshal(params, j.Params); err != nil {
		return nil, err
	}
	j.Split = &schedulerv1.SplitSpec{}
	if err := protojson.Unmarshal(split, j.Split); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(metrics, &j.Metrics); err != nil {
		return nil, err
	}
	j.Resources, j.State, j.Timeout = &res, stateProto[state], durationpb.New(time.Duration(timeout)*time.Second)
	j.CreateTime, j.NotBefore = timestamppb.New(created), timestamppb.New(notBefore)
	if started != nil {
		j.StartTime = timestamppb.New(*started)
	}
	if ended != nil {
		j.EndTime = timestamppb.New(*ended)
	}
	return &j, nil
}

func (s *Service) getJob(ctx context.Context, id string) (*schedulerv1.Job, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, apierr.NotFound("job %q not found", id)
	}
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("job %q not found", id)
	}
	return j, err
}

func (s *Service) jobByKey(ctx context.Context, key string) (*schedulerv1.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE idempotency_key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return j, err
}

func (s *Service) GetJob(ctx context.Context, req *schedulerv1.GetJobRequest) (*schedulerv1.Job, error) {
	return s.getJob(ctx, req.GetJob())
}

func (s *Service) ListJobs(ctx context.Context, req *schedulerv1.ListJobsRequest) (*schedulerv1.ListJobsResponse, error) {
	after, err := paging.Key(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	state := ""
	for name, v := range stateProto {
		if v == req.GetState() {
			state = name
		}
	}
	limit := paging.Size(req.GetPageSize())
	// Newest first; the token is the last job's id (UUIDv7 ids sort by time).
	rows, err := s.pool.Query(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE ($1 = '' OR id < $1::uuid) AND ($2 = '' OR pipeline = $2) AND ($3 = '' OR state = $3)
		ORDER BY id DESC LIMIT $4`, after, req.GetPipeline(), state, limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &schedulerv1.ListJobsResponse{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		if len(resp.Jobs) == limit {
			resp.NextPageToken = paging.Token(resp.Jobs[limit-1].GetId())
			break
		}
		resp.Jobs = append(resp.Jobs, j)
	}
	return resp, rows.Err()
}

// CancelJob cancels a queued job at once; a running one is stopped by its
// worker at the next heartbeat, and ends as cancelled when it reports.
func (s *Service) CancelJob(ctx context.Context, req *schedulerv1.CancelJobRequest) (*schedulerv1.Job, error) {
	if _, err := s.getJob(ctx, req.GetJob()); err != nil {
		return nil, err
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "cancelled by request"
	}
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT state FROM jobs WHERE id = $1 FOR UPDATE`, req.GetJob()).Scan(&state); err != nil {
			return err
		}
		switch state {
		case stateQueued:
			if _, err := tx.Exec(ctx, `UPDATE jobs SET state = 'cancelled', reason = $2, end_time = now() WHERE id = $1`, req.GetJob(), reason); err != nil {
				return err
			}
			return s.jobEvent(ctx, tx, req.GetJob(), stateCancelled, reason)
		case stateRunning:
			_, err := tx.Exec(ctx, `UPDATE jobs SET cancel_requested = true, reason = $2 WHERE id = $1`, req.GetJob(), reason)
			return err
		default:
			return apierr.FailedPrecondition("job %s already ended (%s)", req.GetJob(), state)
		}
	})
	if err != nil {
		return nil, err
	}
	return s.getJob(ctx, req.GetJob())
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func orEmptySlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
