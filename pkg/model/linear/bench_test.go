package linear

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/table"
)

// BenchmarkLogistic100k trains a binary logistic regression on 100k rows of
// 28 numeric features with the default params (l2 1, maxIter 100), and
// scikit-learn's LogisticRegression (C 1, max_iter 100, lbfgs) on the same
// data in the same run when python3-sklearn is present: x_sklearn is Gyre's
// time over sklearn's (fit only, no parsing), log_loss_diff Gyre's train log
// loss minus sklearn's.
func BenchmarkLogistic100k(b *testing.B) {
	const n, d = 100_000, 28
	rng := rand.New(rand.NewPCG(28, 100))
	truth := make([]float64, d)
	for j := range truth {
		truth[j] = rng.NormFloat64()
	}
	tb := &table.Table{Rows: n}
	var inputs []model.Input
	var header []string
	for j := range d {
		name := fmt.Sprintf("f%d", j)
		tb.Columns = append(tb.Columns, &table.Column{Name: name, Kind: model.Numeric, F: make([]float64, n), Null: make([]bool, n)})
		inputs = append(inputs, model.Input{Name: name, Kind: model.Numeric})
		header = append(header, name)
	}
	y := &table.Column{Name: "y", Kind: model.Categorical, S: make([]string, n), Null: make([]bool, n)}
	tb.Columns = append(tb.Columns, y)
	var csv strings.Builder
	csv.WriteString(strings.Join(header, ",") + ",y\n")
	for i := range n {
		var m float64
		for j := range d {
			x := rng.NormFloat64()*float64(j+1) + float64(j)
			tb.Columns[j].F[i] = x
			m += truth[j] * (x - float64(j)) / float64(j+1)
			fmt.Fprintf(&csv, "%.6g,", x)
		}
		y.S[i] = "0"
		if rng.Float64() < 1/(1+math.Exp(-m)) {
			y.S[i] = "1"
		}
		csv.WriteString(y.S[i] + "\n")
	}
	rows := allRows(n)

	var metrics map[string]float64
	b.ResetTimer()
	for b.Loop() {
		var err error
		if _, metrics, err = Logistic.Train(context.Background(), tb, rows, nil, "y", inputs, nil, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	goSeconds := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(metrics["iterations"], "iterations")

	py := findPython()
	if py == "" {
		b.Log("python3 with scikit-learn not found: no comparison")
		return
	}
	sk := runSklearn(b, py, csv.String(), map[string]any{"target": "y", "numeric": header, "categorical": []string{},
		"model": "logistic", "l2": 1.0, "tol": 1e-4, "max_iter": 100, "max_categories": 100})
	b.ReportMetric(sk.Seconds, "sklearn_s")
	b.ReportMetric(goSeconds/sk.Seconds, "x_sklearn")
	b.ReportMetric(metrics["train_log_loss"]-sk.LogLoss, "log_loss_diff")
}
