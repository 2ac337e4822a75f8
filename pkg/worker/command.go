package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gyreml/gyre/pkg/model/table"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/pkg/tabular"
)

// killGrace is how long a stopped trainer gets between SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

// runCommand runs an external trainer through the file contract:
//
//	GYRE_INPUT_DIR     train.csv, validation.csv, schema.json
//	GYRE_PARAMS        a JSON file of the pipeline's params
//	GYRE_OUTPUT_DIR    where the program writes the model bundle (gyre-model.json + files)
//	GYRE_METRICS_FILE  where it may write {"name": number, ...}
//	CUDA_VISIBLE_DEVICES  the GPUs the scheduler gave the job ("" for none)
//
// Its stdout and stderr go to the job's log line by line; cancellation and
// timeouts stop its whole process group.
func (w *Worker) runCommand(ctx context.Context, job *schedulerv1.Job, dir string, logs *logSink) (*result, error) {
	if len(job.GetCommand()) == 0 {
		return nil, errors.New("trainer command: the pipeline gives no training.command")
	}
	in, out := filepath.Join(dir, "input"), filepath.Join(dir, "output")
	for _, d := range []string{in, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	t, err := w.loadTable(ctx, job, logs)
	if err != nil {
		return nil, err
	}
	fit, valid, _, err := splitRows(t, job)
	if err != nil {
		return nil, err
	}
	if err := writeInputs(in, t, fit, valid, job.GetTarget()); err != nil {
		return nil, err
	}
	paramsFile, metricsFile := filepath.Join(dir, "params.json"), filepath.Join(dir, "metrics.json")
	params, err := json.Marshal(job.GetParams().AsMap())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(paramsFile, params, 0o644); err != nil {
		return nil, err
	}

	cmd := exec.CommandContext(ctx, job.GetCommand()[0], job.GetCommand()[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GYRE_INPUT_DIR="+in, "GYRE_PARAMS="+paramsFile, "GYRE_OUTPUT_DIR="+out, "GYRE_METRICS_FILE="+metricsFile,
		"GYRE_TARGET="+job.GetTarget(), "GYRE_JOB="+job.GetId(), "CUDA_VISIBLE_DEVICES="+job.GetGpuDevices())
	// Its own process group (to stop it whole), and killed if this worker
	// dies: Pdeathsig follows the OS thread that started it, so the thread
	// stays locked to this goroutine until the trainer has exited.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Stop the whole process group: trainers often fork data loaders.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = killGrace
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logs.printf("running %q with CUDA_VISIBLE_DEVICES=%q", job.GetCommand(), job.GetGpuDevices())
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start trainer: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { pipeLines(stdout, "stdout", logs) })
	wg.Go(func() { pipeLines(stderr, "stderr", logs) })
	wg.Wait()
	err = cmd.Wait()
	if ctx.Err() != nil {
		// SIGTERM was ignored: make sure nothing of it is left.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return nil, fmt.Errorf("trainer stopped: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("trainer exited: %w", err)
	}
	metrics := map[string]float64{}
	if raw, err := os.ReadFile(metricsFile); err == nil {
		if err := json.Unmarshal(raw, &metrics); err != nil {
			return nil, fmt.Errorf("GYRE_METRICS_FILE is not a JSON object of numbers: %w", err)
		}
	}
	metrics["train_rows"], metrics["validation_rows"] = float64(len(fit)), float64(len(valid))
	return &result{bundleDir: out, metrics: metrics}, nil
}

func pipeLines(r io.Reader, stream string, logs *logSink) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		logs.line(stream, sc.Text())
	}
}

// writeInputs writes the contract's input files.
func writeInputs(dir string, t *table.Table, fit, valid []int, target string) error {
	for name, rows := range map[string][]int{"train.csv": fit, "validation.csv": valid} {
		if err := writeRows(filepath.Join(dir, name), t, rows); err != nil {
			return err
		}
	}
	type col struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
	schema := struct {
		Target  string `json:"target"`
		Columns []col  `json:"columns"`
	}{Target: target}
	for _, c := range t.Columns {
		schema.Columns = append(schema.Columns, col{c.Name, string(c.Kind)})
	}
	raw, err := json.MarshalIndent(schema, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "schema.json"), raw, 0o644)
}

func writeRows(path string, t *table.Table, rows []int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	header := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		header[i] = c.Name
	}
	w := tabular.NewCSVWriter(f, header)
	values, null := make([]string, len(header)), make([]bool, len(header))
	for _, r := range rows {
		for i, c := range t.Columns {
			values[i], null[i] = c.Text(r), c.Missing(r)
		}
		if err := w.Write(values, null); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
