package monitor_test

// End to end on real servers (gyretest: Postgres, in-process NATS JetStream
// and S3; targets registry, ingestion, scheduler, monitor): a pipeline, a
// profiled training dataset and registered versions, prediction logs
// published to JetStream the way the inference server does, feedback over
// the API, and windows in the past so the closer takes them at once.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/client"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/gyre"
	"github.com/gyreml/gyre/pkg/gyretest"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
	"github.com/gyreml/gyre/services/monitor"
)

const pipelineManifest = `apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training: {target: churned}
  evaluation: {sensitiveAttributes: [plan], minGroupSize: 20}
  monitoring:
    window: 1m
    minSamples: 100
    drift: {method: psi, threshold: 0.2}
    performance: ["accuracy >= 0.8"]
  retraining: {on: [drift, performance]}
`

type testEnv struct {
	*gyretest.Env
	mon monitorv1.MonitorServiceClient
	reg registryv1.RegistryServiceClient
	// base is the start of the first window the test logs into: far enough in
	// the past that every window it uses has ended.
	base time.Time
}

func start(t testing.TB, configure func(*config.Config)) *testEnv {
	t.Helper()
	env := gyretest.StartWith(t, func(c *config.Config) {
		c.Monitor.TickInterval = 50 * time.Millisecond
		c.Monitor.CloseDelay = 0
		if configure != nil {
			configure(c)
		}
	}, gyre.Registry, gyre.Ingestion, gyre.Scheduler, gyre.Monitor)
	ctx := context.Background()
	reg := registryv1.NewRegistryServiceClient(env.Conn)
	if _, err := reg.ApplyPipeline(ctx, &registryv1.ApplyPipelineRequest{Manifest: pipelineManifest}); err != nil {
		t.Fatal(err)
	}
	// The training data: tenure uniform on 0..59, spend on 0..99, two plans.
	var b strings.Builder
	b.WriteString("tenure,spend,plan,churned\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "%d,%d,%s,%s\n", i%60, (i*37)%100, []string{"basic", "pro"}[i%2], []string{"no", "yes"}[i%3/2])
	}
	req, _ := http.NewRequest("PUT", env.BaseURL+"/v1/datasets/customers/versions:upload", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s %s", resp.Status, body)
	}
	for v := range 2 { // versions 1 and 2 share the lineage
		if _, err := reg.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "churn", ArtifactUri: fmt.Sprintf("s3://gyre/models/churn/%d", v),
			ArtifactSha256: strings.Repeat(fmt.Sprintf("%02d", v), 32), Format: "gbdt",
			Lineage: &registryv1.VersionLineage{Dataset: "customers", DatasetVersion: 1, Pipeline: "churn", PipelineVersion: 1, TrainingJob: fmt.Sprint("job-", v)}}); err != nil {
			t.Fatal(err)
		}
	}
	return &testEnv{Env: env, mon: monitorv1.NewMonitorServiceClient(env.Conn), reg: reg,
		base: time.Now().Add(-30 * time.Minute).Truncate(time.Minute)}
}

// traffic describes the records of one logged batch.
type traffic struct {
	version  int64
	env      string
	window   int // index of the minute after base
	n        int
	drifted  bool // tenure shifted by 40: far outside the training range
	errorsIn int  // one request in errorsIn fails
	prefix   string
}

func (tr traffic) records(base time.Time) []*eventsv1.PredictionRecord {
	env := tr.env
	if env == "" {
		env = "production"
	}
	var out []*eventsv1.PredictionRecord
	for i := range tr.n {
		tenure := float64(i % 60)
		if tr.drifted {
			tenure += 40
		}
		p := float64(i%10) / 10
		label := "no"
		if p >= 0.5 {
			label = "yes"
		}
		r := &eventsv1.PredictionRecord{
			PredictionId: fmt.Sprintf("%s-%d", tr.prefix, i), Model: "churn", ModelVersion: tr.version, Environment: env, Role: "stable",
			Time:      timestamppb.New(base.Add(time.Duration(tr.window)*time.Minute + time.Duration(i)*time.Millisecond)),
			LatencyMs: 1 + float64(i%7), Numeric: map[string]float64{"tenure": tenure, "spend": float64((i * 37) % 100)},
			Categorical: map[string]string{"plan": []string{"basic", "pro"}[i%2]},
			Label:       label, Value: p, Probabilities: []float64{1 - p, p},
		}
		if tr.errorsIn > 0 && (i/10)%tr.errorsIn == 0 { // every value of p fails alike
			r.Label, r.Value, r.Probabilities, r.Error = "", 0, nil, "boom"
		}
		out = append(out, r)
	}
	return out
}

// publish sends a batch as the inference server does: a CloudEvent on
// gyre.inference.logged; ceID and msgID default to the batch id.
func publish(t testing.TB, js jetstream.JetStream, batch, ceID, msgID string, recs []*eventsv1.PredictionRecord) {
	t.Helper()
	data, err := protojson.Marshal(&eventsv1.InferenceLogged{Batch: batch, Predictions: recs})
	if err != nil {
		t.Fatal(err)
	}
	if ceID == "" {
		ceID = batch
	}
	if msgID == "" {
		msgID = batch
	}
	msg := nats.NewMsg("gyre.inference.logged")
	msg.Data = data
	msg.Header.Set(events.HeaderID, ceID)
	msg.Header.Set(events.HeaderType, "dev.gyre.inference.logged")
	msg.Header.Set(events.HeaderSource, "gyre/inference")
	msg.Header.Set(events.HeaderSpecVersion, "1.0")
	msg.Header.Set(events.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	msg.Header.Set(events.HeaderContentType, "application/json")
	if _, err := js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) log(t *testing.T, tr traffic) {
	t.Helper()
	if tr.prefix == "" {
		tr.prefix = fmt.Sprintf("v%d-w%d", tr.version, tr.window)
	}
	publish(t, e.JS, "batch-"+tr.prefix, "", "", tr.records(e.base))
}

// waitFor polls cond until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// closed waits until the version's window at index i closed, and returns it.
func (e *testEnv) closed(t *testing.T, version int64, i int) *monitorv1.Window {
	t.Helper()
	var got *monitorv1.Window
	waitFor(t, fmt.Sprintf("window %d of version %d to close", i, version), func() bool {
		resp, err := e.mon.ListWindows(context.Background(), &monitorv1.ListWindowsRequest{Model: "churn", Version: version})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range resp.GetWindows() {
			if w.GetStart().AsTime().Equal(e.base.Add(time.Duration(i)*time.Minute)) && w.GetClosed() {
				got = w
				return true
			}
		}
		return false
	})
	return got
}

func (e *testEnv) drift(t *testing.T, i int, feature, method string) *monitorv1.DriftPoint {
	t.Helper()
	resp, err := e.mon.GetDriftSeries(context.Background(), &monitorv1.GetDriftSeriesRequest{Model: "churn", Feature: feature, Method: method,
		Since: timestamppb.New(e.base)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.GetPoints() {
		if p.GetWindowStart().AsTime().Equal(e.base.Add(time.Duration(i) * time.Minute)) {
			return p
		}
	}
	return nil
}

func (e *testEnv) alerts(t *testing.T, state monitorv1.AlertState) []*monitorv1.Alert {
	t.Helper()
	resp, err := e.mon.ListAlerts(context.Background(), &monitorv1.ListAlertsRequest{Model: "churn", State: state})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetAlerts()
}

// streamEvents returns the payloads published on subject so far.
func streamEvents(t *testing.T, js jetstream.JetStream, subject string) []events.Event {
	t.Helper()
	ctx := context.Background()
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if m.Subject == subject {
			out = append(out, events.Event{ID: m.Header.Get(events.HeaderID), Subject: m.Subject, Data: m.Data})
		}
	}
	return out
}

// webhook is a receiver that fails its first failures requests with 500.
type webhook struct {
	srv      *httptest.Server
	mu       sync.Mutex
	failures int
	calls    int
	bodies   [][]byte
	sigs     []string
	ids      []string
}

func newWebhook(t *testing.T, failures int) *webhook {
	w := &webhook{failures: failures}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.calls++
		if w.calls <= w.failures {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.bodies = append(w.bodies, body)
		w.sigs = append(w.sigs, r.Header.Get(monitor.HeaderSignature))
		w.ids = append(w.ids, r.Header.Get(monitor.HeaderDelivery))
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) received() ([][]byte, []string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.bodies...), append([]string(nil), w.sigs...), w.calls
}

const secret = "webhook-signing-secret"

func TestDriftFiresAnAlertAndCleanTrafficResolvesIt(t *testing.T) {
	hook := newWebhook(t, 2)
	slack := newWebhook(t, 0)
	down := newWebhook(t, 1000)
	e := start(t, func(c *config.Config) {
		c.Monitor.Sinks.WebhookURLs = []string{hook.srv.URL + "/hook", down.srv.URL}
		c.Monitor.Sinks.MaxAttempts = 3
		c.Monitor.Sinks.SlackURLs = []string{slack.srv.URL + "/services/T0/B0/token"}
		c.Monitor.Sinks.SigningSecret = secret
		c.Monitor.Sinks.RetryBackoff = 20 * time.Millisecond
	})
	ctx := context.Background()

	// Window 0: traffic like the training data. Window 1: drifted, but fewer
	// than minSamples (100) records. Window 2: drifted. Windows 3 and 4: clean.
	e.log(t, traffic{version: 1, window: 0, n: 300})
	w0 := e.closed(t, 1, 0)
	if w0.GetRequests() != 300 || w0.GetLatencyP99Ms() < 6 {
		t.Fatalf("window 0 = %v", w0)
	}
	if p := e.drift(t, 0, "tenure", "psi"); p == nil || p.GetScore() > 0.05 || !p.GetAlerting() || p.GetThreshold() != 0.2 ||
		p.GetReference() != "profile:customers@1" || p.GetSamples() != 300 {
		t.Fatalf("tenure psi in window 0 = %v", p)
	}
	for _, m := range []string{"ks", "wasserstein", "chi2", "js"} {
		if p := e.drift(t, 0, "tenure", m); p == nil || p.GetAlerting() {
			t.Fatalf("tenure %s in window 0 = %v", m, p)
		}
	}
	if p := e.drift(t, 0, "tenure", "ks"); p.PValue == nil || p.GetPValue() < 0.05 {
		t.Fatalf("ks on clean traffic = %v", p)
	}
	if p := e.drift(t, 0, "plan", "chi2"); p == nil || p.PValue == nil || p.GetScore() > 0.05 {
		t.Fatalf("plan chi2 in window 0 = %v", p)
	}

	e.log(t, traffic{version: 1, window: 1, n: 50, drifted: true})
	e.closed(t, 1, 1)
	if p := e.drift(t, 1, "tenure", "psi"); p == nil || p.GetScore() < 1 || p.GetSamples() != 50 {
		t.Fatalf("tenure psi in window 1 = %v", p)
	}
	if a := e.alerts(t, monitorv1.AlertState_ALERT_STATE_UNSPECIFIED); len(a) != 0 {
		t.Fatalf("an alert fired below minSamples: %v", a)
	}

	e.log(t, traffic{version: 1, window: 2, n: 300, drifted: true})
	e.closed(t, 1, 2)
	for _, m := range []string{"psi", "ks", "wasserstein", "chi2", "js"} {
		p := e.drift(t, 2, "tenure", m)
		if p == nil || p.GetScore() < 0.3 {
			t.Fatalf("tenure %s in drifted window 2 = %v", m, p)
		}
		if m == "ks" && p.GetPValue() > 1e-6 {
			t.Fatalf("ks p-value on drifted traffic = %v", p.GetPValue())
		}
	}
	firing := e.alerts(t, monitorv1.AlertState_ALERT_STATE_FIRING)
	if len(firing) != 1 || firing[0].GetRule() != "psi(tenure)" || firing[0].GetKind() != "drift" || firing[0].GetPipeline() != "churn" ||
		firing[0].GetValue() < 1 || firing[0].GetThreshold() != 0.2 || firing[0].GetModelVersion() != 1 {
		t.Fatalf("firing alerts = %v", firing)
	}
	var fired []events.Event
	waitFor(t, "alert.fired on JetStream", func() bool {
		fired = streamEvents(t, e.JS, "gyre.monitor.alert.fired")
		return len(fired) > 0
	})
	var ev eventsv1.MonitorAlertFired
	if err := fired[0].Decode(&ev); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 1 || ev.GetKind() != "drift" || ev.GetPipeline() != "churn" || ev.GetModel() != "churn" || ev.GetRule() != "psi(tenure)" ||
		ev.GetAlert() != firing[0].GetId() || ev.GetThreshold() != 0.2 {
		t.Fatalf("alert.fired events = %d, first %v", len(fired), &ev)
	}

	// The loop closes: the scheduler retrains the pipeline on the drift alert.
	sched := schedulerv1.NewSchedulerServiceClient(e.Conn)
	waitFor(t, "a retraining job triggered by drift", func() bool {
		jobs, err := sched.ListJobs(ctx, &schedulerv1.ListJobsRequest{Pipeline: "churn"})
		if err != nil {
			t.Fatal(err)
		}
		return len(jobs.GetJobs()) == 1 && jobs.GetJobs()[0].GetTrigger() == "drift"
	})

	// Hysteresis: one clean window is not enough (resolveAfter 2).
	e.log(t, traffic{version: 1, window: 3, n: 300})
	e.closed(t, 1, 3)
	firing = e.alerts(t, monitorv1.AlertState_ALERT_STATE_FIRING)
	if len(firing) != 1 || firing[0].GetCleanWindows() != 1 || firing[0].GetLastValue() > 0.05 {
		t.Fatalf("after one clean window: %v", firing)
	}
	e.log(t, traffic{version: 1, window: 4, n: 300})
	e.closed(t, 1, 4)
	if f := e.alerts(t, monitorv1.AlertState_ALERT_STATE_FIRING); len(f) != 0 {
		t.Fatalf("still firing after two clean windows: %v", f)
	}
	resolved := e.alerts(t, monitorv1.AlertState_ALERT_STATE_RESOLVED)
	if len(resolved) != 1 || resolved[0].GetResolveTime() == nil || resolved[0].GetId() != ev.GetAlert() {
		t.Fatalf("resolved alerts = %v", resolved)
	}
	waitFor(t, "alert.resolved on JetStream", func() bool { return len(streamEvents(t, e.JS, "gyre.monitor.alert.resolved")) == 1 })

	// The prediction's own drift is scored against the first full window.
	if p := e.drift(t, 2, monitor.PredictionFeature, "psi"); p == nil || !strings.HasPrefix(p.GetReference(), "window:") {
		t.Fatalf("prediction drift in window 2 = %v", p)
	}

	// The same batch again: under a new event id (the batch id dedupes), and
	// under its event id with a new message id (handled_events dedupes).
	recs := traffic{version: 1, window: 0, n: 300, prefix: "v1-w0"}.records(e.base)
	publish(t, e.JS, "batch-v1-w0", uuid.NewString(), uuid.NewString(), recs)
	publish(t, e.JS, "batch-v1-w0", "batch-v1-w0", uuid.NewString(), recs)
	e.log(t, traffic{version: 1, window: 5, n: 10}) // a marker behind them in the stream
	e.closed(t, 1, 5)
	if w := e.closed(t, 1, 0); w.GetRequests() != 300 || w.GetLateRecords() != 0 {
		t.Fatalf("window 0 after the batch came again = %v", w)
	}

	// Webhooks: the JSON sink failed twice with 500 and got both alerts on
	// retries, in order, signed; the Slack sink got both as text; a sink that
	// is down got each alert MaxAttempts (3) times, then the delivery failed.
	waitFor(t, "webhook deliveries", func() bool {
		b, _, _ := hook.received()
		s, _, _ := slack.received()
		_, _, failed := down.received()
		return len(b) == 2 && len(s) == 2 && failed == 6
	})
	bodies, sigs, calls := hook.received()
	if calls != 4 {
		t.Fatalf("webhook calls = %d, want 2 failures + 2 deliveries", calls)
	}
	for i, b := range bodies {
		if !monitor.VerifySignature([]byte(secret), b, sigs[i]) || monitor.VerifySignature([]byte("other"), b, sigs[i]) {
			t.Fatalf("delivery %d: signature %q does not verify", i, sigs[i])
		}
		var got struct {
			Event string          `json:"event"`
			Alert json.RawMessage `json:"alert"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		var a monitorv1.Alert
		if err := protojson.Unmarshal(got.Alert, &a); err != nil {
			t.Fatal(err)
		}
		if want := []string{"alert.fired", "alert.resolved"}[i]; got.Event != want || a.GetRule() != "psi(tenure)" || a.GetId() != ev.GetAlert() {
			t.Fatalf("delivery %d = %s", i, b)
		}
	}
	slackBodies, _, _ := slack.received()
	var text struct{ Text string }
	if err := json.Unmarshal(slackBodies[0], &text); err != nil || !strings.Contains(text.Text, "FIRING drift alert on churn@1") ||
		!strings.Contains(text.Text, "psi(tenure)") {
		t.Fatalf("slack message = %s", slackBodies[0])
	}

	// Prometheus series on the process's registry.
	resp, err := http.Get(e.BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gyre_monitor_drift_score{feature="tenure",method="psi",model="churn",version="1"}`,
		`gyre_monitor_predictions_total{environment="production",model="churn",version="1"} 1260`,
		`gyre_monitor_latency_p99_ms{environment="production",model="churn",version="1"}`,
		`gyre_monitor_alert_deliveries_total{result="retried"} 6`, `gyre_monitor_alert_deliveries_total{result="failed"} 2`,
		`gyre_monitor_alerts_firing{model="churn"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_ = ctx
}

func (e *testEnv) performance(t *testing.T, version int64, i int) map[string]*monitorv1.PerformancePoint {
	t.Helper()
	resp, err := e.mon.GetPerformanceSeries(context.Background(), &monitorv1.GetPerformanceSeriesRequest{Model: "churn", Version: version,
		Since: timestamppb.New(e.base)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*monitorv1.PerformancePoint{}
	for _, p := range resp.GetPoints() {
		if p.GetWindowStart().AsTime().Equal(e.base.Add(time.Duration(i) * time.Minute)) {
			out[p.GetMetric()] = p
		}
	}
	return out
}

// feedback labels the records of tr: right says which get their predicted label.
func feedback(tr traffic, base time.Time, right func(i int) bool) []*monitorv1.Feedback {
	var out []*monitorv1.Feedback
	for i, r := range tr.records(base) {
		label := r.GetLabel()
		if !right(i) {
			label = map[string]string{"yes": "no", "no": "yes"}[label]
		}
		out = append(out, &monitorv1.Feedback{PredictionId: r.GetPredictionId(), Truth: &monitorv1.Feedback_Label{Label: label}})
	}
	return out
}

func TestLateLabelsFireAPerformanceAlert(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	// A window the closer cannot score (a corrupt sketch) must not hold up the others.
	db, err := pgx.Connect(ctx, e.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var brokenID int64
	if err := db.QueryRow(ctx, `WITH w AS (INSERT INTO monitor.windows (model, version, environment, start_time, end_time, requests)
			VALUES ('churn', 1, 'production', $1, $2, 1) RETURNING id)
		INSERT INTO monitor.window_features SELECT id, 'tenure', 'numeric', 1, $3 FROM w RETURNING window_id`,
		e.base.Add(-time.Minute), e.base, []byte("not a sketch")).Scan(&brokenID); err != nil {
		t.Fatal(err)
	}
	w0 := traffic{version: 1, window: 0, n: 200, prefix: "v1-w0"}
	w1 := traffic{version: 1, window: 1, n: 200, prefix: "v1-w1"}

	// Labels may come before their predictions are logged: kept, and joined on arrival.
	early, err := e.mon.SubmitFeedback(ctx, &monitorv1.SubmitFeedbackRequest{Feedback: feedback(w0, e.base, func(int) bool { return true })})
	if err != nil || early.GetAccepted() != 0 || early.GetUnknown() != 200 || len(early.GetUnknownPredictions()) != 20 {
		t.Fatalf("early feedback = %v, %v", early, err)
	}
	e.log(t, w0)
	e.log(t, w1)
	// Version 2 beside it (a canary), failing one request in ten.
	e.log(t, traffic{version: 2, window: 0, n: 200, errorsIn: 10})
	e.log(t, traffic{version: 2, window: 1, n: 200, errorsIn: 10})
	e.closed(t, 1, 0)
	e.closed(t, 1, 1)
	e.closed(t, 2, 0)
	e.closed(t, 2, 1)

	p0 := e.performance(t, 1, 0)
	if p0["accuracy"].GetValue() != 1 || p0["accuracy"].GetSamples() != 200 || p0["error_rate"].GetValue() != 0 || p0["auc"] == nil ||
		p0["fairness.plan.demographic_parity_difference"] == nil {
		t.Fatalf("window 0 performance = %v", p0)
	}
	if p1 := e.performance(t, 1, 1); p1["accuracy"] != nil || p1["error_rate"] == nil {
		t.Fatalf("window 1 performance before its labels = %v", p1)
	}
	if p := e.performance(t, 2, 0); p["error_rate"].GetValue() != 0.1 || p["error_rate"].GetSamples() != 200 {
		t.Fatalf("version 2 error rate = %v", p)
	}
	if a := e.alerts(t, monitorv1.AlertState_ALERT_STATE_UNSPECIFIED); len(a) != 0 {
		t.Fatalf("alerts before labels = %v", a)
	}

	// Late labels for window 1, over REST: 40% wrong.
	var body strings.Builder
	body.WriteString(`{"feedback": [`)
	for i, f := range feedback(w1, e.base, func(i int) bool { return i%5 > 1 }) {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"predictionId": %q, "label": %q}`, f.GetPredictionId(), f.GetLabel())
	}
	body.WriteString(`, {"predictionId": "never-logged", "row": 3, "label": "yes"}]}`)
	resp, err := http.Post(e.BaseURL+"/v1/feedback", "application/json", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got monitorv1.SubmitFeedbackResponse
	if err := protojson.Unmarshal(raw, &got); err != nil || resp.StatusCode != 200 || got.GetAccepted() != 200 || got.GetUnknown() != 1 {
		t.Fatalf("POST /v1/feedback: %s %s", resp.Status, raw)
	}
	var firing []*monitorv1.Alert
	waitFor(t, "the performance alert", func() bool {
		firing = e.alerts(t, monitorv1.AlertState_ALERT_STATE_FIRING)
		return len(firing) > 0
	})
	a := firing[0]
	if len(firing) != 1 || a.GetKind() != "performance" || a.GetRule() != "accuracy >= 0.8" || a.GetValue() != 0.6 || a.GetThreshold() != 0.8 ||
		a.GetModelVersion() != 1 || !a.GetWindowStart().AsTime().Equal(e.base.Add(time.Minute)) {
		t.Fatalf("firing = %v", firing)
	}
	if p1 := e.performance(t, 1, 1); p1["accuracy"].GetValue() != 0.6 || p1["accuracy"].GetSamples() != 200 {
		t.Fatalf("window 1 performance after its labels = %v", p1)
	}
	waitFor(t, "alert.fired on JetStream", func() bool {
		for _, ev := range streamEvents(t, e.JS, "gyre.monitor.alert.fired") {
			var f eventsv1.MonitorAlertFired
			if ev.Decode(&f) == nil && f.GetKind() == "performance" && f.GetPipeline() == "churn" && f.GetAlert() == a.GetId() {
				return true
			}
		}
		return false
	})

	var brokenClosed bool
	if err := db.QueryRow(ctx, `SELECT closed_at IS NOT NULL FROM monitor.windows WHERE id = $1`, brokenID).Scan(&brokenClosed); err != nil || brokenClosed {
		t.Fatalf("the corrupt window: closed %v, %v", brokenClosed, err)
	}

	// A bad request names the field.
	if _, err := e.mon.SubmitFeedback(ctx, &monitorv1.SubmitFeedbackRequest{Feedback: []*monitorv1.Feedback{{PredictionId: "x"}}}); err == nil ||
		!strings.Contains(err.Error(), "a label or a value is required") {
		t.Fatalf("feedback without truth: %v", err)
	}

	// The same over REST, through pkg/client.
	api := client.New(e.BaseURL)
	if as, err := api.ListAlerts(ctx, &monitorv1.ListAlertsRequest{Model: "churn", State: monitorv1.AlertState_ALERT_STATE_FIRING}); err != nil ||
		len(as.GetAlerts()) != 1 || as.GetAlerts()[0].GetId() != a.GetId() {
		t.Fatalf("GET /v1/alerts: %v %v", as, err)
	}
	since := timestamppb.New(e.base)
	if ds, err := api.GetDriftSeries(ctx, &monitorv1.GetDriftSeriesRequest{Model: "churn", Version: 1, Feature: "tenure", Method: "psi", Since: since}); err != nil ||
		len(ds.GetPoints()) != 2 || !ds.GetPoints()[0].GetWindowStart().AsTime().Equal(e.base) {
		t.Fatalf("GET /v1/models/churn/drift: %v %v", ds, err)
	}
	if ps, err := api.GetPerformanceSeries(ctx, &monitorv1.GetPerformanceSeriesRequest{Model: "churn", Version: 1, Metric: "accuracy", Since: since}); err != nil ||
		len(ps.GetPoints()) != 2 || ps.GetPoints()[0].GetValue() != 1 || ps.GetPoints()[1].GetValue() != 0.6 {
		t.Fatalf("GET /v1/models/churn/performance: %v %v", ps, err)
	}
	if ws, err := api.ListWindows(ctx, &monitorv1.ListWindowsRequest{Model: "churn", Version: 2, PageSize: 1}); err != nil ||
		len(ws.GetWindows()) != 1 || ws.GetNextPageToken() == "" || ws.GetWindows()[0].GetErrors() != 20 {
		t.Fatalf("GET /v1/models/churn/windows: %v %v", ws, err)
	}

	// The canary against the stable version over the same windows.
	cmp, err := api.CompareVersions(ctx, &monitorv1.CompareVersionsRequest{Model: "churn", BaselineVersion: 1, CandidateVersion: 2, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	b, c := cmp.GetBaseline(), cmp.GetCandidate()
	if b.GetRequests() != 400 || b.GetErrors() != 0 || c.GetRequests() != 400 || c.GetErrorRate() != 0.1 || c.GetWindows() != 2 ||
		b.GetLatencyP99Ms() < 6 || b.GetLatencyP50Ms() < 3 || b.GetLabelled() != 400 || b.GetMetrics()["accuracy"] != 0.8 ||
		cmp.PredictionPsi == nil || cmp.GetPredictionPsi() > 0.1 || cmp.PredictionKs == nil || cmp.LabelJs == nil {
		t.Fatalf("compare = %v", cmp)
	}
}

// BenchmarkFoldBatch measures the consumer end to end (JetStream, one
// transaction per batch, Postgres): batches of 512 records with 16 inputs
// (10 numeric, 6 categorical) into one window, the inference server's
// default batch. x-decode is its cost over decoding the batches' protojson
// alone, measured in the same run.
func BenchmarkFoldBatch(b *testing.B) {
	e := start(b, nil)
	ctx := context.Background()
	const batchSize = 512
	// A window that has not ended stays open, so every batch is folded (not counted late).
	future := time.Now().Add(time.Hour)
	recs := make([]*eventsv1.PredictionRecord, batchSize)
	for i := range recs {
		r := &eventsv1.PredictionRecord{PredictionId: fmt.Sprint("p", i), Model: "churn", ModelVersion: 1, Environment: "production",
			Time: timestamppb.New(future), LatencyMs: float64(i % 9), Label: "no", Value: 0.1, Probabilities: []float64{0.9, 0.1},
			Numeric: map[string]float64{}, Categorical: map[string]string{}}
		for f := range 10 {
			r.Numeric[fmt.Sprint("num", f)] = float64((i * (f + 7)) % 1000)
		}
		for f := range 6 {
			r.Categorical[fmt.Sprint("cat", f)] = fmt.Sprint("c", (i*(f+3))%40)
		}
		recs[i] = r
	}
	payload, err := protojson.Marshal(&eventsv1.InferenceLogged{Predictions: recs})
	if err != nil {
		b.Fatal(err)
	}
	decodeStart := time.Now()
	const decodes = 20
	for range decodes {
		var m eventsv1.InferenceLogged
		if err := protojson.Unmarshal(payload, &m); err != nil {
			b.Fatal(err)
		}
	}
	perDecode := time.Since(decodeStart) / decodes

	b.ResetTimer()
	began := time.Now()
	for i := range b.N {
		for j, r := range recs {
			r.PredictionId = fmt.Sprintf("b%d-%d", i, j)
		}
		publish(b, e.JS, fmt.Sprint("bench-", i, "-", uuid.NewString()), "", "", recs)
	}
	want := int64(b.N * batchSize)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := e.mon.ListWindows(ctx, &monitorv1.ListWindowsRequest{Model: "churn", Version: 1})
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, w := range resp.GetWindows() {
			n += w.GetRequests()
		}
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("folded %d of %d records", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	perBatch := time.Since(began) / time.Duration(b.N)
	b.ReportMetric(float64(batchSize)/perBatch.Seconds(), "records/s")
	b.ReportMetric(float64(perBatch)/float64(perDecode), "x-decode")
}
