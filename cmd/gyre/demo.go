package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gyreml/gyre/pkg/client"
	ingestionv1 "github.com/gyreml/gyre/pkg/pb/gyre/ingestion/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
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
	demoTrainer   = "builtin/logistic"
	demoFormat    = "gyre-logistic-json"
)

func newDemoCmd(o *clientOptions) *cobra.Command {
	var startTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play the Gyre loop against a running server (or a private `gyre dev` it starts)",
		Long: "The demo applies a pipeline, pushes a clean dataset (validated) and one with personal data\n" +
			"(rejected), registers two model versions it trains itself on the clean one, moves the\n" +
			"staging and production aliases, shows the lineage and checks the audit log. When nothing\n" +
			"answers on --server it starts `gyre dev` with a temporary state directory and stops it at the end.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			d := &demo{out: out, c: o.client(), server: o.serverURL()}
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
	return cmd
}

// demo holds what the stages share and what the summary reports.
type demo struct {
	out    io.Writer
	c      *client.Client
	server string
	dev    *devChild

	pipeline *registryv1.Pipeline
	created  bool
	dataset  *ingestionv1.DatasetVersion // the validated version the models train on
	rejected *ingestionv1.UploadVersionResponse
	data     trainingData
	first    *registryv1.ModelVersion
	second   *registryv1.ModelVersion
	audit    *registryv1.VerifyAuditResponse
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
		{"Register a model version", d.registerFirst},
		{"Move aliases: staging, production, then a better version to staging", d.moveAliases},
		{"Lineage of the production version", d.lineage},
		{"Check the audit log", d.checkAudit},
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

func (d *demo) registerFirst(ctx context.Context) error {
	data, err := parseTrainingData(demoCleanCSV)
	if err != nil {
		return err
	}
	d.data = data
	d.say("training on %s@%d: %d rows, features %s, target %q", d.dataset.GetDataset(), d.dataset.GetVersion(),
		len(data.y), strings.Join(data.features, ", "), data.target)
	v, err := d.trainAndRegister(ctx, 5, "first candidate: a quick fit")
	if err != nil {
		return err
	}
	d.first = v
	return nil
}

// trainAndRegister fits a model with the given number of gradient steps and registers it.
func (d *demo) trainAndRegister(ctx context.Context, steps int, note string) (*registryv1.ModelVersion, error) {
	const learningRate = 0.5
	m := trainLogistic(d.data, steps, learningRate)
	acc, auc, loss := m.evaluate(d.data)
	artifact, err := m.artifact(d.dataset, time.Now())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(artifact)
	digest := hex.EncodeToString(sum[:])
	params, err := structpb.NewStruct(map[string]any{"steps": steps, "learningRate": learningRate})
	if err != nil {
		return nil, err
	}
	p := d.pipeline
	v, err := d.c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{
		Model:          p.GetModel(),
		ArtifactUri:    "s3://gyre/demo/" + digest,
		ArtifactSha256: digest,
		SizeBytes:      int64(len(artifact)),
		Format:         demoFormat,
		Params:         params,
		Metrics:        map[string]float64{"accuracy": round4(acc), "auc": round4(auc), "log_loss": round4(loss)},
		Tags:           map[string]string{"source": "gyre-demo", "note": note},
		Lineage: &registryv1.VersionLineage{
			Dataset: d.dataset.GetDataset(), DatasetVersion: d.dataset.GetVersion(), DatasetDigest: d.dataset.GetSha256(),
			Pipeline: p.GetName(), PipelineVersion: p.GetVersion(),
			Trainer: demoTrainer, CodeRef: "gyre-demo/" + version,
		},
	})
	if err != nil {
		return nil, err
	}
	d.say("trained a logistic regression with %d gradient steps: training accuracy %.3f, AUC %.3f, log loss %.3f", steps, acc, auc, loss)
	d.say("registered %s version %d: %d-byte artifact, sha256 %s", v.GetModel(), v.GetVersion(), len(artifact), short(digest))
	d.say("(the registry keeps the artifact's uri and sha256; uploading the file arrives with the training stage)")
	return v, nil
}

func (d *demo) moveAliases(ctx context.Context) error {
	model := d.pipeline.GetModel()
	move := func(alias string, v *registryv1.ModelVersion, reason string) error {
		a, err := d.c.SetAlias(ctx, &registryv1.SetAliasRequest{Model: model, Alias: alias, Version: v.GetVersion(), Reason: reason})
		if err != nil {
			return err
		}
		d.say("%s  (%s)", describeAliasMove(a, a.GetPreviousVersion()), reason)
		return nil
	}
	if err := move("staging", d.first, "demo: first candidate to staging"); err != nil {
		return err
	}
	if err := move("production", d.first, "demo: staging looked good"); err != nil {
		return err
	}
	v, err := d.trainAndRegister(ctx, 200, "second candidate: trained longer")
	if err != nil {
		return err
	}
	d.second = v
	if err := move("staging", d.second, "demo: better candidate"); err != nil {
		return err
	}
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
		field(w, "pipeline", fmt.Sprintf("%s version %d (%s)", p.GetName(), p.GetVersion(), state))
		field(w, "dataset", fmt.Sprintf("%s@%d, sha256 %s, %d rows", d.dataset.GetDataset(), d.dataset.GetVersion(), d.dataset.GetSha256(), d.dataset.GetRows()))
		field(w, "rejected upload", fmt.Sprintf("%s (personal data), report sha256 %s", demoPIIFile, d.rejected.GetReportSha256()))
		for _, v := range []*registryv1.ModelVersion{d.first, d.second} {
			field(w, "model version", fmt.Sprintf("%s@%d, accuracy %s, sha256 %s", model, v.GetVersion(), num(v.GetMetrics()["accuracy"]), v.GetArtifactSha256()))
		}
		field(w, "aliases", fmt.Sprintf("production -> %d, staging -> %d", d.first.GetVersion(), d.second.GetVersion()))
		field(w, "audit log", fmt.Sprintf("intact, %d records", d.audit.GetRecords()))
	})
	if d.dev != nil {
		fmt.Fprintln(d.out, "\nThis server was the demo's own; run `gyre dev` to keep one, then `gyre demo` again.")
		return
	}
	fmt.Fprintf(d.out, "\nLook around: gyre get dataset %s · gyre describe dataset %s@%d\n", d.dataset.GetDataset(), d.dataset.GetDataset(), d.dataset.GetVersion())
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

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

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

// trainingData is the demo's credit table: who defaulted, from a few features.
type trainingData struct {
	features []string
	target   string
	x        [][]float64
	y        []float64
}

// The columns the demo's model reads, and how it encodes sex.
var (
	demoFeatures = []string{"age", "income", "debt_ratio", "late_payments", "sex"}
	sexCodes     = map[string]float64{"f": 0, "m": 1}
)

const demoTarget = "default"

// parseTrainingData reads the demo's CSV into features and labels.
func parseTrainingData(data []byte) (trainingData, error) {
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return trainingData{}, fmt.Errorf("read demo data: %w", err)
	}
	if len(records) < 2 {
		return trainingData{}, errors.New("demo data has no rows")
	}
	header := records[0]
	wanted := append(slices.Clone(demoFeatures), demoTarget)
	columns := make([]int, len(wanted))
	for i, name := range wanted {
		if columns[i] = slices.Index(header, name); columns[i] < 0 {
			return trainingData{}, fmt.Errorf("demo data lacks column %q", name)
		}
	}
	d := trainingData{features: demoFeatures, target: demoTarget}
	for n, rec := range records[1:] {
		values := make([]float64, len(columns))
		for i, j := range columns {
			var ok bool
			if header[j] == "sex" {
				values[i], ok = sexCodes[rec[j]]
			} else {
				values[i], err = strconv.ParseFloat(rec[j], 64)
				ok = err == nil
			}
			if !ok {
				return trainingData{}, fmt.Errorf("demo data row %d, column %s: bad value %q", n+1, header[j], rec[j])
			}
		}
		d.x = append(d.x, values[:len(demoFeatures)])
		d.y = append(d.y, values[len(demoFeatures)])
	}
	return d, nil
}

// logistic is a logistic regression over standardized features.
type logistic struct {
	features []string
	target   string
	mean     []float64
	scale    []float64
	weights  []float64
	bias     float64
}

// trainLogistic runs full-batch gradient descent from zero weights: deterministic.
func trainLogistic(d trainingData, steps int, learningRate float64) *logistic {
	k := len(d.features)
	m := &logistic{features: d.features, target: d.target, mean: make([]float64, k), scale: make([]float64, k), weights: make([]float64, k)}
	n := float64(len(d.x))
	for j := range k {
		for _, row := range d.x {
			m.mean[j] += row[j] / n
		}
		for _, row := range d.x {
			m.scale[j] += (row[j] - m.mean[j]) * (row[j] - m.mean[j]) / n
		}
		m.scale[j] = math.Sqrt(m.scale[j])
		if m.scale[j] == 0 {
			m.scale[j] = 1
		}
	}
	grad := make([]float64, k)
	for range steps {
		clear(grad)
		gradBias := 0.0
		for i, row := range d.x {
			diff := m.predict(row) - d.y[i]
			for j := range k {
				grad[j] += diff * (row[j] - m.mean[j]) / m.scale[j]
			}
			gradBias += diff
		}
		for j := range k {
			m.weights[j] -= learningRate * grad[j] / n
		}
		m.bias -= learningRate * gradBias / n
	}
	return m
}

func (m *logistic) predict(row []float64) float64 {
	z := m.bias
	for j, v := range row {
		z += m.weights[j] * (v - m.mean[j]) / m.scale[j]
	}
	return 1 / (1 + math.Exp(-z))
}

// evaluate returns accuracy at 0.5, the ROC AUC and the mean log loss.
func (m *logistic) evaluate(d trainingData) (accuracy, auc, logLoss float64) {
	type scored struct{ p, y float64 }
	all := make([]scored, len(d.x))
	correct := 0
	for i, row := range d.x {
		p := m.predict(row)
		all[i] = scored{p, d.y[i]}
		if (p >= 0.5) == (d.y[i] == 1) {
			correct++
		}
		p = math.Min(math.Max(p, 1e-12), 1-1e-12)
		logLoss -= d.y[i]*math.Log(p) + (1-d.y[i])*math.Log(1-p)
	}
	n := float64(len(d.x))
	// AUC is the chance a random positive outscores a random negative (ties count half).
	sort.Slice(all, func(i, j int) bool { return all[i].p < all[j].p })
	var pos, neg, rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].p == all[i].p {
			j++
		}
		midRank := float64(i+j+1) / 2
		for _, s := range all[i:j] {
			if s.y == 1 {
				pos++
				rankSum += midRank
			} else {
				neg++
			}
		}
		i = j
	}
	if pos > 0 && neg > 0 {
		auc = (rankSum - pos*(pos+1)/2) / (pos * neg)
	}
	return float64(correct) / n, auc, logLoss / n
}

// artifact is the model file: everything needed to score a row, and where it came from.
func (m *logistic) artifact(ds *ingestionv1.DatasetVersion, trainedAt time.Time) ([]byte, error) {
	doc := map[string]any{
		"format":   demoFormat,
		"features": m.features,
		"target":   m.target,
		"mean":     m.mean,
		"scale":    m.scale,
		"weights":  m.weights,
		"bias":     m.bias,
		"dataset":  map[string]any{"name": ds.GetDataset(), "version": ds.GetVersion(), "sha256": ds.GetSha256()},
		// Every run's artifact is new: the registry refuses a second version with the same digest.
		"trainedAt": trainedAt.UTC().Format(time.RFC3339Nano),
		"encoding":  map[string]any{"sex": sexCodes},
		"trainer":   demoTrainer,
		"producer":  "gyre demo " + version + " (" + strconv.FormatInt(ds.GetRows(), 10) + " rows)",
	}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode model: %w", err)
	}
	return raw, nil
}
