package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/gyreml/gyre/pkg/evaluate/explain"
	"github.com/gyreml/gyre/pkg/evaluate/fairness"
	"github.com/gyreml/gyre/pkg/evaluate/gates"
	"github.com/gyreml/gyre/pkg/evaluate/latency"
	"github.com/gyreml/gyre/pkg/evaluate/metrics"
)

var update = flag.Bool("update", false, "rewrite testdata/example.html")

const hostile = `<script>alert(1)</script>`

// binaryEvaluation is a full binary evaluation computed from a synthetic
// holdout, the same way the evaluator builds one.
func binaryEvaluation(t *testing.T, n int) *Evaluation {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	y := make([]int, n)
	p := make([]float64, n)
	pred := make([]int, n)
	group := make([]string, n)
	for i := range n {
		group[i] = []string{"female", "male", "nonbinary"}[rng.IntN(10)%3]
		x := rng.NormFloat64()
		if group[i] == "male" {
			x += 0.3
		}
		if rng.Float64() < 1/(1+math.Exp(-2*x)) {
			y[i] = 1
		}
		p[i] = 1 / (1 + math.Exp(-1.6*x-0.1*rng.NormFloat64()))
		if p[i] >= 0.5 {
			pred[i] = 1
		}
	}
	b, err := metrics.EvaluateBinary(y, p, 0.5, 10)
	if err != nil {
		t.Fatalf("binary metrics: %v", err)
	}
	fr, err := fairness.Evaluate("sex", fairness.Input{Y: y, Pred: pred, Groups: group}, fairness.Options{Bootstrap: 200, Seed: 3})
	if err != nil {
		t.Fatalf("fairness: %v", err)
	}
	lat := &latency.Report{P50Ms: 0.21, P95Ms: 0.48, P99Ms: 0.93, MaxMs: 2.4, BatchSize: 256, RowsPerSec: 182340, SingleRowRun: 1000}
	in := gates.Inputs{"metrics": {}, "fairness": {"sex": map[string]any{}}, "latency": lat.Values()}
	for k, v := range b.Values() {
		in["metrics"][k] = v
	}
	for k, v := range fr.Values() {
		in["fairness"]["sex"].(map[string]any)[k] = v
	}
	results, passed := gates.Evaluate([]string{
		"metrics.auc >= 0.8",
		"metrics.ece < 0.02",
		"fairness.sex.demographic_parity_difference < 0.2",
		"latency.p99_ms <= 5",
		"metrics.auc >= champion.metrics.auc - 0.01",
	}, in)
	verdict := "failed"
	if passed {
		verdict = "passed"
	}
	var reasons []string
	for _, r := range results {
		if !r.Passed {
			reasons = append(reasons, r.Expression+": "+r.Reason)
		}
	}
	return &Evaluation{
		Model: "churn", Version: 7, Verdict: verdict, Reasons: reasons, Task: "binary",
		Binary:   b,
		Fairness: []*fairness.Report{fr},
		Permutation: []explain.Importance{
			{Feature: "tenure_months", Mean: 0.081, Std: 0.006}, {Feature: "monthly_charges", Mean: 0.043, Std: 0.004},
			{Feature: "contract", Mean: 0.029, Std: 0.005}, {Feature: "support_calls", Mean: 0.011, Std: 0.003},
			{Feature: "region", Mean: -0.001, Std: 0.002},
		},
		SHAP: []explain.Importance{
			{Feature: "tenure_months", Mean: 0.62, Std: 0.41}, {Feature: "monthly_charges", Mean: 0.37, Std: 0.22},
			{Feature: "contract", Mean: 0.31, Std: 0.29}, {Feature: "support_calls", Mean: 0.12, Std: 0.09},
			{Feature: "region", Mean: 0.02, Std: 0.01},
		},
		Latency:  lat,
		Gates:    results,
		Champion: &Champion{Version: 6, Primary: "auc", Challenger: b.ROCAUC, ChampionValue: b.ROCAUC - 0.012, Difference: 0.012, Low: -0.003, High: 0.027},
		Dataset:  "churn-holdout", DatasetVersion: 3,
		DatasetSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		HoldoutRows:   n,
		CreatedAt:     time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC),
	}
}

func render(t *testing.T, e *Evaluation) string {
	t.Helper()
	var buf bytes.Buffer
	if err := HTML(&buf, e); err != nil {
		t.Fatalf("HTML: %v", err)
	}
	return buf.String()
}

// checkPage parses the page as HTML and every inline SVG as strict XML, and
// fails on anything that would reach the network or run a script.
func checkPage(t *testing.T, page string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		if n.Data == "script" || n.Data == "link" || n.Data == "img" || n.Data == "iframe" {
			t.Errorf("page has a <%s> element", n.Data)
		}
		for _, a := range n.Attr {
			if a.Key == "src" || a.Key == "href" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s> has attribute %s=%q", n.Data, a.Key, a.Val)
			}
		}
	}
	lower := strings.ToLower(page)
	for _, bad := range []string{"http://", "https://", "<script", "url("} {
		if strings.Contains(lower, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	svgs := 0
	for rest := page; ; {
		start := strings.Index(rest, "<svg")
		if start < 0 {
			break
		}
		end := strings.Index(rest[start:], "</svg>")
		if end < 0 {
			t.Fatal("unterminated <svg>")
		}
		checkXML(t, rest[start:start+end+len("</svg>")])
		rest = rest[start+end:]
		svgs++
	}
	if svgs == 0 {
		t.Error("page has no charts")
	}
}

func checkXML(t *testing.T, fragment string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(fragment))
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%.300s", err, fragment)
		}
	}
}

func TestBinaryReportHasEverySection(t *testing.T) {
	page := render(t, binaryEvaluation(t, 3000))
	checkPage(t, page)
	for _, id := range []string{"summary", "metrics", "roc", "pr", "calibration", "confusion", "champion", "fairness", "importance", "permutation", "shap", "latency", "gates"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("section %s missing", id)
		}
	}
	for _, want := range []string{"churn@7", "churn-holdout@3", "sha256:9f86d081", "ROC curve · AUC", "Precision-recall · AP", "Rates by sex", "nonbinary", "metrics.auc &gt;= 0.8", "skipped"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestMinimalRegressionReportOmitsSections(t *testing.T) {
	page := render(t, &Evaluation{
		Model: "price", Version: 1, Verdict: "failed", Reasons: []string{"holdout no longer matches the schema"}, Task: "regression",
		Regression: &metrics.Regression{RMSE: 12.5, MAE: 9.1, R2: 0.71, MAPE: math.NaN()},
		Dataset:    "houses", DatasetVersion: 2,
	})
	if _, err := html.Parse(strings.NewReader(page)); err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	for _, id := range []string{"roc", "pr", "calibration", "confusion", "champion", "fairness", "importance", "latency", "gates"} {
		if strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("section %s present without data", id)
		}
	}
	for _, want := range []string{"RMSE", "12.5", "n/a", "holdout no longer matches the schema", `class="summary"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<svg") {
		t.Error("regression report without charts data has an SVG")
	}
}

func TestMulticlassConfusion(t *testing.T) {
	y := []int{0, 1, 2, 0, 1, 2, 0, 1, 2, 2}
	probs := [][]float64{
		{.8, .1, .1}, {.1, .7, .2}, {.2, .2, .6}, {.5, .4, .1}, {.3, .3, .4},
		{.1, .1, .8}, {.6, .3, .1}, {.2, .6, .2}, {.3, .1, .6}, {.4, .2, .4},
	}
	m, err := metrics.EvaluateMulticlass(y, probs, []string{"cat", "dog", hostile})
	if err != nil {
		t.Fatalf("multiclass metrics: %v", err)
	}
	page := render(t, &Evaluation{Model: "pets", Version: 2, Verdict: "passed", Task: "multiclass", Multiclass: m})
	checkPage(t, page)
	for _, want := range []string{`id="confusion"`, "Per class", "dog", "ROC AUC (one vs rest)"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, `id="roc"`) {
		t.Error("multiclass report has a binary ROC curve")
	}
}

func TestHostileStringsAreEscaped(t *testing.T) {
	e := binaryEvaluation(t, 600)
	e.Model = hostile
	e.Dataset = `"><img src=x onerror=alert(1)>`
	e.Reasons = []string{hostile}
	e.Permutation = append(e.Permutation, explain.Importance{Feature: hostile, Mean: 0.05, Std: 0.01})
	e.SHAP = append(e.SHAP, explain.Importance{Feature: hostile + "&", Mean: 0.05})
	e.Fairness[0].Attribute = hostile
	e.Fairness[0].Groups[0].Value = hostile
	e.Gates = append(e.Gates, gates.Result{Expression: hostile, Values: map[string]any{hostile: hostile}, Reason: hostile})
	page := render(t, e)
	checkPage(t, page)
	if strings.Contains(page, hostile) || strings.Contains(page, "<img") {
		t.Fatal("a hostile string reached the page unescaped")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the hostile feature name is not shown escaped")
	}
}

func TestCurvesAreDownsampled(t *testing.T) {
	e := binaryEvaluation(t, 20000)
	if len(e.Binary.ROC) <= maxCurvePoints {
		t.Fatalf("want a curve over %d points to thin, got %d", maxCurvePoints, len(e.Binary.ROC))
	}
	svg := string(rocChart(e.Binary))
	checkXML(t, svg)
	points := strings.Count(svg[strings.Index(svg, `<polyline`):], ",")
	if points != maxCurvePoints {
		t.Errorf("ROC drawn with %d points, want %d", points, maxCurvePoints)
	}
	if page := render(t, e); len(page) > 200_000 {
		t.Errorf("report is %d bytes for a 20000-row holdout", len(page))
	}
}

func TestUndefinedFairnessDifferences(t *testing.T) {
	r := &fairness.Report{
		Attribute: "age_band", Confidence: 0.95, Note: "only one group is large enough to compare",
		Groups: []fairness.Group{
			{Value: "18-25", Size: 12, TooSmall: true, Undefined: []string{fairness.RateTPR}},
			{Value: "26-60", Size: 900, SelectionRate: 0.3, TPR: 0.7, FPR: 0.1},
		},
	}
	page := render(t, &Evaluation{Model: "m", Version: 1, Verdict: "passed", Fairness: []*fairness.Report{r}})
	checkPage(t, page)
	for _, want := range []string{"not computed", "too small", "n/a", "only one group is large enough"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestNiceRange(t *testing.T) {
	lo, hi, ticks := niceRange(-0.003, 0.027)
	if lo > -0.003 || hi < 0.027 || len(ticks) < 3 || len(ticks) > 12 {
		t.Errorf("niceRange(-0.003, 0.027) = %v, %v, %v", lo, hi, ticks)
	}
	if lo, hi, _ := niceRange(0, 0); lo != 0 || hi != 1 {
		t.Errorf("niceRange(0, 0) = %v, %v, want 0, 1", lo, hi)
	}
}

// TestExample renders the example report people open to see what a report
// looks like; -update rewrites it.
func TestExample(t *testing.T) {
	page := render(t, binaryEvaluation(t, 5000))
	checkPage(t, page)
	path := filepath.Join("testdata", "example.html")
	if *update {
		if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (run go test -run TestExample -update): %v", path, err)
	}
	checkPage(t, string(old))
}
