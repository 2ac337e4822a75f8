package worker

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/table"
	"github.com/gyreml/gyre/pkg/model/train"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

type blobObject = blob.Object

// validShare of the training rows is set aside for early stopping and the
// metrics a trainer reports; the pipeline's holdout is never seen here (the
// evaluator scores on it).
const validShare = 0.1

// runBuiltin trains with one of Gyre's own trainers, in this process.
func (w *Worker) runBuiltin(ctx context.Context, job *schedulerv1.Job, dir string, logs *logSink) (*result, error) {
	trainer, err := train.Lookup(job.GetTrainer())
	if err != nil {
		return nil, err
	}
	t, err := w.loadTable(ctx, job, logs)
	if err != nil {
		return nil, err
	}
	fit, valid, holdout, err := splitRows(t, job)
	if err != nil {
		return nil, err
	}
	inputs, err := featureInputs(t, job.GetTarget())
	if err != nil {
		return nil, err
	}
	logs.printf("training %s on %d rows (%d for validation, %d held out for evaluation), %d features",
		trainer.Name(), len(fit), len(valid), len(holdout), len(inputs))
	t0 := time.Now()
	mdl, metrics, err := trainer.Train(ctx, t, fit, valid, job.GetTarget(), inputs, job.GetParams().AsMap(), job.GetSplit().GetSeed())
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if metrics == nil {
		metrics = map[string]float64{}
	}
	metrics["train_rows"], metrics["validation_rows"], metrics["holdout_rows"] = float64(len(fit)), float64(len(valid)), float64(len(holdout))
	metrics["train_seconds"] = time.Since(t0).Seconds()
	logs.printf("trained in %s: %s", time.Since(t0).Round(time.Millisecond), formatMetrics(metrics))

	bundle := filepath.Join(dir, "bundle")
	err = model.Save(bundle, mdl, &model.Manifest{
		Target: job.GetTarget(), Params: job.GetParams().AsMap(), Metrics: metrics,
		Lineage:   lineage(job, w),
		CreatedAt: time.Now().UTC(), GyreVersion: w.cfg.Version,
	})
	if err != nil {
		return nil, err
	}
	return &result{bundleDir: bundle, metrics: metrics}, nil
}

// loadTable reads the job's dataset version, its digest verified.
func (w *Worker) loadTable(ctx context.Context, job *schedulerv1.Job, logs *logSink) (*table.Table, error) {
	key, ok := w.blobs.KeyOf(job.GetDatasetUri())
	if !ok {
		return nil, fmt.Errorf("dataset %s is not in the artifact store this worker uses", job.GetDatasetUri())
	}
	rc, err := w.blobs.Get(ctx, key, job.GetDatasetSha256())
	if err != nil {
		return nil, fmt.Errorf("download dataset: %w", err)
	}
	defer rc.Close()
	t, err := table.ReadCSV(rc, nil)
	if err != nil {
		return nil, fmt.Errorf("read dataset %s@%d (sha256 %s): %w", job.GetDataset(), job.GetDatasetVersion(), job.GetDatasetSha256(), err)
	}
	logs.printf("dataset %s@%d: %d rows, %d columns, sha256 %s verified", job.GetDataset(), job.GetDatasetVersion(), t.Rows, len(t.Columns), job.GetDatasetSha256())
	return t, nil
}

// splitRows rebuilds the pipeline's split (the evaluator rebuilds the same
// holdout from the same spec), then sets validShare of the rest aside.
func splitRows(t *table.Table, job *schedulerv1.Job) (fit, valid, holdout []int, err error) {
	sp := job.GetSplit()
	train, holdout, err := table.TrainHoldout(t, job.GetTarget(), sp.GetHoldout(), sp.GetSeed(), sp.GetStratify())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("split: %w", err)
	}
	sub := t.Select(train)
	f, v, err := table.TrainHoldout(sub, job.GetTarget(), validShare, sp.GetSeed()+1, sp.GetStratify())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("split validation: %w", err)
	}
	for _, i := range f {
		fit = append(fit, train[i])
	}
	for _, i := range v {
		valid = append(valid, train[i])
	}
	return fit, valid, holdout, nil
}

// featureInputs are every column but the target.
func featureInputs(t *table.Table, target string) ([]model.Input, error) {
	if _, ok := t.Column(target); !ok {
		return nil, fmt.Errorf("the target column %q is not in the dataset", target)
	}
	var inputs []model.Input
	for _, c := range t.Columns {
		if c.Name != target {
			inputs = append(inputs, model.Input{Name: c.Name, Kind: c.Kind})
		}
	}
	return inputs, nil
}

func lineage(job *schedulerv1.Job, w *Worker) map[string]string {
	return map[string]string{
		"dataset": job.GetDataset(), "dataset_version": strconv.FormatInt(job.GetDatasetVersion(), 10), "dataset_sha256": job.GetDatasetSha256(),
		"pipeline": job.GetPipeline(), "pipeline_version": strconv.FormatInt(job.GetPipelineVersion(), 10),
		"training_job": job.GetId(), "attempt": strconv.Itoa(int(job.GetAttempt())), "trainer": job.GetTrainer(),
		"worker": w.cfg.Name, "gpus": job.GetGpuDevices(), "code_ref": job.GetCodeRef(),
		"split": fmt.Sprintf("holdout=%g seed=%d stratify=%t", job.GetSplit().GetHoldout(), job.GetSplit().GetSeed(), job.GetSplit().GetStratify()),
	}
}

// formatMetrics renders metrics as "name=value ..." in name order.
func formatMetrics(m map[string]float64) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+strconv.FormatFloat(m[k], 'g', 4, 64))
	}
	return strings.Join(parts, " ")
}
