package gbdt

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
)

// synthBinary is n rows of nf standard-normal features (some missing when
// missing > 0) and a label drawn from a logistic model with an interaction,
// thresholds and curves, so trees beat a linear fit and nothing is
// perfectly separable. Trees learn it steadily: models that agree on it
// agree on AUC to a few thousandths.
func synthBinary(n, nf int, missing float64, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &Dataset{Y: make([]float64, n)}
	for j := range nf {
		d.Features = append(d.Features, Column{Name: "x" + strconv.Itoa(j), Kind: model.Numeric, F: make([]float64, n)})
	}
	for r := range n {
		x := func(j int) float64 { return d.Features[j%nf].F[r] }
		for j := range nf {
			d.Features[j].F[r] = rng.NormFloat64()
		}
		z := 1.2*x(0) + math.Sin(2*x(3)) + 0.7*math.Abs(x(4)) - 1
		if x(1) > 0 && x(2) > -0.5 {
			z += 1.2
		}
		if x(5) > 0.5 {
			z += 1
		}
		for j := 6; j < min(nf, 12); j++ {
			z += 0.15 * x(j)
		}
		d.Y[r] = 0
		if rng.Float64() < sigmoid(z) {
			d.Y[r] = 1
		}
		for j := range nf {
			if missing > 0 && rng.Float64() < missing {
				d.Features[j].F[r] = math.NaN()
			}
		}
	}
	return d
}

// predict scores a dataset: the positive-class probability (binary), the
// class index (multiclass), or the value (regression).
func predict(t testing.TB, m *Model, d *Dataset) []float64 {
	t.Helper()
	out := make([]model.Prediction, len(d.Y))
	if err := m.Predict(datasetRows(d), out); err != nil {
		t.Fatalf("predict: %v", err)
	}
	scores := make([]float64, len(out))
	for i, p := range out {
		scores[i] = p.Value
		if m.Task() == model.Multiclass {
			scores[i] = float64(slices.Index(m.Classes(), p.Label))
		}
	}
	return scores
}

func fit(t testing.TB, s Spec, tr, va *Dataset) *Model {
	t.Helper()
	m, err := Train(t.Context(), s, tr, va)
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	return m
}

var binarySpec = Spec{Task: model.Binary, Classes: []string{"0", "1"}, Params: DefaultParams()}

func jsonOf(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
