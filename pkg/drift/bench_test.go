package drift

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gyreml/gyre/pkg/profile"
	"github.com/gyreml/gyre/pkg/sketch"
)

var (
	benchRows          = flag.Int("drift.rows", 1_000_000, "rows per window in BenchmarkDrift")
	benchScipyNumeric  = flag.Int("drift.scipy-numeric", 5, "numeric features scipy is timed on in BenchmarkDrift (its mean per feature is scaled to each sub-benchmark's count); 0 skips scipy")
	benchScipyCategory = flag.Int("drift.scipy-categorical", 2, "categorical features scipy is timed on in BenchmarkDrift")
)

const (
	benchNumeric     = 50
	benchCategorical = 5
	benchCategories  = 50 // distinct values per categorical feature
)

// benchShifts are the window's mean shifts (in standard deviations),
// cycling over the features: no drift, drift below and near the sketches'
// noise, clear drift, gross drift. scipy's cost depends on it (its
// asymptotic p-value sums n terms where D is small but not tiny), so any
// multiple of five features is a fair sample.
var benchShifts = []float64{0, 0.005, 0.02, 0.2, 1}

// driftBench is the shared data: a window of rows per feature, the
// reference's sketches (as a stored profile holds them), and scipy's
// timings on the same data.
type driftBench struct {
	rows      int
	window    [][]float64 // [feature][row]
	ref       []*sketch.KLL
	edges     [][]float64
	catWindow [][]string
	catRef    []Categories
	scipy     *scipyBench // nil when skipped
	scipyNote string
}

type scipyBench struct {
	Version string `json:"scipy"`
	Numeric []struct {
		Seconds, KS, P, Wasserstein, PSI float64
	} `json:"numeric"`
	Categorical []struct {
		Seconds, Chi2, JS float64
	} `json:"categorical"`
}

// secondsPerFeature is scipy's mean time for one numeric or categorical
// feature.
func (s *scipyBench) secondsPerFeature(categorical bool) float64 {
	var sum float64
	var n int
	if categorical {
		for _, e := range s.Categorical {
			sum += e.Seconds
		}
		n = len(s.Categorical)
	} else {
		for _, e := range s.Numeric {
			sum += e.Seconds
		}
		n = len(s.Numeric)
	}
	return sum / float64(n)
}

var (
	benchOnce sync.Once
	benchData *driftBench
)

func loadDriftBench(b *testing.B) *driftBench {
	benchOnce.Do(func() { benchData = newDriftBench(b) })
	if benchData == nil {
		b.Fatal("benchmark setup failed")
	}
	return benchData
}

func newDriftBench(b *testing.B) *driftBench {
	rows := *benchRows
	d := &driftBench{rows: rows}
	dir := b.TempDir()
	nScipy := min(*benchScipyNumeric, benchNumeric)
	refFile, winFile := rawWriter(b, filepath.Join(dir, "ref.f64")), rawWriter(b, filepath.Join(dir, "win.f64"))
	for f := range benchNumeric {
		scale, loc := float64(1+f%7), float64(f)
		refSample := normal(rows, uint64(1000+f), loc, scale)
		ref := kll(refSample)
		d.ref = append(d.ref, ref)
		d.edges = append(d.edges, SketchEdges(ref, DefaultPSIBins))
		win := normal(rows, uint64(2000+f), loc+benchShifts[f%len(benchShifts)]*scale, scale)
		d.window = append(d.window, win)
		if f < nScipy {
			refFile.write(refSample)
			winFile.write(win)
		}
	}
	refFile.close()
	winFile.close()
	writeJSON(b, filepath.Join(dir, "edges.json"), d.edges[:nScipy])

	values := make([]string, benchCategories)
	for i := range values {
		values[i] = fmt.Sprintf("value-%02d", i)
	}
	nScipyCat := min(*benchScipyCategory, benchCategorical)
	for c := range benchCategorical {
		refCodes := zipfCodes(rows, uint64(3000+c), 0)
		top := sketch.NewTopK(profile.TopKCapacity)
		for _, k := range refCodes {
			top.Add(values[k])
		}
		d.catRef = append(d.catRef, CategoriesFromTopK(top))
		win := make([]string, rows)
		for i, k := range zipfCodes(rows, uint64(4000+c), c%3) {
			win[i] = values[k]
		}
		d.catWindow = append(d.catWindow, win)
		if c < nScipyCat {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("cat%d.txt", c)), []byte(strings.Join(win, "\n")), 0o600); err != nil {
				b.Fatal(err)
			}
			writeJSON(b, filepath.Join(dir, fmt.Sprintf("cat%d_ref.json", c)), d.catRef[c].Counts)
		}
	}

	if nScipy == 0 {
		d.scipyNote = "skipped (-drift.scipy-numeric 0)"
		return d
	}
	if out, err := exec.Command(python, "-c", "import scipy, numpy").CombinedOutput(); err != nil {
		d.scipyNote = fmt.Sprintf("skipped: %s lacks scipy: %v: %s", python, err, out)
		return d
	}
	cmd := exec.Command(python, filepath.Join("testdata", "scipy_bench.py"), dir,
		strconv.Itoa(rows), strconv.Itoa(nScipy), strconv.Itoa(nScipyCat))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("scipy_bench.py: %v\n%s", err, out)
	}
	var s scipyBench
	data, err := os.ReadFile(filepath.Join(dir, "scipy.json"))
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	if err != nil {
		b.Fatal(err)
	}
	d.scipy = &s
	d.logSketchVsExact(b)
	return d
}

// logSketchVsExact reports how far the sketch values are from scipy's
// exact ones on the features scipy ran on.
func (d *driftBench) logSketchVsExact(b *testing.B) {
	for f, e := range d.scipy.Numeric {
		s := CompareNumeric(d.ref[f], kll(d.window[f]), d.edges[f])
		b.Logf("feature %d (shift %.3g sd): KS %.4f exact %.4f (p %.3g, upper %.3g; exact %.3g) | W %.4g exact %.4g | PSI %.5f exact %.5f | scipy %.2fs",
			f, benchShifts[f%len(benchShifts)], s.KS, e.KS, s.KSPValue, s.KSPValueUpper, e.P, s.Wasserstein, e.Wasserstein, s.PSI, e.PSI, e.Seconds)
	}
}

// BenchmarkDrift is the monitor's work for one window of *benchRows rows:
// build each feature's window sketch from the rows and score it against
// the reference sketch (CompareNumeric: PSI, KS with p-value,
// Wasserstein), on one core. scipy does the same comparisons exactly on
// the raw reference and window (ks_2samp, wasserstein_distance, PSI with
// numpy) in a python subprocess that times only its computation; speedup
// is scipy's time over ours for the same features. ns/feature-row staying
// flat from 10 to 50 features shows the cost is linear in features.
//
//	go test ./pkg/drift -run '^$' -bench Drift -benchtime 1x
//	go test ./pkg/drift -run '^$' -bench Drift -drift.rows 200000 -drift.scipy-numeric 50
func BenchmarkDrift(b *testing.B) {
	d := loadDriftBench(b)
	if d.scipy != nil {
		b.Logf("scipy %s timed on %d numeric and %d categorical features of %d rows", d.scipy.Version, len(d.scipy.Numeric), len(d.scipy.Categorical), d.rows)
	} else {
		b.Logf("scipy %s", d.scipyNote)
	}
	for _, features := range []int{10, 25, 50} {
		b.Run(fmt.Sprintf("numeric=%d", features), func(b *testing.B) {
			var last NumericScores
			var stateBytes int
			for b.Loop() {
				for f := range features {
					win := sketch.NewKLL(sketch.DefaultKLLK)
					for _, x := range d.window[f] {
						win.Update(x)
					}
					last = CompareNumeric(d.ref[f], win, d.edges[f])
					if f == 0 {
						state, _ := win.MarshalBinary()
						stateBytes = len(state)
					}
				}
			}
			if math.IsNaN(last.KS) {
				b.Fatal("no score")
			}
			perOp := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perOp*1e9/float64(features*d.rows), "ns/feature-row")
			b.ReportMetric(float64(stateBytes), "sketch-B/feature")
			if d.scipy != nil {
				scipy := d.scipy.secondsPerFeature(false) * float64(features)
				b.ReportMetric(scipy, "scipy-s/op")
				b.ReportMetric(scipy/perOp, "speedup")
			}
		})
	}
	b.Run(fmt.Sprintf("categorical=%d", benchCategorical), func(b *testing.B) {
		var last CategoricalScores
		for b.Loop() {
			for c := range benchCategorical {
				counts := make(map[string]int64, benchCategories)
				for _, v := range d.catWindow[c] {
					counts[v]++
				}
				last = CompareCategorical(d.catRef[c], Categories{Counts: counts})
			}
		}
		if math.IsNaN(last.Chi2) {
			b.Fatal("no score")
		}
		perOp := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(perOp*1e9/float64(benchCategorical*d.rows), "ns/feature-row")
		if d.scipy != nil && len(d.scipy.Categorical) > 0 {
			scipy := d.scipy.secondsPerFeature(true) * benchCategorical
			b.ReportMetric(scipy, "scipy-s/op")
			b.ReportMetric(scipy/perOp, "speedup")
		}
	})
}

// zipfCodes draws n category codes with Zipf-like weights; shift moves
// weight between categories (0 is the reference's distribution).
func zipfCodes(n int, seed uint64, shift int) []int {
	w := make([]float64, benchCategories)
	var total float64
	for i := range w {
		w[i] = 1 / float64((i+shift*7)%benchCategories+1)
		total += w[i]
	}
	cum := make([]float64, len(w))
	var c float64
	for i := range w {
		c += w[i] / total
		cum[i] = c
	}
	r := newRand(seed)
	codes := make([]int, n)
	for i := range codes {
		k, _ := slices.BinarySearch(cum, r.Float64())
		codes[i] = min(k, benchCategories-1)
	}
	return codes
}

// rawFile writes float64 values little-endian, as numpy.fromfile reads
// dtype '<f8'.
type rawFile struct {
	b   *testing.B
	f   *os.File
	buf []byte
}

func rawWriter(b *testing.B, path string) *rawFile {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	return &rawFile{b: b, f: f}
}

func (w *rawFile) write(xs []float64) {
	w.buf = w.buf[:0]
	for _, x := range xs {
		w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(x))
	}
	if _, err := w.f.Write(w.buf); err != nil {
		w.b.Fatal(err)
	}
}

func (w *rawFile) close() {
	if err := w.f.Close(); err != nil {
		w.b.Fatal(err)
	}
}

func writeJSON(b *testing.B, path string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCompareNumeric is the comparison alone, once the window sketch
// exists: what scoring costs on top of the sketch updates.
func BenchmarkCompareNumeric(b *testing.B) {
	ref, cur := kll(normal(1_000_000, 1, 0, 1)), kll(normal(1_000_000, 2, 0.01, 1))
	edges := SketchEdges(ref, DefaultPSIBins)
	for b.Loop() {
		CompareNumeric(ref, cur, edges)
	}
}
