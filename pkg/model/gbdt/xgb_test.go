package gbdt

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// xgbScript trains xgboost (tree_method=hist) on a file the test wrote and
// writes the holdout's predictions. Timed: building the DMatrix and training,
// as Train's time covers binning and training.
const xgbScript = `
import json, sys, time
import numpy as np
import xgboost as xgb

train_path, test_path, params_json, pred_path = sys.argv[1:5]
p = json.loads(params_json)

def load(path, ncol):
    if path.endswith(".csv"):
        return np.loadtxt(path, delimiter=",", dtype=np.float32)
    return np.fromfile(path, dtype=np.float32).reshape(-1, ncol)

tr = load(train_path, p["ncol"])
te = load(test_path, p["ncol"])
ytr, xtr = tr[:, 0], tr[:, 1:]
start = time.perf_counter()
dtrain = xgb.DMatrix(xtr, label=ytr, missing=np.nan, nthread=p["threads"])
booster = xgb.train({
    "objective": "binary:logistic", "tree_method": "hist",
    "max_depth": p["maxDepth"], "eta": p["learningRate"],
    "min_child_weight": p["minChildWeight"], "lambda": p["lambda"], "gamma": p["minSplitGain"],
    "subsample": p["subsample"], "colsample_bytree": p["colsampleByTree"],
    "max_bin": p["maxBins"], "nthread": p["threads"], "base_score": float(ytr.mean()),
    "seed": p["seed"],
}, dtrain, num_boost_round=p["trees"])
seconds = time.perf_counter() - start
pred = booster.predict(xgb.DMatrix(te[:, 1:], missing=np.nan, nthread=p["threads"]))
pred.astype(np.float64).tofile(pred_path)
print(json.dumps({"seconds": seconds, "version": xgb.__version__}))
`

// xgboostPython is a python3 that imports xgboost, or "" (Debian's
// python3-xgboost lives in /usr/bin/python3, which a pyenv python3 on PATH
// may hide).
func xgboostPython() string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import xgboost, numpy").Run() == nil {
			return py
		}
	}
	return ""
}

// xgbResult is xgboost's side of a comparison.
type xgbResult struct {
	Seconds float64 `json:"seconds"`
	Version string  `json:"version"`
	Pred    []float64
}

// runXGBoost writes train and test (binary, numeric features) to dir, as
// CSV or raw float32, trains xgboost with p and returns its holdout scores.
func runXGBoost(t testing.TB, py, dir string, csv bool, tr, te *Dataset, p Params) xgbResult {
	t.Helper()
	ext := ".f32"
	if csv {
		ext = ".csv"
	}
	trPath, tePath := filepath.Join(dir, "train"+ext), filepath.Join(dir, "test"+ext)
	for path, d := range map[string]*Dataset{trPath: tr, tePath: te} {
		if err := writeMatrix(path, d, csv); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	script := filepath.Join(dir, "xgb.py")
	if err := os.WriteFile(script, []byte(xgbScript), 0o644); err != nil {
		t.Fatal(err)
	}
	args, err := json.Marshal(map[string]any{
		"ncol": len(tr.Features) + 1, "threads": p.threads(), "trees": p.Trees, "maxDepth": p.MaxDepth,
		"learningRate": p.LearningRate, "minChildWeight": p.MinChildWeight, "lambda": p.Lambda,
		"minSplitGain": p.MinSplitGain, "subsample": p.Subsample, "colsampleByTree": p.ColsampleByTree,
		"maxBins": p.MaxBins, "seed": p.Seed,
	})
	if err != nil {
		t.Fatal(err)
	}
	predPath := filepath.Join(dir, "pred.f64")
	out, err := exec.Command(py, script, trPath, tePath, string(args), predPath).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("xgboost: %v\n%s", err, stderr)
	}
	var res xgbResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("xgboost output %q: %v", out, err)
	}
	raw, err := os.ReadFile(predPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Pred = make([]float64, len(raw)/8)
	for i := range res.Pred {
		res.Pred[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return res
}

// writeMatrix writes the label then the features of each row.
func writeMatrix(path string, d *Dataset, csv bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	row := make([]float64, len(d.Features)+1)
	var buf [4]byte
	var line strings.Builder
	for r := range d.Y {
		row[0] = d.Y[r]
		for j, c := range d.Features {
			row[j+1] = c.F[r]
		}
		if !csv {
			for _, v := range row {
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(float32(v)))
				w.Write(buf[:])
			}
			continue
		}
		line.Reset()
		for j, v := range row {
			if j > 0 {
				line.WriteByte(',')
			}
			line.WriteString(strconv.FormatFloat(v, 'g', -1, 32))
		}
		line.WriteByte('\n')
		w.WriteString(line.String())
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// asFloat32 rounds every feature to float32, what xgboost reads, so both
// sides train on the same numbers.
func asFloat32(d *Dataset) *Dataset {
	for _, c := range d.Features {
		for i, v := range c.F {
			c.F[i] = float64(float32(v))
		}
	}
	return d
}

// TestAgainstXGBoost trains both on the same data with the same params and
// compares holdout AUC.
func TestAgainstXGBoost(t *testing.T) {
	py := xgboostPython()
	if py == "" {
		t.Skip("python3 with xgboost not found (Debian: apt-get install python3-xgboost); skipping the comparison")
	}
	tr, te := asFloat32(synthBinary(20_000, 12, 0.03, 1)), asFloat32(synthBinary(10_000, 12, 0.03, 2))
	s := binarySpec
	s.Params.Subsample, s.Params.ColsampleByTree = 0.8, 0.8
	// One thread: xgboost's OpenMP threads spin badly on a busy machine.
	s.Params.Threads = 1
	m := fit(t, s, tr, nil)
	ours := auc(predict(t, m, te), te.Y)
	xgb := runXGBoost(t, py, t.TempDir(), true, tr, te, s.Params)
	theirs := auc(xgb.Pred, te.Y)
	t.Logf("holdout AUC: gyre %.4f, xgboost %s %.4f", ours, xgb.Version, theirs)
	if math.Abs(ours-theirs) > 0.01 {
		t.Errorf("holdout AUC %.4f, xgboost's %.4f: more than 0.01 apart", ours, theirs)
	}
}

// BenchmarkGBDTVsXGBoost trains Gyre's GBDT and xgboost (tree_method=hist)
// on the same 1M x 28 generated rows (100k with -short), with the same
// trees, depth, learning rate and thread count, and reports both times,
// both holdout AUCs and the time ratio (gyre / xgboost).
func BenchmarkGBDTVsXGBoost(b *testing.B) {
	py := xgboostPython()
	if py == "" {
		b.Skip("python3 with xgboost not found (Debian: apt-get install python3-xgboost): nothing to compare with")
	}
	n, holdout := 1_000_000, 100_000
	if testing.Short() {
		n, holdout = 100_000, 20_000
	}
	tr, te := asFloat32(synthBinary(n, 28, 0, 1)), asFloat32(synthBinary(holdout, 28, 0, 2))
	s := binarySpec
	s.Params.Threads = runtime.GOMAXPROCS(0)
	dir := b.TempDir()
	var ours, theirs time.Duration
	var oursAUC, theirsAUC float64
	for b.Loop() {
		start := time.Now()
		m, err := Train(b.Context(), s, tr, nil)
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		oursAUC = auc(predict(b, m, te), te.Y)
		b.StopTimer()
		xgb := runXGBoost(b, py, dir, false, tr, te, s.Params)
		b.StartTimer()
		theirs += time.Duration(xgb.Seconds * float64(time.Second))
		theirsAUC = auc(xgb.Pred, te.Y)
	}
	b.Logf("%d rows x 28 features, %d trees, depth %d, rate %v, %d threads: gyre %.2fs AUC %.4f, xgboost %.2fs AUC %.4f",
		n, s.Params.Trees, s.Params.MaxDepth, s.Params.LearningRate, s.Params.Threads,
		ours.Seconds()/float64(b.N), oursAUC, theirs.Seconds()/float64(b.N), theirsAUC)
	b.ReportMetric(ours.Seconds()/float64(b.N), "gyre-s")
	b.ReportMetric(theirs.Seconds()/float64(b.N), "xgboost-s")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "time-ratio")
	b.ReportMetric(oursAUC, "gyre-auc")
	b.ReportMetric(theirsAUC, "xgboost-auc")
}
