package xgboost_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/table"
	_ "github.com/gyreml/gyre/pkg/model/xgboost"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// findPython finds a python3 with numpy and xgboost: the one on PATH, else
// Debian's (a pyenv python3 on PATH may lack Debian's packages); "" when
// there is none.
func findPython() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import numpy, xgboost").Run() == nil {
			return p
		}
	}
	return ""
}

func python(t testing.TB) string {
	t.Helper()
	py := findPython()
	if py == "" {
		t.Skip("python3 with xgboost not found (apt-get install python3-xgboost); skipping the comparison with xgboost")
	}
	return py
}

// dataset is generated data with missing values: five numeric features, a
// categorical one, and a target for the task.
type dataset struct {
	header []string
	rows   [][]string
}

var colors = []string{"red", "green", "blue", "amber"}

func generate(rng *rand.Rand, n int, task model.Task) dataset {
	d := dataset{header: []string{"x0", "x1", "x2", "x3", "x4", "color", "y"}}
	for range n {
		x := make([]float64, 5)
		row := make([]string, 0, len(d.header))
		for j := range x {
			x[j] = rng.NormFloat64()
			if j == 3 {
				x[j] = math.Round(x[j] * 3) // ties between rows, as counts have
			}
			if rng.Float64() < 0.1 {
				row = append(row, "")
				x[j] = 0
				continue
			}
			row = append(row, strconv.FormatFloat(x[j], 'g', -1, 64))
		}
		c := rng.IntN(len(colors))
		if rng.Float64() < 0.05 {
			row = append(row, "")
			c = 0
		} else {
			row = append(row, colors[c])
		}
		score := x[0] - 0.8*x[1] + 0.5*x[2]*x[3] + []float64{0, 1, -1, 0.5}[c] + 0.5*rng.NormFloat64()
		var y string
		switch task {
		case model.Binary:
			y = map[bool]string{false: "0", true: "1"}[score > 0.2]
		case model.Multiclass:
			y = []string{"low", "mid", "high"}[min(2, max(0, int(math.Floor(score/1.2+1.5))))]
		default:
			y = strconv.FormatFloat(3*score+x[4], 'g', -1, 64)
		}
		d.rows = append(d.rows, append(row, y))
	}
	return d
}

func (d dataset) write(t testing.TB, path string, rows [][]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(strings.Join(d.header, ",") + "\n")
	for _, r := range rows {
		b.WriteString(strings.Join(r, ",") + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// trained runs examples/xgboost/train.py through the file contract, as a
// worker does, and returns the bundle directory and a CSV of rows to score
// (train rows, then rows never seen, some with an unknown category).
func trained(t testing.TB, py string, task model.Task, n int, params map[string]any) (bundle, score string) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "input"), filepath.Join(dir, "output")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(len(task)), 7))
	d := generate(rng, n+n/5+200, task)
	d.write(t, filepath.Join(in, "train.csv"), d.rows[:n])
	d.write(t, filepath.Join(in, "validation.csv"), d.rows[n:n+n/5])
	fresh := d.rows[n+n/5:]
	for i := 0; i < len(fresh); i += 10 {
		fresh[i][5] = "violet"
	}
	score = filepath.Join(dir, "score.csv")
	d.write(t, score, append(d.rows[:n:n], fresh...))
	targetKind := "numeric"
	if task == model.Multiclass {
		targetKind = "categorical"
	}
	schema := fmt.Sprintf(`{"target": "y", "columns": [{"name": "x0", "kind": "numeric"}, {"name": "x1", "kind": "numeric"},
		{"name": "x2", "kind": "numeric"}, {"name": "x3", "kind": "numeric"}, {"name": "x4", "kind": "numeric"},
		{"name": "color", "kind": "categorical"}, {"name": "y", "kind": %q}]}`, targetKind)
	writeFile(t, filepath.Join(in, "schema.json"), schema)
	raw, _ := json.Marshal(params)
	writeFile(t, filepath.Join(dir, "params.json"), string(raw))

	cmd := exec.Command(py, trainScript(t))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GYRE_INPUT_DIR="+in, "GYRE_OUTPUT_DIR="+out, "GYRE_TARGET=y",
		"GYRE_PARAMS="+filepath.Join(dir, "params.json"), "GYRE_METRICS_FILE="+filepath.Join(dir, "metrics.json"))
	if log, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("train.py: %v\n%s", err, log)
	}
	return out, score
}

func trainScript(t testing.TB) string {
	p, err := filepath.Abs("../../../examples/xgboost/train.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// xgboostPredict is xgboost's own predict for the bundle over the CSV.
func xgboostPredict(t testing.TB, py, bundle, csv string, repeat int) (pred [][]float64, rowsPerS float64) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pred.json")
	cmd := exec.Command(py, "testdata/predict.py", bundle, csv, out, strconv.Itoa(repeat))
	if log, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("predict.py: %v\n%s", err, log)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Pred     [][]float64 `json:"pred"`
		RowsPerS float64     `json:"rows_per_s"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return res.Pred, res.RowsPerS
}

// gyrePredict loads the bundle as the inference server does and scores the
// CSV.
func gyrePredict(t testing.TB, bundle, csv string) (model.Model, []model.Row, []model.Prediction) {
	t.Helper()
	m, man, err := model.Load(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if man.Format != "xgboost/json" {
		t.Fatalf("format %q", man.Format)
	}
	raw, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]model.Kind{}
	for _, in := range m.Inputs() {
		kinds[in.Name] = in.Kind
	}
	tab, err := table.ReadCSV(bytes.NewReader(raw), kinds)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tab.ModelRows(m.Inputs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]model.Prediction, len(rows))
	if err := m.Predict(rows, out); err != nil {
		t.Fatal(err)
	}
	return m, rows, out
}

func TestPredictionsEqualXGBoost(t *testing.T) {
	py := python(t)
	for _, tc := range []struct {
		task   model.Task
		params map[string]any
	}{
		{model.Binary, map[string]any{"n_estimators": 60, "max_depth": 5, "learning_rate": 0.2}},
		{model.Multiclass, map[string]any{"trees": 30, "maxDepth": 4, "learningRate": 0.3, "max_cat_to_onehot": 1}},
		{model.Regression, map[string]any{"n_estimators": 50, "max_depth": 6, "learning_rate": 0.1, "min_child_weight": 2}},
	} {
		t.Run(string(tc.task), func(t *testing.T) {
			bundle, score := trained(t, py, tc.task, 2000, tc.params)
			m, _, got := gyrePredict(t, bundle, score)
			if m.Task() != tc.task {
				t.Fatalf("task %s, want %s", m.Task(), tc.task)
			}
			want, _ := xgboostPredict(t, py, bundle, score, 0)
			if len(want) != len(got) {
				t.Fatalf("xgboost scored %d rows, Gyre %d", len(want), len(got))
			}
			var worst float64
			for i, w := range want {
				var g []float64
				switch tc.task {
				case model.Binary:
					g = []float64{got[i].Value}
					if got[i].Probabilities[1] != got[i].Value {
						t.Fatalf("row %d: value %v is not the positive probability %v", i, got[i].Value, got[i].Probabilities)
					}
				case model.Multiclass:
					g = got[i].Probabilities
				default:
					g = []float64{got[i].Value}
				}
				if len(g) != len(w) {
					t.Fatalf("row %d: Gyre %v, xgboost %v", i, g, w)
				}
				for k := range w {
					d := math.Abs(g[k] - w[k])
					worst = max(worst, d)
					if d > 1e-6 {
						t.Fatalf("row %d output %d: Gyre %v, xgboost %v", i, k, g[k], w[k])
					}
				}
			}
			t.Logf("%d rows, largest difference %.3g", len(want), worst)
		})
	}
}

// BenchmarkPredict scores 20,000 rows with a 200-tree, depth-6 binary model:
// rows/s for Gyre's Go scorer and for xgboost's inplace_predict (numpy in,
// same machine, all cores both), and go_over_xgboost, their ratio.
func BenchmarkPredict(b *testing.B) {
	py := findPython()
	if py == "" {
		b.Skip("python3 with xgboost not found (apt-get install python3-xgboost)")
	}
	bundle, score := trained(b, py, model.Binary, 20000, map[string]any{"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1})
	m, rows, out := gyrePredict(b, bundle, score)
	b.ResetTimer()
	for b.Loop() {
		if err := m.Predict(rows, out); err != nil {
			b.Fatal(err)
		}
	}
	goRate := float64(len(rows)) * float64(b.N) / b.Elapsed().Seconds()
	b.StopTimer()
	_, xgbRate := xgboostPredict(b, py, bundle, score, 20)
	b.ReportMetric(goRate, "rows/s")
	b.ReportMetric(xgbRate, "xgboost_rows/s")
	b.ReportMetric(goRate/xgbRate, "go_over_xgboost")
	b.Logf("GOMAXPROCS %d", runtime.GOMAXPROCS(0))
}

// The example pipeline stays a valid pipeline that runs train.py.
func TestExamplePipeline(t *testing.T) {
	raw, err := os.ReadFile("../../../examples/xgboost/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Spec.Training
	if tr.Trainer != "command" || len(tr.Command) != 2 || !strings.HasSuffix(tr.Command[1], "examples/xgboost/train.py") || tr.Target != "default" || p.Spec.Dataset != "credit-applications" {
		t.Errorf("training %+v, dataset %q", tr, p.Spec.Dataset)
	}
}
