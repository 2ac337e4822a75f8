// Package report renders one evaluation as a self-contained HTML page: inline
// CSS and hand-built inline SVG charts, no scripts, fonts or images from
// anywhere, so the file opens offline and can be attached to an audit.
package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gyreml/gyre/pkg/evaluate/explain"
	"github.com/gyreml/gyre/pkg/evaluate/fairness"
	"github.com/gyreml/gyre/pkg/evaluate/gates"
	"github.com/gyreml/gyre/pkg/evaluate/latency"
	"github.com/gyreml/gyre/pkg/evaluate/metrics"
)

// Evaluation is everything one report shows. Nil and empty fields are
// sections the evaluation did not measure; the report leaves them out.
type Evaluation struct {
	Model   string
	Version int64
	Verdict string // passed or failed
	Reasons []string
	Task    string // binary, multiclass or regression

	Binary     *metrics.Binary
	Multiclass *metrics.Multiclass
	Regression *metrics.Regression

	Fairness    []*fairness.Report
	Permutation []explain.Importance
	SHAP        []explain.Importance // mean |SHAP| per input
	Latency     *latency.Report
	Gates       []gates.Result
	Champion    *Champion

	Dataset        string
	DatasetVersion int64
	DatasetSHA256  string
	HoldoutRows    int
	CreatedAt      time.Time
}

// Champion compares the evaluated model with the production one on the
// primary metric: Difference is challenger minus champion, with its interval.
type Champion struct {
	Version       int64
	Primary       string
	Challenger    float64
	ChampionValue float64
	Difference    float64
	Low, High     float64
}

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Funcs(template.FuncMap{"num": num, "pct": pct}).Parse(pageSource))

// HTML writes the report of e to w.
func HTML(w io.Writer, e *Evaluation) error {
	if e == nil {
		return fmt.Errorf("report: no evaluation")
	}
	if err := page.Execute(w, build(e)); err != nil {
		return fmt.Errorf("report %s@%d: %w", e.Model, e.Version, err)
	}
	return nil
}

// view is the page's data: the evaluation plus its charts, drawn in Go.
type view struct {
	E       *Evaluation
	Passed  bool
	Metrics []metric

	ROC, PR, Calibration, Confusion template.HTML

	Fairness []fairnessView

	Permutation, SHAP         template.HTML
	PermutationMore, SHAPMore int

	Gates         []gateRow
	ChampionChart template.HTML
}

type metric struct {
	Name  string
	Value string
}

type fairnessView struct {
	R                  *fairness.Report
	Rates, Differences template.HTML
}

type gateRow struct {
	Expression, Values, Status, Reason string
}

func build(e *Evaluation) view {
	v := view{E: e, Passed: e.Verdict == "passed"}
	switch {
	case e.Binary != nil:
		b := e.Binary
		v.Metrics = []metric{
			{"ROC AUC", num(b.ROCAUC)}, {"Average precision", num(b.PRAUC)}, {"Accuracy", num(b.Accuracy)},
			{"Precision", num(b.Precision)}, {"Recall", num(b.Recall)}, {"F1", num(b.F1)},
			{"Log loss", num(b.LogLoss)}, {"Brier", num(b.Brier)}, {"ECE", num(b.ECE)}, {"Threshold", num(b.Threshold)},
		}
		if len(b.ROC) > 0 {
			v.ROC = rocChart(b)
		}
		if len(b.PR) > 0 {
			v.PR = prChart(b)
		}
		if len(b.Calibration) > 0 {
			v.Calibration = calibrationChart(b)
		}
		v.Confusion = confusionChart([]string{"negative (0)", "positive (1)"}, [][]int64{b.Confusion[0][:], b.Confusion[1][:]})
	case e.Multiclass != nil:
		m := e.Multiclass
		v.Metrics = []metric{
			{"Accuracy", num(m.Accuracy)}, {"Macro precision", num(m.MacroPrecision)}, {"Macro recall", num(m.MacroRecall)},
			{"Macro F1", num(m.MacroF1)}, {"Log loss", num(m.LogLoss)}, {"ROC AUC (one vs rest)", num(m.ROCAUCOvR)},
		}
		if len(m.Confusion) > 0 {
			labels := make([]string, len(m.Confusion))
			for i := range labels {
				labels[i] = strconv.Itoa(i)
				if len(m.PerClass) == len(m.Confusion) {
					labels[i] = m.PerClass[i].Class
				}
			}
			v.Confusion = confusionChart(labels, m.Confusion)
		}
	case e.Regression != nil:
		r := e.Regression
		v.Metrics = []metric{{"RMSE", num(r.RMSE)}, {"MAE", num(r.MAE)}, {"R²", num(r.R2)}, {"MAPE", num(r.MAPE)}}
	}
	for _, r := range e.Fairness {
		if r == nil {
			continue
		}
		fv := fairnessView{R: r, Differences: fairnessDifferencesChart(r)}
		if len(r.Groups) > 0 {
			fv.Rates = fairnessRatesChart(r)
		}
		v.Fairness = append(v.Fairness, fv)
	}
	if len(e.Permutation) > 0 {
		v.Permutation, v.PermutationMore = importanceChart("Permutation importance (score drop)", e.Permutation)
	}
	if len(e.SHAP) > 0 {
		v.SHAP, v.SHAPMore = importanceChart("Mean |SHAP|", e.SHAP)
	}
	for _, g := range e.Gates {
		row := gateRow{Expression: g.Expression, Values: describe(g.Values), Reason: g.Reason, Status: "fail"}
		switch {
		case g.Skipped:
			row.Status = "skipped"
		case g.Passed:
			row.Status = "pass"
		}
		v.Gates = append(v.Gates, row)
	}
	if e.Champion != nil {
		v.ChampionChart = championChart(e.Champion)
	}
	return v
}

// describe lists the values a gate read, by path, in a stable order.
func describe(values map[string]any) string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		val := values[k]
		if x, ok := val.(float64); ok {
			parts[i] = k + " = " + num(x)
		} else {
			parts[i] = fmt.Sprintf("%s = %v", k, val)
		}
	}
	return strings.Join(parts, ", ")
}

// num shows four significant digits, enough to compare two models by eye.
func num(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	if a := math.Abs(v); a >= 1e4 && a < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
}
