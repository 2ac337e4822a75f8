package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gyreml/gyre/pkg/client"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

func newTrainCmd(o *clientOptions) *cobra.Command {
	var (
		dataset        string
		datasetVersion int64
		priority       int32
		codeRef        string
		idempotencyKey string
		wait           bool
	)
	cmd := &cobra.Command{
		Use:   "train PIPELINE",
		Short: "Queue a training job for a pipeline (--wait follows it to the end)",
		Long: "Train queues a job that trains the pipeline's model on a validated dataset version (the latest\n" +
			"one unless --dataset or --dataset-version names another). A worker picks it up; on success the\n" +
			"scheduler registers the model version with its lineage. With --wait the job's log is streamed\n" +
			"and the command ends with the outcome: exit status 1 when the job failed or was cancelled.",
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx, pipeline := cmd.Context(), args[0]
			if dataset != "" {
				v, err := datasetVersionOf(ctx, c, pipeline, dataset)
				if err != nil {
					return err
				}
				datasetVersion = v
			}
			job, err := c.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{
				Pipeline: pipeline, DatasetVersion: datasetVersion, Priority: priority, CodeRef: codeRef, IdempotencyKey: idempotencyKey,
			})
			if err != nil {
				return err
			}
			if !wait {
				return o.emit(cmd.OutOrStdout(), job, func(w io.Writer) error {
					fmt.Fprintln(w, describeSubmitted(job))
					fmt.Fprintf(w, "Follow it: gyre logs -f %s\n", job.GetId())
					return nil
				})
			}
			// Machine-readable output keeps stdout for the final job; the story goes to stderr.
			story := cmd.OutOrStdout()
			if o.output != "table" {
				story = cmd.ErrOrStderr()
			}
			fmt.Fprintln(story, describeSubmitted(job))
			warnWithoutWorkers(ctx, c, story)
			attempt := int32(0)
			ended, err := followJob(ctx, c, job.GetId(), 0, func(l *schedulerv1.LogLine) {
				printLogLine(story, l, &attempt, false)
			})
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("stopped following job %s, which goes on (gyre logs -f %s): %w", job.GetId(), job.GetId(), err)
				}
				return err
			}
			printOutcome(story, ended, workerNames(ctx, c))
			if o.output != "table" {
				if err := o.emit(cmd.OutOrStdout(), ended, nil); err != nil {
					return err
				}
			}
			if ended.GetState() != schedulerv1.JobState_JOB_STATE_SUCCEEDED {
				return exitError{code: 1}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dataset, "dataset", "", "dataset version to train on, NAME@VERSION (NAME must be the pipeline's dataset)")
	f.Int64Var(&datasetVersion, "dataset-version", 0, "version of the pipeline's dataset to train on (default: the latest validated one)")
	f.Int32Var(&priority, "priority", 0, "queue priority, -100 to 100: higher runs first")
	f.StringVar(&codeRef, "code-ref", "", "the trainer code's version (a git commit, an image digest), kept in the lineage")
	f.StringVar(&idempotencyKey, "idempotency-key", "", "submitting again with the same key returns the first job instead of a new one")
	f.BoolVar(&wait, "wait", false, "follow the job's log until it ends, then print the outcome")
	cmd.MarkFlagsMutuallyExclusive("dataset", "dataset-version")
	return cmd
}

// datasetVersionOf reads NAME@VERSION (or NAME alone: the latest, 0) and
// checks that NAME is what the pipeline trains on: the API takes a version only.
func datasetVersionOf(ctx context.Context, c *client.Client, pipeline, ref string) (int64, error) {
	name, v, hasVersion := strings.Cut(ref, "@")
	var version int64
	if hasVersion {
		var err error
		if version, err = strconv.ParseInt(strings.TrimPrefix(v, "v"), 10, 64); err != nil || version < 1 {
			return 0, fmt.Errorf("--dataset %q: want NAME@VERSION with a version number from 1", ref)
		}
	}
	p, err := c.GetPipeline(ctx, pipeline, 0)
	if err != nil {
		return 0, err
	}
	if p.GetDataset() != name {
		return 0, fmt.Errorf("pipeline %s trains on dataset %q, not %q", pipeline, p.GetDataset(), name)
	}
	return version, nil
}

func describeSubmitted(j *schedulerv1.Job) string {
	return fmt.Sprintf("job %s %s: %s@%d (%s) on %s@%d", j.GetId(), jobState(j), j.GetPipeline(), j.GetPipelineVersion(),
		j.GetTrainer(), j.GetDataset(), j.GetDatasetVersion())
}

// workerSilence is how long a connected worker goes without polling or
// heartbeating at most (its long poll lasts up to a minute).
const workerSilence = 2 * time.Minute

// warnWithoutWorkers says why a job may wait forever; the check itself is best effort.
func warnWithoutWorkers(ctx context.Context, c *client.Client, w io.Writer) {
	resp, err := c.ListWorkers(ctx)
	if err != nil {
		return
	}
	for _, wk := range resp.GetWorkers() {
		if time.Since(wk.GetLastSeen().AsTime()) < workerSilence {
			return
		}
	}
	fmt.Fprintln(w, "no worker is connected: the job waits in the queue until one is (gyre worker --scheduler HOST:PORT)")
}

// followJob streams a job's log after line afterSeq to fn until the job
// ends, and returns the job as it ended.
func followJob(ctx context.Context, c *client.Client, id string, after int64, fn func(*schedulerv1.LogLine)) (*schedulerv1.Job, error) {
	for {
		err := c.FollowLogs(ctx, id, after, true, func(l *schedulerv1.LogLine) error {
			fn(l)
			after = l.GetSeq()
			return nil
		})
		if err != nil {
			return nil, err
		}
		j, err := c.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		if jobEnded(j) {
			return j, nil
		}
		// The stream ended before the job (a server restart, a proxy's idle timeout): follow on.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func jobEnded(j *schedulerv1.Job) bool {
	switch j.GetState() {
	case schedulerv1.JobState_JOB_STATE_SUCCEEDED, schedulerv1.JobState_JOB_STATE_FAILED, schedulerv1.JobState_JOB_STATE_CANCELLED:
		return true
	}
	return false
}

// printLogLine writes a line's text, after a marker when a new attempt begins.
func printLogLine(w io.Writer, l *schedulerv1.LogLine, attempt *int32, timestamps bool) {
	if l.GetAttempt() != *attempt && (*attempt != 0 || l.GetAttempt() > 1) {
		fmt.Fprintf(w, "--- attempt %d ---\n", l.GetAttempt())
	}
	*attempt = l.GetAttempt()
	if timestamps {
		fmt.Fprintf(w, "%s %s\n", l.GetTime().AsTime().Local().Format("2006-01-02T15:04:05.000"), l.GetText())
		return
	}
	fmt.Fprintln(w, l.GetText())
}

// printOutcome says how an ended job ended.
func printOutcome(w io.Writer, j *schedulerv1.Job, workers map[string]string) {
	switch j.GetState() {
	case schedulerv1.JobState_JOB_STATE_SUCCEEDED:
		fmt.Fprintf(w, "job %s succeeded in %s on worker %s (attempt %d of %d)\n", j.GetId(), formatDuration(jobDuration(j)),
			workerName(workers, j.GetWorker()), j.GetAttempt(), j.GetMaxAttempts())
		fmt.Fprintf(w, "registered %s version %d", j.GetModel(), j.GetModelVersion())
		if len(j.GetMetrics()) > 0 {
			fmt.Fprintf(w, ": %s", pairs(j.GetMetrics(), num))
		}
		fmt.Fprintf(w, "\nSee it: gyre get version %s@%d · gyre lineage %s@%d\n", j.GetModel(), j.GetModelVersion(), j.GetModel(), j.GetModelVersion())
	case schedulerv1.JobState_JOB_STATE_CANCELLED:
		fmt.Fprintf(w, "job %s cancelled: %s\n", j.GetId(), orDash(j.GetReason()))
	default:
		fmt.Fprintf(w, "job %s %s after %d of %d attempts: %s\n", j.GetId(), jobState(j), j.GetAttempt(), j.GetMaxAttempts(), orDash(j.GetReason()))
	}
}

func newLogsCmd(o *clientOptions) *cobra.Command {
	var (
		follow     bool
		afterSeq   int64
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "logs JOB",
		Short: "Print a training job's log (-f follows it until the job ends)",
		Long: "Logs prints what the job's trainer wrote, every attempt in order. With -f it keeps streaming\n" +
			"until the job ends, then says how it ended (on stderr). -o json writes one JSON object per line.",
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			attempt := int32(0)
			var writeErr error
			show := func(l *schedulerv1.LogLine) {
				if o.output == "table" {
					printLogLine(out, l, &attempt, timestamps)
					return
				}
				if err := emitLine(out, o.output, l); err != nil && writeErr == nil {
					writeErr = err
				}
			}
			if !follow {
				return c.FollowLogs(ctx, args[0], afterSeq, false, func(l *schedulerv1.LogLine) error { show(l); return writeErr })
			}
			ended, err := followJob(ctx, c, args[0], afterSeq, show)
			if err != nil {
				return err
			}
			if writeErr != nil {
				return writeErr
			}
			printOutcome(cmd.ErrOrStderr(), ended, workerNames(ctx, c))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming until the job ends")
	cmd.Flags().Int64Var(&afterSeq, "after-seq", 0, "only the lines after this sequence number (-o json shows each line's seq)")
	cmd.Flags().BoolVar(&timestamps, "timestamps", false, "prefix each line with the time it was written")
	return cmd
}

// emitLine writes one log line as a compact JSON object, or a YAML document.
func emitLine(w io.Writer, format string, l *schedulerv1.LogLine) error {
	if format == "yaml" {
		raw, err := toYAML(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "---\n%s", raw)
		return err
	}
	raw, err := protojson.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	// protojson varies its whitespace on purpose; compacting makes one line per object.
	var line bytes.Buffer
	if err := json.Compact(&line, raw); err != nil {
		return fmt.Errorf("compact json: %w", err)
	}
	line.WriteByte('\n')
	_, err = line.WriteTo(w)
	return err
}

func newCancelCmd(o *clientOptions) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a training job (a running one stops at its worker's next heartbeat)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			j, err := c.CancelJob(cmd.Context(), &schedulerv1.CancelJobRequest{Job: args[0], Reason: reason})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), j, func(w io.Writer) error {
				if j.GetState() == schedulerv1.JobState_JOB_STATE_CANCELLED {
					fmt.Fprintf(w, "job %s cancelled: %s\n", j.GetId(), j.GetReason())
					return nil
				}
				fmt.Fprintf(w, "job %s is %s: its worker stops it at the next heartbeat (gyre logs -f %s)\n", j.GetId(), jobState(j), j.GetId())
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept on the job and in its event)")
	return cmd
}

func newGetJobsCmd(o *clientOptions) *cobra.Command {
	var (
		pipeline string
		state    string
		limit    int
	)
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List training jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			st, err := parseJobState(state)
			if err != nil {
				return err
			}
			req := &schedulerv1.ListJobsRequest{Pipeline: pipeline, State: st, PageSize: 500}
			var jobs []*schedulerv1.Job
			more := false
			if limit > 0 {
				req.PageSize = int32(min(limit, 1000))
				resp, err := c.ListJobs(cmd.Context(), req)
				if err != nil {
					return err
				}
				jobs, more = resp.GetJobs(), resp.GetNextPageToken() != ""
			} else if jobs, err = c.AllJobs(cmd.Context(), req); err != nil {
				return err
			}
			names := workerNames(cmd.Context(), c)
			return o.emit(cmd.OutOrStdout(), &schedulerv1.ListJobsResponse{Jobs: jobs}, func(w io.Writer) error {
				if len(jobs) == 0 {
					fmt.Fprintln(w, "No jobs.")
					return nil
				}
				row(w, "ID", "PIPELINE", "STATE", "TRIGGER", "DATASET", "ATTEMPT", "WORKER", "MODEL VERSION", "CREATED", "DURATION")
				for _, j := range jobs {
					row(w, j.GetId(), fmt.Sprintf("%s@%d", j.GetPipeline(), j.GetPipelineVersion()), jobState(j), j.GetTrigger(),
						fmt.Sprintf("%s@%d", j.GetDataset(), j.GetDatasetVersion()), fmt.Sprintf("%d/%d", j.GetAttempt(), j.GetMaxAttempts()),
						orDash(workerName(names, j.GetWorker())), versionOrDash(j.GetModelVersion()), when(j.GetCreateTime()),
						orDash(formatDuration(jobDuration(j))))
				}
				if more {
					fmt.Fprintf(w, "(only the newest %d: --limit 0 lists all)\n", limit)
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only jobs of this pipeline")
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state: "+strings.Join(jobStateNames, ", "))
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many jobs (0: all)")
	return cmd
}

func newGetJobCmd(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "job ID",
		Short: "Show a training job: its state, attempts, worker, data, result and times",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			j, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			names := workerNames(cmd.Context(), c)
			return o.emit(cmd.OutOrStdout(), j, func(w io.Writer) error {
				printJob(w, j, names)
				return nil
			})
		}),
	}
}

func printJob(w io.Writer, j *schedulerv1.Job, workers map[string]string) {
	field(w, "ID", j.GetId())
	field(w, "Pipeline", fmt.Sprintf("%s@%d", j.GetPipeline(), j.GetPipelineVersion()))
	field(w, "State", jobState(j))
	field(w, "Reason", j.GetReason())
	field(w, "Trigger", j.GetTrigger())
	field(w, "Attempt", fmt.Sprintf("%d of %d", j.GetAttempt(), j.GetMaxAttempts()))
	field(w, "Priority", strconv.Itoa(int(j.GetPriority())))
	trainer := j.GetTrainer()
	if len(j.GetCommand()) > 0 {
		trainer += ": " + strings.Join(j.GetCommand(), " ")
	}
	field(w, "Trainer", trainer)
	field(w, "Target", j.GetTarget())
	field(w, "Params", compactJSON(j.GetParams()))
	if s := j.GetSplit(); s != nil {
		split := fmt.Sprintf("holdout %s, seed %d", num(s.GetHoldout()), s.GetSeed())
		if s.GetStratify() {
			split += ", stratified"
		}
		field(w, "Split", split)
	}
	field(w, "Resources", describeResources(j.GetResources()))
	field(w, "Timeout", j.GetTimeout().AsDuration().String())
	field(w, "Dataset", fmt.Sprintf("%s@%d", j.GetDataset(), j.GetDatasetVersion()))
	field(w, "Dataset sha256", j.GetDatasetSha256())
	field(w, "Dataset URI", j.GetDatasetUri())
	field(w, "Code", j.GetCodeRef())
	if id := j.GetWorker(); id != "" {
		label := id
		if name, ok := workers[id]; ok {
			label = name + " (" + id + ")"
		}
		field(w, "Worker", label)
	}
	field(w, "GPUs", j.GetGpuDevices())
	if j.GetModelVersion() > 0 {
		field(w, "Model version", fmt.Sprintf("%s@%d", j.GetModel(), j.GetModelVersion()))
	} else {
		field(w, "Model", j.GetModel())
	}
	field(w, "Metrics", pairs(j.GetMetrics(), num))
	field(w, "Created", when(j.GetCreateTime()))
	if nb := j.GetNotBefore(); j.GetState() == schedulerv1.JobState_JOB_STATE_QUEUED && nb.AsTime().After(time.Now()) {
		field(w, "Not before", when(nb)+" (retraining cooldown or retry backoff)")
	}
	field(w, "Started", when(j.GetStartTime()))
	field(w, "Ended", when(j.GetEndTime()))
	field(w, "Duration", formatDuration(jobDuration(j)))
	field(w, "Logs", "gyre logs "+j.GetId())
}

func describeResources(r *schedulerv1.Resources) string {
	parts := []string{"cpu " + num(r.GetCpu())}
	if r.GetMemoryMib() > 0 {
		parts = append(parts, "memory "+bytesSize(r.GetMemoryMib()<<20))
	}
	if r.GetGpu() > 0 {
		gpu := fmt.Sprintf("gpu %d", r.GetGpu())
		if r.GetGpuModel() != "" {
			gpu += " × " + r.GetGpuModel()
		}
		parts = append(parts, gpu)
	}
	return strings.Join(parts, ", ")
}

func newGetWorkersCmd(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List the workers seen in the last hour, with their resources and running jobs",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			resp, err := c.ListWorkers(cmd.Context())
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), resp, func(w io.Writer) error {
				if len(resp.GetWorkers()) == 0 {
					fmt.Fprintln(w, "No workers seen in the last hour: start one with `gyre worker`.")
					return nil
				}
				row(w, "NAME", "CPUS", "MEMORY", "GPUS", "RUNNING JOBS", "LAST SEEN", "ID")
				for _, wk := range resp.GetWorkers() {
					row(w, wk.GetName(), num(wk.GetCpu()), bytesSize(wk.GetMemoryMib()<<20), orDash(describeGPUs(wk.GetGpus())),
						orDash(strings.Join(wk.GetRunningJobs(), ",")), ago(wk.GetLastSeen().AsTime()), wk.GetId())
				}
				return nil
			})
		}),
	}
}

// describeGPUs counts GPUs per model: "2 × H100 (80.0 GiB)".
func describeGPUs(gpus []*schedulerv1.GPU) string {
	type kind struct {
		model string
		mib   int64
	}
	count := map[kind]int{}
	var order []kind
	for _, g := range gpus {
		k := kind{orDash(g.GetModel()), g.GetMemoryMib()}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d × %s", count[k], k.model)
		if k.mib > 0 {
			parts[i] += " (" + bytesSize(k.mib<<20) + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// workerNames maps worker ids to names. Names only decorate ids, so a
// failed lookup shows the ids rather than failing the command.
func workerNames(ctx context.Context, c *client.Client) map[string]string {
	names := map[string]string{}
	resp, err := c.ListWorkers(ctx)
	if err != nil {
		return names
	}
	for _, w := range resp.GetWorkers() {
		names[w.GetId()] = w.GetName()
	}
	return names
}

func workerName(names map[string]string, id string) string {
	if name, ok := names[id]; ok {
		return name
	}
	return id
}

// jobStateNames are the states --state accepts, in lifecycle order.
var jobStateNames = []string{"queued", "running", "succeeded", "failed", "cancelled"}

func parseJobState(s string) (schedulerv1.JobState, error) {
	if s == "" {
		return schedulerv1.JobState_JOB_STATE_UNSPECIFIED, nil
	}
	name := strings.TrimPrefix(strings.ToLower(s), "job_state_")
	if !slices.Contains(jobStateNames, name) {
		return 0, fmt.Errorf("unknown job state %q: use one of %s", s, strings.Join(jobStateNames, ", "))
	}
	return schedulerv1.JobState(schedulerv1.JobState_value["JOB_STATE_"+strings.ToUpper(name)]), nil
}

// jobState is the state in lower case, with what is about to change it.
func jobState(j *schedulerv1.Job) string {
	s := strings.ToLower(strings.TrimPrefix(j.GetState().String(), "JOB_STATE_"))
	switch {
	case j.GetState() == schedulerv1.JobState_JOB_STATE_RUNNING && j.GetCancelRequested():
		s += " (cancelling)"
	case j.GetState() == schedulerv1.JobState_JOB_STATE_QUEUED && j.GetAttempt() > 0:
		s += fmt.Sprintf(" (retry after attempt %d)", j.GetAttempt())
	}
	return s
}

// jobDuration is how long the job has run: start to end, or to now while it runs.
func jobDuration(j *schedulerv1.Job) time.Duration {
	if j.GetStartTime() == nil {
		return 0
	}
	end := time.Now()
	if j.GetEndTime() != nil {
		end = j.GetEndTime().AsTime()
	}
	return end.Sub(j.GetStartTime().AsTime())
}

func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func ago(t time.Time) string {
	d := time.Since(t)
	if d < time.Second {
		return "just now"
	}
	return formatDuration(d.Truncate(time.Second)) + " ago"
}
