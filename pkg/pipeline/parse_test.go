package pipeline

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/pipelines/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, doc string) *Pipeline {
	t.Helper()
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	return p
}

// parseErrors parses a spec that must fail and returns its problems by path.
func parseErrors(t *testing.T, doc string) map[string]string {
	t.Helper()
	_, err := Parse([]byte(doc))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	byPath := map[string]string{}
	for _, e := range errs {
		if _, dup := byPath[e.Path]; dup {
			t.Errorf("two problems at %s: %q and %q", e.Path, byPath[e.Path], e.Message)
		}
		byPath[e.Path] = e.Message
	}
	return byPath
}

// wantErrors checks that got holds exactly the wanted paths, each message
// containing its wanted text.
func wantErrors(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for path, text := range want {
		msg, ok := got[path]
		if !ok {
			t.Errorf("no error at %s (want %q)", path, text)
		} else if !strings.Contains(msg, text) {
			t.Errorf("%s: got %q, want it to contain %q", path, msg, text)
		}
	}
	for path, msg := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("unexpected error %s: %s", path, msg)
		}
	}
}

func TestDesignExampleParses(t *testing.T) {
	p, err := Parse(readExample(t, "credit-risk.yaml"))
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	s := p.Spec
	if p.ModelName() != "credit-risk" || s.Dataset != "credit-applications" {
		t.Errorf("model %q dataset %q", p.ModelName(), s.Dataset)
	}
	if !s.Validation.Schema.Infer() || len(s.Validation.Rules) != 2 || *s.Validation.Rules[0].Min != 18 || !s.Validation.Rules[1].NotNull {
		t.Errorf("validation = %+v", s.Validation)
	}
	if s.Validation.Privacy.KAnonymity != 5 || len(s.Validation.Privacy.Detect) != 6 {
		t.Errorf("privacy = %+v", s.Validation.Privacy)
	}
	if s.Training.Trainer != TrainerGBDT || s.Training.Target != "default" || s.Training.Params["trees"] != 200 || s.Training.Params["learningRate"] != 0.1 {
		t.Errorf("training = %+v", s.Training)
	}
	if s.Training.Split.Seed != 7 || !*s.Training.Split.Stratify || s.Training.Resources.MemoryMiB != 2048 {
		t.Errorf("split/resources = %+v %+v", s.Training.Split, s.Training.Resources)
	}
	if len(s.Evaluation.Gates) != 4 {
		t.Errorf("gates = %q", s.Evaluation.Gates)
	}
	prod := s.Deployment.Production
	if !slices.Equal(prod.Steps, []int{10, 50, 100}) || prod.StepDuration.Duration != 2*time.Minute || len(prod.RollbackOn) != 2 {
		t.Errorf("production = %+v", prod)
	}
	if s.Monitoring.Window.Duration != 15*time.Minute || s.Monitoring.Drift.Threshold != 0.2 {
		t.Errorf("monitoring = %+v", s.Monitoring)
	}
	if len(s.Retraining.On) != 4 || s.Retraining.Schedule != "0 3 * * 0" || s.Retraining.Cooldown.Duration != time.Hour {
		t.Errorf("retraining = %+v", s.Retraining)
	}
}

func TestMinimalGetsEveryDefault(t *testing.T) {
	p, err := Parse(readExample(t, "minimal.yaml"))
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	got, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"apiVersion":"gyre.dev/v1","kind":"Pipeline","metadata":{"name":"churn"},"spec":{` +
		`"dataset":"customers",` +
		`"deployment":{"production":{"approval":"auto","rollbackOn":["canary.error_rate > 0.01"],"stepDuration":"2m","steps":[10,50,100],"strategy":"canary"},` +
		`"staging":{"smokeTest":{"maxErrorRate":0,"requests":100}},"target":"local"},` +
		`"evaluation":{"minGroupSize":30,"primaryMetric":"auto"},` +
		`"model":"churn",` +
		`"monitoring":{"drift":{"method":"psi","threshold":0.2},"minSamples":100,"window":"15m"},` +
		`"retraining":{"cooldown":"1h","on":["new_data"]},` +
		`"training":{"maxAttempts":3,"resources":{"cpu":1,"gpu":0,"memoryMiB":1024},"split":{"holdout":0.2,"seed":0,"stratify":true},"target":"label","timeout":"1h","trainer":"builtin/gbdt"},` +
		`"validation":{"privacy":{"action":"reject"},"schema":"infer"}}}`
	if string(got) != want {
		t.Errorf("canonical minimal pipeline:\n got %s\nwant %s", got, want)
	}
	// The typed fields the services read, not only their JSON.
	if !*p.Spec.Training.Split.Stratify || p.Spec.Training.Timeout.Duration != time.Hour || p.ModelName() != "churn" {
		t.Errorf("typed defaults: %+v", p.Spec.Training)
	}
}

const manyMistakes = `
apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: Credit_Risk}
spec:
  dataset: credit
  training:
    paramz: {trees: 10}
    split: {holdout: 1.5}
  evaluation:
    gates:
      - metrics.auc >= 0.8
      - latency.p99_ms <= 5
      - auc2 >= 1
  deployment:
    production: {approval: sometimes, strategy: canary, steps: [10, 50, 30, 100]}
`

func TestEveryProblemIsReportedWithItsPath(t *testing.T) {
	wantErrors(t, parseErrors(t, manyMistakes), map[string]string{
		"spec.training.paramz":                `unknown field (did you mean "params"?)`,
		"metadata.name":                       `invalid name "Credit_Risk"`,
		"spec.training.split.holdout":         "must be between 0 and 1 (exclusive), got 1.5",
		"spec.evaluation.gates[2]":            "undeclared reference to 'auc2' (column 1)",
		"spec.deployment.production.approval": `"sometimes" is not one of auto, manual`,
		"spec.deployment.production.steps[2]": "must be greater than the step before (50), got 30",
	})
}

func TestProblemsComeInDocumentOrder(t *testing.T) {
	_, err := Parse([]byte(manyMistakes))
	var paths []string
	for _, e := range err.(Errors) {
		paths = append(paths, e.Path)
	}
	want := []string{"metadata.name", "spec.training.paramz", "spec.training.split.holdout", "spec.evaluation.gates[2]",
		"spec.deployment.production.approval", "spec.deployment.production.steps[2]"}
	if !slices.Equal(paths, want) {
		t.Errorf("order:\n got %q\nwant %q", paths, want)
	}
	if first := strings.SplitN(err.Error(), "\n", 2)[0]; !strings.HasPrefix(first, "metadata.name: invalid name") {
		t.Errorf("Error() first line = %q", first)
	}
}

func TestTypeErrorsHaveTheirPath(t *testing.T) {
	got := parseErrors(t, `
apiVersion: gyre.dev/v1
kind: Pipeline
metadata:
  name: {first: credit}
  labels: {team: [risk]}
spec:
  dataset: credit
  dataset: credit2
  validation:
    schema: guess
    rules: [{column: age, min: eighteen}]
  training:
    resources: {cpu: [2]}
    split: {holdout: abc, stratify: maybe}
    maxAttempts: 2.5
    timeout: 60
    params: {rate: .nan}
  deployment:
    production: {steps: [ten, 100]}
  retraining:
    on: new_data
`)
	wantErrors(t, got, map[string]string{
		"metadata.name":                       "want a string, got a mapping",
		"metadata.labels.team":                "want a string, got a list",
		"spec.dataset":                        "duplicate field",
		"spec.validation.schema":              `want "infer" or a list of columns, got "guess"`,
		"spec.validation.rules[0].min":        `want a number, got "eighteen"`,
		"spec.training.resources.cpu":         "want a number, got a list",
		"spec.training.split.holdout":         `want a number, got "abc"`,
		"spec.training.split.stratify":        `want true or false, got "maybe"`,
		"spec.training.maxAttempts":           `want an integer, got "2.5"`,
		"spec.training.timeout":               `want a duration like 2m or 1h30m, got "60"`,
		"spec.training.params.rate":           "want a finite number",
		"spec.deployment.production.steps[0]": `want an integer, got "ten"`,
		"spec.retraining.on":                  `want a list, got "new_data"`,
	})
}

func TestDocumentLevelErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"syntax":    "apiVersion: gyre.dev/v1\nkind: [Pipeline\n",
		"empty":     "   \n# nothing\n",
		"two docs":  string(readExample(t, "minimal.yaml")) + "---\n" + string(readExample(t, "minimal.yaml")),
		"not a map": "- a\n- b\n",
	} {
		_, err := Parse([]byte(doc))
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 {
			t.Errorf("%s: want one error, got %v", name, err)
			continue
		}
		if errs[0].Path != "" {
			t.Errorf("%s: want the document at fault, got path %q", name, errs[0].Path)
		}
	}
}

func TestJSONDocumentParses(t *testing.T) {
	p := mustParse(t, `{"apiVersion": "gyre.dev/v1", "kind": "Pipeline", "metadata": {"name": "churn"},
		"spec": {"dataset": "customers", "training": {"timeout": "30m"}}}`)
	if p.Spec.Training.Timeout.Duration != 30*time.Minute {
		t.Errorf("timeout = %v", p.Spec.Training.Timeout)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	p := mustParse(t, `
apiVersion: gyre.dev/v1
kind: Pipeline
metadata: {name: churn}
spec:
  dataset: customers
  training:
    resources: &big {cpu: 4, memoryMiB: 8192}
    params:
      base: &base {depth: 3}
      tuned: {<<: *base, depth: 5}
  deployment:
    staging:
      smokeTest: {<<: {requests: 7}, maxErrorRate: 0.5}
`)
	if p.Spec.Training.Resources.CPU != 4 || p.Spec.Deployment.Staging.SmokeTest.Requests != 7 {
		t.Errorf("anchors not followed: %+v %+v", p.Spec.Training.Resources, p.Spec.Deployment.Staging)
	}
}

func TestAliasBombIsRefused(t *testing.T) {
	doc := "apiVersion: gyre.dev/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  dataset: d\n  training:\n    params:\n"
	doc += "      a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
	for i := 1; i < 9; i++ {
		prev := "*a" + string(rune('0'+i-1))
		doc += "      a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n"
	}
	got := parseErrors(t, doc)
	msgs := slices.Collect(maps.Values(got))
	if len(msgs) != 1 || !strings.Contains(msgs[0], "document too large") {
		t.Errorf("want one 'document too large' error, got %v", got)
	}
}
