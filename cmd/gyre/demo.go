package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/gyreml/gyre/pkg/client"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// demoPipeline is a copy of the DESIGN.md example, so the demo runs from the binary alone.
//
//go:embed demo_pipeline.yaml
var demoPipeline string

// The demo's data: copies of examples/datasets, which a test keeps identical.
var (
	//go:embed demo_data/credit-clean.csv
	demoCleanCSV []byte
	//go:embed demo_data/credit-pii.csv
	demoPIICSV []byte
)

const (
	demoCleanFile = "credit-clean.csv"
	demoPIIFile   = "credit-pii.csv"
	// demoLogLines of a job's log are shown; `gyre logs` has the rest.
	demoLogLines = 12
)

// demoRetrainParams make the second candidate: demo_pipeline.yaml's trainer
// fitted to convergence, with less regularization than its quick first fit.
var demoRetrainParams = map[string]any{"maxIter": 100, "l2": 0.1}

func newDemoCmd(o *clientOptions) *cobra.Command {
	var startTimeout, jobTimeout, evaluationTimeout, rolloutTimeout, loopTimeout time.Duration
	var skipLoop bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play the Gyre loop against a running server (or a private `gyre dev` it starts)",
		Long: "The demo applies a pipeline, pushes a clean dataset (validated) and one with personal data\n" +
			"(rejected), trains a model version on a worker from the clean one, waits for its evaluation\n" +
			"against the pipeline's gates and for the deployer to release it to staging (smoke test) and\n" +
			"production, retrains it under a new pipeline version with other parameters, waits for the\n" +
			"retrained version's evaluation against the production champion and for its canary into\n" +
			"production (with live traffic), asks production for a prediction, then sends drifted traffic\n" +
			"until the monitor alerts and follows the loop (retraining, evaluation, staging, canary) to a\n" +
			"new production version, timing alert to serving, and shows its lineage and checks the audit log. When nothing answers on --server it starts `gyre dev` (with its worker and\n" +
			"evaluator) in a temporary state directory and stops it at the end.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			d := &demo{out: out, c: o.client(), server: o.serverURL(), jobTimeout: jobTimeout, evaluationTimeout: evaluationTimeout,
				rolloutTimeout: rolloutTimeout, loopTimeout: loopTimeout, skipLoop: skipLoop}
			ctx := cmd.Context()
			if err := d.connect(ctx, startTimeout); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "demo could not reach a Gyre server:")
				printError(cmd.ErrOrStderr(), d.server, err)
				d.stopDev(cmd.ErrOrStderr())
				return exitError{code: 1}
			}
			err := d.play(ctx)
			d.stopDev(out)
			if err != nil {
				var se *stageError
				if errors.As(err, &se) {
					fmt.Fprintf(cmd.ErrOrStderr(), "\nstage %d (%s) failed:\n", se.n, se.title)
					err = se.err
				}
				printError(cmd.ErrOrStderr(), d.server, err)
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&startTimeout, "start-timeout", 2*time.Minute, "how long to wait for a `gyre dev` the demo starts")
	cmd.Flags().DurationVar(&jobTimeout, "job-timeout", 5*time.Minute, "how long to wait for each training job to end")
	cmd.Flags().DurationVar(&evaluationTimeout, "evaluation-timeout", 2*time.Minute, "how long to wait for each model version's evaluation")
	cmd.Flags().BoolVar(&skipLoop, "skip-loop", false, "stop after production answers: no injected drift, no automatic retraining")
	cmd.Flags().DurationVar(&loopTimeout, "loop-timeout", 5*time.Minute, "how long the injected drift may take to come back as a new production version")
	cmd.Flags().DurationVar(&rolloutTimeout, "rollout-timeout", 3*time.Minute, "how long to wait for each rollout to staging or production")
	return cmd
}

// demo holds what the stages share and what the summary reports.
type demo struct {
	out               io.Writer
	c                 *client.Client
	server            string
	dev               *devChild
	jobTimeout        time.Duration
	evaluationTimeout time.Duration
	rolloutTimeout    time.Duration
	loopTimeout       time.Duration
	skipLoop          bool

	pipeline   *registryv1.Pipeline // the version the next job trains under
	created    bool
	dataset    *ingestionv1.DatasetVersion // the validated version the models train on
	rejected   *ingestionv1.UploadVersionResponse
	first      *registryv1.ModelVersion
	second     *registryv1.ModelVersion
	firstJob   *schedulerv1.Job
	secondJob  *schedulerv1.Job
	firstEval  *evaluatorv1.Evaluation
	secondEval *evaluatorv1.Evaluation
	releases   []*deployerv1.Deployment
	third      *registryv1.ModelVersion // retrained by the loop
	loopEval   *evaluatorv1.Evaluation
	alertAt    time.Time
	loopTime   time.Duration
	curl       string
	audit      *registryv1.VerifyAuditResponse
}

type stageError struct {
	n     int
	title string
	err   error
}

func (e *stageError) Error() string { return fmt.Sprintf("stage %d (%s): %v", e.n, e.title, e.err) }
func (e *stageError) Unwrap() error { return e.err }

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, "   "+format+"\n", args...) }

// connect uses the server on --server, or starts a private `gyre dev`.
func (d *demo) connect(ctx context.Context, startTimeout time.Duration) error {
	probe, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := d.c.Ready(probe)
	cancel()
	if err == nil {
		fmt.Fprintf(d.out, "Using the Gyre server at %s\n", d.server)
		return nil
	}
	var netErr net.Error
	if !errors.As(err, &netErr) && !errors.Is(err, syscall.ECONNREFUSED) {
		// Something answered but is not ready yet: give it the start timeout.
		fmt.Fprintf(d.out, "The Gyre server at %s is not ready yet (%v); waiting up to %s\n", d.server, err, startTimeout)
		return waitReady(ctx, d.c, startTimeout, nil)
	}
	fmt.Fprintf(d.out, "No Gyre server answers at %s: starting a private `gyre dev` for the demo...\n", d.server)
	dev, err := startDevChild(ctx, startTimeout)
	if err != nil {
		return err
	}
	d.dev, d.server, d.c = dev, dev.url, client.New(dev.url)
	fmt.Fprintf(d.out, "gyre dev is ready at %s in %s (state in %s)\n", dev.url, dev.readyIn.Round(100*time.Millisecond), dev.stateDir)
	return nil
}

func (d *demo) stopDev(w io.Writer) {
	if d.dev == nil {
		return
	}
	fmt.Fprintln(w, "\nStopping the demo's gyre dev and removing its state...")
	if err := d.dev.stop(); err != nil {
		fmt.Fprintln(w, "warning:", err)
	}
	d.dev = nil
}

func (d *demo) play(ctx context.Context) error {
	stages := []struct {
		title string
		run   func(context.Context) error
	}{
		{"Apply the pipeline", d.applyPipeline},
		{"Push the training data: a clean file, then one with personal data", d.pushData},
		{"Train a model version on a worker", d.trainFirst},
		{"Evaluate version 1 against the pipeline's gates; the deployer releases it to staging and production", d.evaluateFirst},
		{"Retrain with other parameters, under a new pipeline version", d.trainSecond},
		{"Evaluate version 2 against the production champion; the deployer canaries it into production", d.evaluateSecond},
		{"Production answers predictions", d.serve},
		{"Production drifts: the loop retrains, evaluates and releases by itself", d.closeLoop},
		{"Lineage of the production version", d.lineage},
		{"Check the audit log", d.checkAudit},
	}
	if d.skipLoop {
		stages = slices.DeleteFunc(stages, func(s struct {
			title string
			run   func(context.Context) error
		}) bool {
			return strings.HasPrefix(s.title, "Production drifts")
		})
	}
	for i, s := range stages {
		fmt.Fprintf(d.out, "\n%d) %s\n", i+1, s.title)
		if err := s.run(ctx); err != nil {
			return &stageError{n: i + 1, title: s.title, err: err}
		}
	}
	d.summary()
	return nil
}

func (d *demo) applyPipeline(ctx context.Context) error {
	resp, err := d.c.ApplyPipeline(ctx, demoPipeline)
	if err != nil {
		return err
	}
	d.pipeline, d.created = resp.GetPipeline(), resp.GetCreated()
	p := d.pipeline
	if d.created {
		d.say("pipeline %s version %d created (digest %s)", p.GetName(), p.GetVersion(), short(p.GetDigest()))
	} else {
		d.say("pipeline %s unchanged (version %d): applying the same spec again is a no-op", p.GetName(), p.GetVersion())
	}
	d.say("it trains model %q from dataset %q; the registry stored the spec with every default filled in", p.GetModel(), p.GetDataset())
	m, err := d.c.GetModel(ctx, p.GetModel())
	if err != nil {
		return err
	}
	if m.GetLatestVersion() == 0 {
		d.say("model %s exists, with no versions yet", m.GetName())
	} else {
		d.say("model %s exists, latest version %d", m.GetName(), m.GetLatestVersion())
	}
	return nil
}

func (d *demo) pushData(ctx context.Context) error {
	p := d.pipeline
	resp, err := d.push(ctx, demoCleanFile, demoCleanCSV)
	if err != nil {
		return err
	}
	if rejected(resp) {
		return fmt.Errorf("%s was rejected: %s", demoCleanFile, strings.Join(resp.GetSummary().GetReasons(), "; "))
	}
	v, sum := resp.GetVersion(), resp.GetSummary()
	d.dataset = v
	if resp.GetExisting() {
		d.say("%s: unchanged, same bytes as version %d of %s", demoCleanFile, v.GetVersion(), v.GetDataset())
	} else {
		d.say("%s: validated, stored as %s version %d", demoCleanFile, v.GetDataset(), v.GetVersion())
	}
	d.say("sha256 %s, %d rows, %s stored", v.GetSha256(), v.GetRows(), bytesSize(v.GetSizeBytes()))
	d.say("rules: %d checked, %d failed; personal data: %d findings; smallest group over the quasi-identifiers: %d rows",
		sum.GetRulesChecked(), sum.GetRulesFailed(), sum.GetPrivacyFindings(), sum.GetSmallestEquivalenceClass())

	before, err := d.c.GetDataset(ctx, p.GetDataset())
	if err != nil {
		return err
	}
	resp, err = d.push(ctx, demoPIIFile, demoPIICSV)
	if err != nil {
		return err
	}
	if !rejected(resp) {
		return fmt.Errorf("%s holds e-mail addresses, yet it was accepted as version %d", demoPIIFile, resp.GetVersion().GetVersion())
	}
	d.rejected = resp
	d.say("%s (the same rows plus email and notes columns): rejected", demoPIIFile)
	for _, r := range resp.GetSummary().GetReasons() {
		d.say("  - %s", r)
	}
	after, err := d.c.GetDataset(ctx, p.GetDataset())
	if err != nil {
		return err
	}
	if after.GetLatestVersion() != before.GetLatestVersion() {
		return fmt.Errorf("the rejected upload moved %s from version %d to %d", p.GetDataset(), before.GetLatestVersion(), after.GetLatestVersion())
	}
	d.say("nothing was stored: %s is still at version %d, with %d rejected upload(s) on record",
		after.GetName(), after.GetLatestVersion(), after.GetRejectedUploads())
	d.say("the rejection's report names columns, detectors and row numbers, never a value: gyre describe dataset %s --report %s",
		p.GetDataset(), short(resp.GetReportSha256()))
	return nil
}

// push uploads one of the demo's files under the demo pipeline's validation.
func (d *demo) push(ctx context.Context, file string, data []byte) (*ingestionv1.UploadVersionResponse, error) {
	contentType, err := client.ContentTypeFor(file)
	if err != nil {
		return nil, err
	}
	p := d.pipeline
	resp, err := d.c.PushDataset(ctx, p.GetDataset(), bytes.NewReader(data), int64(len(data)), contentType, p.GetName(), nil)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", file, err)
	}
	return resp, nil
}

func (d *demo) trainFirst(ctx context.Context) error {
	v, job, err := d.train(ctx)
	if err != nil {
		return err
	}
	d.first, d.firstJob = v, job
	return nil
}

func (d *demo) trainSecond(ctx context.Context) error {
	manifest, err := withTrainingParams(demoPipeline, demoRetrainParams)
	if err != nil {
		return err
	}
	resp, err := d.c.ApplyPipeline(ctx, manifest)
	if err != nil {
		return err
	}
	p := resp.GetPipeline()
	if resp.GetCreated() {
		d.say("applied the pipeline with other training params: version %d created (digest %s)", p.GetVersion(), short(p.GetDigest()))
	} else {
		d.say("the pipeline already has these training params: version %d unchanged", p.GetVersion())
	}
	d.pipeline = p
	v, job, err := d.train(ctx)
	if err != nil {
		return err
	}
	d.second, d.secondJob = v, job
	return nil
}

// withTrainingParams is a pipeline manifest with spec.training.params
// replaced. It uses YAML 1.2 (yaml.v3), where retraining's key "on" is not true.
func withTrainingParams(manifest string, params map[string]any) (string, error) {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &doc); err != nil {
		return "", fmt.Errorf("read the demo pipeline: %w", err)
	}
	spec, _ := doc["spec"].(map[string]any)
	training, _ := spec["training"].(map[string]any)
	if training == nil {
		return "", errors.New("the demo pipeline has no spec.training")
	}
	training["params"] = params
	out, err := yaml.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("write the demo pipeline: %w", err)
	}
	return string(out), nil
}

// train submits a job for the current pipeline version on the demo's
// dataset, follows its log, and returns the model version it registered.
func (d *demo) train(ctx context.Context) (*registryv1.ModelVersion, *schedulerv1.Job, error) {
	p := d.pipeline
	job, err := d.c.SubmitJob(ctx, &schedulerv1.SubmitJobRequest{
		Pipeline: p.GetName(), DatasetVersion: d.dataset.GetVersion(), CodeRef: "gyre-demo/" + version,
	})
	if err != nil {
		return nil, nil, err
	}
	d.say("submitted job %s, as `gyre train %s --dataset-version %d` does", job.GetId(), p.GetName(), d.dataset.GetVersion())
	d.say("it trains %s with params %s on %s@%d; its log:", job.GetTrainer(), orDash(compactJSON(job.GetParams())), job.GetDataset(), job.GetDatasetVersion())
	var buf bytes.Buffer
	warnWithoutWorkers(ctx, d.c, &buf)
	if buf.Len() > 0 {
		d.say("%s", strings.TrimSpace(buf.String()))
	}

	waitCtx, cancel := context.WithTimeout(ctx, d.jobTimeout)
	defer cancel()
	lines := 0
	ended, err := followJob(waitCtx, d.c, job.GetId(), 0, func(l *schedulerv1.LogLine) {
		if lines++; lines <= demoLogLines {
			d.say("│ %s", l.GetText())
		}
	})
	if lines > demoLogLines {
		d.say("│ ... %d more lines: gyre logs %s", lines-demoLogLines, job.GetId())
	}
	if err != nil {
		if waitCtx.Err() != nil && ctx.Err() == nil {
			return nil, nil, fmt.Errorf("job %s did not end within %s (is a worker connected? gyre get workers): %w", job.GetId(), d.jobTimeout, err)
		}
		return nil, nil, err
	}
	if ended.GetState() != schedulerv1.JobState_JOB_STATE_SUCCEEDED {
		return nil, nil, fmt.Errorf("job %s %s: %s (gyre logs %s)", ended.GetId(), jobState(ended), orDash(ended.GetReason()), ended.GetId())
	}
	d.say("job %s succeeded in %s on worker %s", ended.GetId(), formatDuration(jobDuration(ended)), workerName(workerNames(ctx, d.c), ended.GetWorker()))
	v, err := d.c.GetModelVersion(ctx, ended.GetModel(), ended.GetModelVersion())
	if err != nil {
		return nil, nil, err
	}
	d.say("registered %s version %d: %s bundle, sha256 %s, %s", v.GetModel(), v.GetVersion(), orDash(v.GetFormat()),
		short(v.GetArtifactSha256()), bytesSize(v.GetSizeBytes()))
	d.say("metrics: %s", orDash(pairs(v.GetMetrics(), num)))
	lin := v.GetLineage()
	d.say("lineage: dataset %s@%d (sha256 %s) -> pipeline %s@%d -> training job %s -> version %d", lin.GetDataset(), lin.GetDatasetVersion(),
		short(lin.GetDatasetDigest()), lin.GetPipeline(), lin.GetPipelineVersion(), lin.GetTrainingJob(), v.GetVersion())
	return v, ended, nil
}

func (d *demo) evaluateFirst(ctx context.Context) error {
	e, err := d.evaluation(ctx, d.first)
	if err != nil {
		return err
	}
	d.firstEval = e
	return d.release(ctx, d.first)
}

func (d *demo) evaluateSecond(ctx context.Context) error {
	e, err := d.evaluation(ctx, d.second)
	if err != nil {
		return err
	}
	d.secondEval = e
	if err := d.release(ctx, d.second); err != nil {
		return err
	}
	model := d.pipeline.GetModel()
	changes, err := d.c.AllAliasHistory(ctx, &registryv1.ListAliasHistoryRequest{Model: model, PageSize: 1000})
	if err != nil {
		return err
	}
	const shown = 6
	d.say("alias history of %s:", model)
	if len(changes) > shown {
		d.say("(%d earlier changes not shown: gyre alias history %s)", len(changes)-shown, model)
		changes = changes[len(changes)-shown:]
	}
	d.indented(func(w io.Writer) { printAliasHistory(w, changes) })
	return nil
}

// evaluation waits for the evaluation the evaluator starts on its own when
// a version is registered, prints it, and fails unless it passed.
func (d *demo) evaluation(ctx context.Context, v *registryv1.ModelVersion) (*evaluatorv1.Evaluation, error) {
	d.say("every registered version is evaluated on its training holdout; waiting for %s version %d's verdict...", v.GetModel(), v.GetVersion())
	waitCtx, cancel := context.WithTimeout(ctx, d.evaluationTimeout)
	defer cancel()
	e, err := d.waitEvaluation(waitCtx, v)
	if err != nil {
		if waitCtx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%s version %d had no verdict within %s (is the evaluator running? gyre get evaluations --model %s): %w",
				v.GetModel(), v.GetVersion(), d.evaluationTimeout, v.GetModel(), err)
		}
		return nil, err
	}
	d.say("evaluation %s: %s in %s, on %d holdout rows of %s", e.GetId(), strings.ToUpper(evaluationState(e)),
		formatDuration(evaluationDuration(e)), e.GetHoldoutRows(), orDash(datasetRef(e)))
	if e.GetChampionVersion() > 0 {
		d.say("compared with the champion: production version %d, scored on the same rows", e.GetChampionVersion())
	} else {
		d.say("no champion yet (production points to no version): the gates on champion.* are skipped")
	}
	d.indented(func(w io.Writer) { printDemoGates(w, e.GetGates()) })
	d.say("%s", demoKeyMetrics(e))
	d.say("the full report (metrics, fairness by group, importance, latency, champion): gyre report evaluation %s > report.html", e.GetId())
	if e.GetState() != evaluatorv1.EvaluationState_EVALUATION_STATE_PASSED {
		return nil, fmt.Errorf("evaluation %s of %s@%d failed: %s", e.GetId(), e.GetModel(), e.GetVersion(), strings.Join(e.GetReasons(), "; "))
	}
	return e, nil
}

// waitEvaluation finds the version's newest evaluation and polls it until it has a verdict.
func (d *demo) waitEvaluation(ctx context.Context, v *registryv1.ModelVersion) (*evaluatorv1.Evaluation, error) {
	tick := time.NewTicker(evaluationPoll)
	defer tick.Stop()
	for {
		resp, err := d.c.ListEvaluations(ctx, &evaluatorv1.ListEvaluationsRequest{Model: v.GetModel(), PageSize: 50})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.GetEvaluations() {
			if e.GetVersion() == v.GetVersion() {
				return waitEvaluation(ctx, d.c, e, func(*evaluatorv1.Evaluation) {})
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no evaluation of %s@%d yet: %w", v.GetModel(), v.GetVersion(), ctx.Err())
		case <-tick.C:
		}
	}
}

// printDemoGates is printGates with values rounded, and a reason only where the value does not say it.
func printDemoGates(w io.Writer, gates []*evaluatorv1.GateResult) {
	row(w, "GATE", "RESULT", "VALUES READ")
	for _, g := range gates {
		values := make(map[string]string, len(g.GetValues()))
		for k, v := range g.GetValues() {
			values[k] = roundedValue(v)
		}
		read := pairs(values, str)
		if g.GetSkipped() {
			read = g.GetReason()
		}
		row(w, g.GetExpression(), gateResult(g), orDash(read))
	}
}

// roundedValue shortens a number a gate read to four significant digits.
func roundedValue(v string) string {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return v
	}
	return num(f)
}

// demoKeyMetrics is the line a reader looks at first: quality, fairness, speed.
func demoKeyMetrics(e *evaluatorv1.Evaluation) string {
	m := e.GetMetrics()
	metric := func(name string) string {
		if v, ok := m[name]; ok {
			return num(v)
		}
		return "-"
	}
	// Fairness is not among the version's metrics; the gate that read it has it.
	dp := "-"
	for _, g := range e.GetGates() {
		if v, ok := g.GetValues()["fairness.sex.demographic_parity_difference"]; ok {
			dp = roundedValue(v)
		}
	}
	return fmt.Sprintf("key metrics: auc %s, accuracy %s, demographic parity difference by sex %s, p99 latency %s ms",
		metric("auc"), metric("accuracy"), dp, metric("latency_p99_ms"))
}

func (d *demo) lineage(ctx context.Context) error {
	model := d.pipeline.GetModel()
	a, err := d.c.GetAlias(ctx, model, "production")
	if err != nil {
		return err
	}
	node := fmt.Sprintf("model:%s@%d", model, a.GetVersion())
	lin, err := d.c.GetLineage(ctx, &registryv1.GetLineageRequest{Node: node, Direction: registryv1.LineageDirection_LINEAGE_DIRECTION_UPSTREAM})
	if err != nil {
		return err
	}
	d.say("production points to version %d; where it came from:", a.GetVersion())
	d.indented(func(w io.Writer) { printLineage(w, lin, registryv1.LineageDirection_LINEAGE_DIRECTION_UPSTREAM) })
	if len(lin.GetEdges()) == 0 {
		return fmt.Errorf("the registry recorded no lineage for %s", node)
	}
	return nil
}

func (d *demo) checkAudit(ctx context.Context) error {
	res, err := d.c.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	d.audit = res
	if !res.GetOk() {
		return errors.New(auditVerdict(res))
	}
	d.say("%s", auditVerdict(res))
	d.say("every change above (apply, register, alias moves) is a hash-chained record: gyre audit list")
	return nil
}

func (d *demo) summary() {
	p, model := d.pipeline, d.pipeline.GetModel()
	state := "unchanged"
	if d.created {
		state = "created"
	}
	fmt.Fprintf(d.out, "\nDone. What the demo did on %s:\n", d.server)
	d.indented(func(w io.Writer) {
		field(w, "pipeline", fmt.Sprintf("%s version %d (%s), then version %d with other params", p.GetName(), d.firstJob.GetPipelineVersion(), state, p.GetVersion()))
		field(w, "dataset", fmt.Sprintf("%s@%d, sha256 %s, %d rows", d.dataset.GetDataset(), d.dataset.GetVersion(), d.dataset.GetSha256(), d.dataset.GetRows()))
		field(w, "rejected upload", fmt.Sprintf("%s (personal data), report sha256 %s", demoPIIFile, d.rejected.GetReportSha256()))
		for _, j := range []*schedulerv1.Job{d.firstJob, d.secondJob} {
			field(w, "training job", fmt.Sprintf("%s: %s in %s", j.GetId(), jobState(j), formatDuration(jobDuration(j))))
		}
		for _, v := range []*registryv1.ModelVersion{d.first, d.second} {
			field(w, "model version", fmt.Sprintf("%s@%d from job %s, sha256 %s", model, v.GetVersion(), v.GetLineage().GetTrainingJob(), v.GetArtifactSha256()))
		}
		for _, e := range []*evaluatorv1.Evaluation{d.firstEval, d.secondEval} {
			champion := "no champion"
			if e.GetChampionVersion() > 0 {
				champion = fmt.Sprintf("against champion version %d", e.GetChampionVersion())
			}
			field(w, "evaluation", fmt.Sprintf("%s of %s@%d: %s, gates %s, %s", e.GetId(), e.GetModel(), e.GetVersion(), evaluationState(e), gateCount(e.GetGates()), champion))
		}
		for _, r := range d.releases {
			field(w, "deployment", fmt.Sprintf("%s: %s@%d to production by %s, %s", r.GetId(), r.GetModel(), r.GetVersion(), r.GetStrategy(), deploymentState(r)))
		}
		if d.third == nil {
			field(w, "aliases", fmt.Sprintf("production -> %d, staging -> %d", d.second.GetVersion(), d.second.GetVersion()))
			field(w, "audit log", fmt.Sprintf("intact, %d records", d.audit.GetRecords()))
			return
		}
		field(w, "closed loop", fmt.Sprintf("drift alert at %s -> retrained %s@%d -> evaluated -> staging -> canary -> production in %s",
			d.alertAt.Local().Format("15:04:05"), model, d.third.GetVersion(), formatDuration(d.loopTime)))
		field(w, "aliases", fmt.Sprintf("production -> %d, staging -> %d", d.third.GetVersion(), d.third.GetVersion()))
		field(w, "audit log", fmt.Sprintf("intact, %d records", d.audit.GetRecords()))
	})
	if d.dev != nil {
		fmt.Fprintln(d.out, "\nThis server was the demo's own; run `gyre dev` to keep one, then `gyre demo` again.")
		return
	}
	fmt.Fprintf(d.out, "\nPredict: %s\n", d.curl)
	fmt.Fprintf(d.out, "\nLook around: gyre get dataset %s · gyre describe dataset %s@%d\n", d.dataset.GetDataset(), d.dataset.GetDataset(), d.dataset.GetVersion())
	fmt.Fprintf(d.out, "             gyre get jobs --pipeline %s · gyre get job %s · gyre logs %s · gyre get workers\n", p.GetName(), d.secondJob.GetId(), d.secondJob.GetId())
	fmt.Fprintf(d.out, "             gyre get evaluations --model %s · gyre describe evaluation %s · gyre report evaluation %s > report.html\n",
		model, d.secondEval.GetId(), d.secondEval.GetId())
	fmt.Fprintf(d.out, "             gyre get model %s · gyre get versions %s · gyre lineage %s@%d · gyre audit list\n", model, model, model, d.second.GetVersion())
}

// indented writes a table three spaces in, under the stage heading.
func (d *demo) indented(write func(w io.Writer)) {
	var buf bytes.Buffer
	tw := newTable(&buf)
	write(tw)
	_ = tw.Flush() // a bytes.Buffer does not fail
	for line := range strings.Lines(buf.String()) {
		fmt.Fprint(d.out, "   "+line)
	}
}

// devChild is a `gyre dev` the demo started and owns.
type devChild struct {
	cmd      *exec.Cmd
	url      string
	stateDir string
	output   *tailBuffer
	exited   chan error
	readyIn  time.Duration
}

func startDevChild(ctx context.Context, timeout time.Duration) (*devChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the gyre binary: %w", err)
	}
	stateDir, err := os.MkdirTemp("", "gyre-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo state dir: %w", err)
	}
	// As root, gyre dev runs Postgres as an unprivileged user, who must enter this directory.
	if err := os.Chmod(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo state dir: %w", err)
	}
	httpAddr, err := freeLocalAddr()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := freeLocalAddr()
	if err != nil {
		return nil, err
	}
	out := &tailBuffer{max: 16 << 10}
	cmd := exec.Command(exe, "dev", "--state-dir", stateDir, "--http-addr", httpAddr, "--grpc-addr", grpcAddr)
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(stateDir)
		return nil, fmt.Errorf("start gyre dev: %w", err)
	}
	dev := &devChild{cmd: cmd, url: "http://" + httpAddr, stateDir: stateDir, output: out, exited: make(chan error, 1)}
	go func() { dev.exited <- cmd.Wait() }()
	if err := waitReady(ctx, client.New(dev.url), timeout, dev.exited); err != nil {
		_ = dev.stop()
		return nil, fmt.Errorf("gyre dev did not become ready: %w\n--- last output of gyre dev ---\n%s", err, out.String())
	}
	dev.readyIn = time.Since(t0)
	return dev, nil
}

// stop sends SIGTERM, waits for gyre dev to drain and stop its Postgres, and removes the state.
func (d *devChild) stop() error {
	defer os.RemoveAll(d.stateDir)
	if d.cmd.ProcessState != nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return fmt.Errorf("stop gyre dev: %w", err)
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("gyre dev did not stop within 60s after SIGTERM: killed it\n%s", d.output.String())
	}
}

// waitReady polls /readyz until it answers 200, the timeout passes or the child exits.
func waitReady(ctx context.Context, c *client.Client, timeout time.Duration, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		probe, cancelProbe := context.WithTimeout(ctx, 2*time.Second)
		last = c.Ready(probe)
		cancelProbe()
		if last == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("gyre dev exited before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, last)
		case <-tick.C:
		}
	}
}

func freeLocalAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
