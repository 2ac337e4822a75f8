package main

// The end-to-end tests need the PostgreSQL server binaries: they run `gyre dev`.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/gyreml/gyre/pkg/client"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// runAsGyre makes the test binary act as the gyre command, so `gyre demo`
// can start `gyre dev` from os.Executable() as it does in real use.
const runAsGyre = "GYRE_TEST_RUN_AS_GYRE"

func TestMain(m *testing.M) {
	if os.Getenv(runAsGyre) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runGyre runs one command line in-process and returns its output and exit code.
func runGyre(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	var exit exitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.code
	default:
		fmt.Fprintln(&errOut, "error:", err)
		code = 1
	}
	return out.String(), errOut.String(), code
}

// mustGyre runs a command that must succeed.
func mustGyre(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := runGyre(t, "", args...)
	if code != 0 {
		t.Fatalf("gyre %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func unsetDatabaseURL(t *testing.T) {
	t.Setenv("GYRE_DATABASE_URL", "")
	os.Unsetenv("GYRE_DATABASE_URL")
}

func TestDemoStartsItsOwnGyreDevWhenNoServerAnswers(t *testing.T) {
	unsetDatabaseURL(t)
	t.Setenv(runAsGyre, "1")
	t.Setenv("TMPDIR", reachableDir(t))
	out := mustGyre(t, "demo", "--server", "http://"+freeAddr(t))

	for _, want := range []string{
		"starting a private `gyre dev`",
		"1) Apply the pipeline", "pipeline demo-credit-risk version 1 created",
		"2) Push the training data", "credit-clean.csv: validated, stored as demo-credit-applications version 1",
		"credit-pii.csv (the same rows plus email and notes columns): rejected",
		`privacy: column "email" holds personal data (email)`, "nothing was stored: demo-credit-applications is still at version 1",
		"3) Train a model version on a worker", `builtin/logistic with params {"maxIter":3} on demo-credit-applications@1`,
		"on worker dev-worker-1", "registered demo-credit-risk version 1",
		"lineage: dataset demo-credit-applications@1 (sha256 fde5446a57e5) -> pipeline demo-credit-risk@1 -> training job ",
		"4) Evaluate version 1 against the pipeline's gates", "waiting for demo-credit-risk version 1's verdict",
		": PASSED in ", "on 88 holdout rows of demo-credit-applications@1", "no champion yet (production points to no version)",
		"metrics.auc >= champion.metrics.auc - 0.05          skipped", "key metrics: auc 0.", "p99 latency ",
		"smoke test: 100 requests to the staging endpoint, 0 errors", "production now serves demo-credit-risk@1",
		"5) Retrain with other parameters", "applied the pipeline with other training params: version 2 created",
		`builtin/logistic with params {"l2":0.1,"maxIter":100}`, "registered demo-credit-risk version 2",
		"6) Evaluate version 2 against the production champion", "compared with the champion: production version 1",
		"canary analysis at 10%: pass", "canary analysis at 50%: pass", "production now serves demo-credit-risk@2",
		"7) Production answers predictions", "answered by version 2", "curl -s -X POST http://",
		"8) Production drifts", "monitor alert", "FIRED", "training job", "(trigger drift)", "registered demo-credit-risk@",
		"serving production traffic:",
		"9) Lineage of the production version", "dataset:demo-credit-applications@1 (trained)",
		"10) Check the audit log", "audit log intact",
		"of demo-credit-risk@1: passed, gates 3/3 passed, 1 skipped, no champion",
		"of demo-credit-risk@2: passed, gates 4/4 passed, against champion version 1",
		"Done.", "Stopping the demo's gyre dev",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	for _, pattern := range []string{
		`(?m)^   fairness\.sex\.demographic_parity_difference <= 0\.20\s+pass\s+fairness\.sex\.demographic_parity_difference=0\.\d+$`,
		`(?m)^   metrics\.auc >= champion\.metrics\.auc - 0\.05\s+pass\s+champion\.metrics\.auc=0\.\d+, metrics\.auc=0\.\d+$`,
		`gyre report evaluation [0-9a-f-]{36} > report\.html`,
	} {
		if !regexp.MustCompile(pattern).MatchString(out) {
			t.Fatalf("demo output does not match %s:\n%s", pattern, out)
		}
	}
	url := regexp.MustCompile(`gyre dev is ready at (http://\S+)`).FindStringSubmatch(out)
	if url == nil {
		t.Fatalf("demo did not say where its gyre dev ran:\n%s", out)
	}
	if _, err := http.Get(url[1] + "/livez"); err == nil {
		t.Fatal("the demo's gyre dev still serves after the demo")
	}
	if left, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "gyre-demo-*")); len(left) > 0 {
		t.Fatalf("demo state left behind: %v", left)
	}
}

func TestClientVerbsAgainstGyreDev(t *testing.T) {
	unsetDatabaseURL(t)
	httpAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	devOut := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, devOut, filepath.Join(reachableDir(t), "state"), serverFlags{httpAddr: httpAddr, grpcAddr: freeAddr(t), workers: 1})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base := "http://" + httpAddr
	waitDevReady(t, base, done, devOut)
	srv := []string{"--server", base}
	run := func(args ...string) string { return mustGyre(t, append(args, srv...)...) }
	fails := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := runGyre(t, stdin, append(args, srv...)...)
		if code != 1 {
			t.Fatalf("gyre %s: exit %d, want 1\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return errOut
	}
	matches := func(out, pattern string) {
		t.Helper()
		if !regexp.MustCompile(pattern).MatchString(out) {
			t.Fatalf("output does not match %s:\n%s", pattern, out)
		}
	}

	// Twice: the second run applies the first spec again after the first run's retraining
	// spec (pipeline versions 3 and 4) and registers model versions 3 and 4.
	run("demo", "--skip-loop")
	out := run("demo", "--skip-loop")
	matches(out, "pipeline demo-credit-risk version 3 created")
	matches(out, "credit-clean.csv: unchanged, same bytes as version 1 of demo-credit-applications")
	matches(out, "applied the pipeline with other training params: version 4 created")
	matches(out, "registered demo-credit-risk version 4")
	dataset := checkDatasetVerbs(t, srv, run, matches)

	matches(run("get", "models"), `(?m)^demo-credit-risk\s+4\s+production=v4, staging=v4\s`)
	matches(run("get", "model", "demo-credit-risk"), `(?m)^production\s+4\s+3\s`)
	dry := run("deploy", "demo-credit-risk@3", "--env", "staging", "--dry-run")
	matches(dry, `^dry run: the rollout of demo-credit-risk@3 to staging would start so; nothing was recorded\n`)
	matches(dry, `(?m)^Strategy:\s+direct on local$`)
	matches(fails("", "deploy", "demo-credit-risk@3", "--dry-run", "--wait"), `--dry-run starts nothing to --wait for`)

	var v registryv1.ModelVersion
	if err := protojson.Unmarshal([]byte(run("get", "version", "demo-credit-risk@production", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if lin := v.GetLineage(); v.GetVersion() != 4 || lin.GetDatasetVersion() != 1 || lin.GetDatasetDigest() != dataset.GetSha256() ||
		lin.GetPipelineVersion() != 4 || lin.GetTrainingJob() == "" || len(v.GetMetrics()) == 0 {
		t.Fatalf("production version = %v", &v)
	}
	matches(run("get", "version", "demo-credit-risk", "4"), `(?m)^Params:\s+\{"l2":0.1,"maxIter":100\}$`)

	asJSON, err := yaml.YAMLToJSON([]byte(run("get", "versions", "demo-credit-risk", "-o", "yaml")))
	if err != nil {
		t.Fatal(err)
	}
	var versions registryv1.ListModelVersionsResponse
	if err := protojson.Unmarshal(asJSON, &versions); err != nil || len(versions.GetVersions()) != 4 {
		t.Fatalf("versions from yaml: %v %v", err, &versions)
	}
	matches(run("get", "pipelines"), `(?m)^demo-credit-risk\s+4\s+demo-credit-risk\s+demo-credit-applications\s`)
	matches(run("get", "pipeline", "demo-credit-risk"), `(?m)^      trainer: builtin/logistic$`)

	matches(run("alias", "set", "demo-credit-risk", "canary-test", "4", "--reason", "better AUC"), `canary-test of demo-credit-risk -> version 4`)
	matches(run("alias", "set", "demo-credit-risk", "canary-test", "4"), `\(unchanged\)`)
	matches(run("alias", "history", "demo-credit-risk", "canary-test"), `(?m)^\S+ \S+\s+canary-test\s+-?\s*4\s+\S+\s+better AUC$`)
	// The version came from its training job, which read the dataset (whose node carries what
	// ingestion recorded of the version) under the pipeline's version.
	lineage := run("lineage", "demo-credit-risk@4", "--upstream")
	matches(lineage, `(?m)^  └── job:[0-9a-f-]{36} \(produced\)$`)
	matches(lineage, `(?m)^      ├── dataset:demo-credit-applications@1 \(trained\)  \[.*\bsha256=`+dataset.GetSha256()[:12]+`\b`)
	matches(lineage, `(?m)^      └── pipeline:demo-credit-risk@4 \(configured\)$`)

	var audit registryv1.ListAuditRecordsResponse
	if err := protojson.Unmarshal([]byte(run("audit", "list", "--resource", "models/demo-credit-risk/aliases/production", "-o", "json")), &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit.GetRecords()) != 4 {
		t.Fatalf("production moved 4 times (once per release), audit says %v", &audit)
	}
	matches(run("audit", "verify"), `audit log intact: \d+ records`)

	checkJobVerbs(t, srv, run, matches, &v)

	// Errors: the server's message, every field problem on its own line, exit 1.
	errOut := fails("apiVersion: gyre.dev/v1\nkind: Pipeline\nmetadata: {name: Bad_Name}\nspec:\n  training: {trainer: nope}\n", "apply", "-f", "-")
	matches(errOut, `(?m)^error: invalid pipeline\n  metadata.name: .+\n(  .+\n)*  spec.training.trainer: .+`)
	matches(fails("", "get", "model", "nope"), `^error: model "nope" not found\n$`)
	matches(fails("", "alias", "set", "demo-credit-risk", "production", "99"), `no version 99`)

	// A changed audit record breaks the chain, and verify names it.
	dbURL := regexp.MustCompile(`Postgres\s+(postgres://\S+)`).FindStringSubmatch(devOut.String())
	if dbURL == nil {
		t.Fatalf("dev did not print its database:\n%s", devOut)
	}
	conn, err := pgx.Connect(context.Background(), dbURL[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `ALTER TABLE registry.audit_log DISABLE TRIGGER audit_log_append_only;
		UPDATE registry.audit_log SET actor = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	matches(fails("", "audit", "verify"), `audit log BROKEN at record 2: `)
}

func TestLineagePrintsTreesBothWays(t *testing.T) {
	lin := &registryv1.Lineage{
		Root: "model:credit@2",
		Nodes: []*registryv1.LineageNode{
			{Id: "model:credit@2", Kind: "model", Attributes: map[string]string{"artifact_sha256": strings.Repeat("ab", 32), "status": "passed"}},
		},
		Edges: []*registryv1.LineageEdge{
			{From: "pipeline:credit@1", To: "job:j1", Relation: "configured"},
			{From: "dataset:apps@3", To: "job:j1", Relation: "trained"},
			{From: "job:j1", To: "model:credit@2", Relation: "produced"},
			{From: "model:credit@2", To: "deployment:d1", Relation: "deployed_as"},
		},
	}
	var buf bytes.Buffer
	printLineage(&buf, lin, registryv1.LineageDirection_LINEAGE_DIRECTION_BOTH)
	want := `Upstream (where it came from):
  model:credit@2  [sha256=abababababab status=passed]
  └── job:j1 (produced)
      ├── dataset:apps@3 (trained)
      └── pipeline:credit@1 (configured)

Downstream (what it led to):
  model:credit@2  [sha256=abababababab status=passed]
  └── deployment:d1 (deployed_as)
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestLineageStopsOnACycle(t *testing.T) {
	lin := &registryv1.Lineage{Root: "a:x", Edges: []*registryv1.LineageEdge{
		{From: "a:x", To: "b:y", Relation: "r"},
		{From: "b:y", To: "a:x", Relation: "r"},
	}}
	var buf bytes.Buffer
	printLineage(&buf, lin, registryv1.LineageDirection_LINEAGE_DIRECTION_DOWNSTREAM)
	if !strings.Contains(buf.String(), "└── a:x (r) ↺") {
		t.Fatalf("cycle not marked:\n%s", buf.String())
	}
}

func TestPrintErrorListsEveryField(t *testing.T) {
	var buf bytes.Buffer
	printError(&buf, "http://x", &client.APIError{
		Code: "INVALID_ARGUMENT", HTTPStatus: 400,
		Message: "invalid pipeline: spec.a: bad\nspec.b[1]: worse",
		Fields:  []client.FieldViolation{{Field: "spec.a", Description: "bad"}, {Field: "spec.b[1]", Description: "worse"}},
	})
	want := "error: invalid pipeline\n  spec.a: bad\n  spec.b[1]: worse\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
	buf.Reset()
	printError(&buf, "http://x", &client.APIError{Code: "INTERNAL", HTTPStatus: 500, Message: "internal error", RequestID: "r-1"})
	if !strings.Contains(buf.String(), "request id r-1") {
		t.Fatalf("server errors should name the request id: %q", buf.String())
	}
}

func TestServerURLAcceptsHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9000":        "http://127.0.0.1:9000",
		"https://gyre.example/": "https://gyre.example",
		"http://h:1":            "http://h:1",
	} {
		if got := (&clientOptions{server: in}).serverURL(); got != want {
			t.Errorf("serverURL(%q) = %q, want %q", in, got, want)
		}
	}
}
