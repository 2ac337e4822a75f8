// Package fairness measures group fairness of a binary classifier's decisions
// over one sensitive attribute: per-group size, selection rate, TPR, FPR and
// precision, and the between-group differences fairlearn defines
// (demographic parity difference and ratio, equal opportunity difference,
// equalized odds difference), each with a bootstrap confidence interval.
//
// Differences are taken only over groups of at least Options.MinGroupSize rows;
// smaller groups are reported with TooSmall set. A rate a group cannot have (TPR
// without positives, FPR without negatives, precision without positive
// decisions) is listed in Group.Undefined and that group is left out of the
// difference built on it. fairlearn instead counts such a rate as 0, which can
// make a difference look large (or small) for no reason.
//
// The bootstrap is stratified by group: each resample draws every group's rows
// with replacement, keeping the group sizes, so the set of groups compared is
// the same in every resample. The interval is the percentile interval of the
// resampled differences; the point estimate is on the full data.
package fairness

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// MissingGroup is the group of rows whose sensitive attribute is empty.
const MissingGroup = "(missing)"

// Names of the values Report.Values returns, as a gate reads them under
// fairness.<attribute>.
const (
	NameDemographicParityDifference = "demographic_parity_difference"
	NameDemographicParityRatio      = "demographic_parity_ratio"
	NameEqualOpportunityDifference  = "equal_opportunity_difference"
	NameEqualizedOddsDifference     = "equalized_odds_difference"
)

// Rate names used in Group.Undefined.
const (
	RateTPR       = "tpr"
	RateFPR       = "fpr"
	RatePrecision = "precision"
)

// Input is one holdout's truth, decisions and sensitive attribute, row-aligned.
type Input struct {
	Y      []int    // truth, 0 or 1
	Pred   []int    // the model's decision, 0 or 1
	Groups []string // the sensitive attribute's value per row; "" is missing
}

// Options tune Evaluate. Zero values take the defaults.
type Options struct {
	MinGroupSize int     // groups smaller than this are reported but not compared; default 30
	Bootstrap    int     // resamples for the intervals; default 1000
	Confidence   float64 // interval coverage, in (0, 1); default 0.95
	Seed         uint64  // the same seed gives the same intervals
}

// Group is one value of the sensitive attribute.
type Group struct {
	Value         string  `json:"value"`
	Size          int64   `json:"size"`
	Positives     int64   `json:"positives"`
	SelectionRate float64 `json:"selectionRate"`
	TPR           float64 `json:"tpr"`
	FPR           float64 `json:"fpr"`
	Precision     float64 `json:"precision"`
	// TooSmall groups are below MinGroupSize and excluded from every difference.
	TooSmall bool `json:"tooSmall,omitempty"`
	// Undefined names the rates this group cannot have (their fields hold 0).
	Undefined []string `json:"undefined,omitempty"`
}

// Difference is a between-group statistic with its bootstrap interval.
type Difference struct {
	Value float64 `json:"value"`
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
	// Resamples is how many resamples had the statistic defined and so
	// make up the interval.
	Resamples int `json:"resamples"`
}

// Report is the fairness of one sensitive attribute. A nil difference could
// not be computed; Note says why.
type Report struct {
	Attribute  string  `json:"attribute"`
	Groups     []Group `json:"groups"`
	Confidence float64 `json:"confidence"`
	// DemographicParityDifference is the max minus the min selection rate.
	DemographicParityDifference *Difference `json:"demographicParityDifference"`
	// DemographicParityRatio (disparate impact) is the min over the max selection rate.
	DemographicParityRatio *Difference `json:"demographicParityRatio"`
	// EqualOpportunityDifference is the max minus the min TPR.
	EqualOpportunityDifference *Difference `json:"equalOpportunityDifference"`
	// EqualizedOddsDifference is the larger of the TPR and FPR differences.
	EqualizedOddsDifference *Difference `json:"equalizedOddsDifference"`
	Note                    string      `json:"note,omitempty"`
}

// Values returns the differences under their gate names. A difference that
// could not be computed is absent, so a gate that reads it fails with an
// unknown-value error rather than comparing a NaN.
func (r *Report) Values() map[string]float64 {
	v := make(map[string]float64, 4)
	for name, d := range map[string]*Difference{
		NameDemographicParityDifference: r.DemographicParityDifference,
		NameDemographicParityRatio:      r.DemographicParityRatio,
		NameEqualOpportunityDifference:  r.EqualOpportunityDifference,
		NameEqualizedOddsDifference:     r.EqualizedOddsDifference,
	} {
		if d != nil {
			v[name] = d.Value
		}
	}
	return v
}

// cells is a group's confusion matrix.
type cells struct{ tp, fp, fn, tn int64 }

func (c cells) size() int64 { return c.tp + c.fp + c.fn + c.tn }

// stats are the four between-group statistics, NaN where undefined.
type stats struct{ dpDiff, dpRatio, eopDiff, eoddsDiff float64 }

// Evaluate measures the fairness of in.Pred against in.Y over the groups of
// in.Groups. attribute names the sensitive attribute in the report.
func Evaluate(attribute string, in Input, opt Options) (*Report, error) {
	if attribute == "" {
		return nil, errors.New("fairness: empty attribute name")
	}
	opt, err := withDefaults(opt)
	if err != nil {
		return nil, fmt.Errorf("fairness %s: %w", attribute, err)
	}
	n := len(in.Y)
	if n == 0 {
		return nil, fmt.Errorf("fairness %s: no rows", attribute)
	}
	if len(in.Pred) != n || len(in.Groups) != n {
		return nil, fmt.Errorf("fairness %s: %d truths, %d decisions, %d group values: lengths differ",
			attribute, n, len(in.Pred), len(in.Groups))
	}

	index := make(map[string]int)
	var values []string
	var counts []cells
	for i := range n {
		y, p := in.Y[i], in.Pred[i]
		if (y != 0 && y != 1) || (p != 0 && p != 1) {
			return nil, fmt.Errorf("fairness %s: row %d: truth %d, decision %d: want 0 or 1", attribute, i, y, p)
		}
		g := in.Groups[i]
		if g == "" {
			g = MissingGroup
		}
		k, ok := index[g]
		if !ok {
			k = len(values)
			index[g] = k
			values = append(values, g)
			counts = append(counts, cells{})
		}
		c := &counts[k]
		switch {
		case y == 1 && p == 1:
			c.tp++
		case y == 0 && p == 1:
			c.fp++
		case y == 1:
			c.fn++
		default:
			c.tn++
		}
	}

	order := make([]int, len(values))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(values[a], values[b]) })

	r := &Report{Attribute: attribute, Confidence: opt.Confidence}
	var compared []cells
	var small []string
	for _, k := range order {
		c := counts[k]
		g := Group{Value: values[k], Size: c.size(), Positives: c.tp + c.fn, TooSmall: c.size() < int64(opt.MinGroupSize)}
		g.SelectionRate = float64(c.tp+c.fp) / float64(c.size())
		g.TPR = rate(c.tp, c.tp+c.fn, RateTPR, &g.Undefined)
		g.FPR = rate(c.fp, c.fp+c.tn, RateFPR, &g.Undefined)
		g.Precision = rate(c.tp, c.tp+c.fp, RatePrecision, &g.Undefined)
		r.Groups = append(r.Groups, g)
		if g.TooSmall {
			small = append(small, g.Value)
		} else {
			compared = append(compared, c)
		}
	}

	var notes []string
	if len(small) > 0 {
		notes = append(notes, fmt.Sprintf("groups below %d rows not compared: %s", opt.MinGroupSize, strings.Join(small, ", ")))
	}
	point := compute(compared)
	if len(compared) < 2 {
		notes = append(notes, fmt.Sprintf("%d group(s) with at least %d rows: no differences", len(compared), opt.MinGroupSize))
	} else {
		if math.IsNaN(point.dpRatio) {
			notes = append(notes, "no compared group has a positive decision: demographic parity ratio undefined")
		}
		if math.IsNaN(point.eopDiff) {
			notes = append(notes, "fewer than 2 compared groups have positives: equal opportunity and equalized odds undefined")
		} else if math.IsNaN(point.eoddsDiff) {
			notes = append(notes, "fewer than 2 compared groups have negatives: equalized odds undefined")
		}
	}
	r.Note = strings.Join(notes, "; ")

	samples := bootstrap(compared, opt)
	lo := (1 - opt.Confidence) / 2
	r.DemographicParityDifference = difference(point.dpDiff, samples, func(s stats) float64 { return s.dpDiff }, lo)
	r.DemographicParityRatio = difference(point.dpRatio, samples, func(s stats) float64 { return s.dpRatio }, lo)
	r.EqualOpportunityDifference = difference(point.eopDiff, samples, func(s stats) float64 { return s.eopDiff }, lo)
	r.EqualizedOddsDifference = difference(point.eoddsDiff, samples, func(s stats) float64 { return s.eoddsDiff }, lo)
	return r, nil
}

func withDefaults(opt Options) (Options, error) {
	if opt.MinGroupSize < 0 || opt.Bootstrap < 0 {
		return opt, fmt.Errorf("min group size %d, bootstrap %d: must not be negative", opt.MinGroupSize, opt.Bootstrap)
	}
	if opt.Confidence != 0 && !(opt.Confidence > 0 && opt.Confidence < 1) {
		return opt, fmt.Errorf("confidence %v: want a value in (0, 1)", opt.Confidence)
	}
	if opt.MinGroupSize == 0 {
		opt.MinGroupSize = 30
	}
	if opt.Bootstrap == 0 {
		opt.Bootstrap = 1000
	}
	if opt.Confidence == 0 {
		opt.Confidence = 0.95
	}
	return opt, nil
}

// rate is num/den, or 0 with name added to undefined when den is 0.
func rate(num, den int64, name string, undefined *[]string) float64 {
	if den == 0 {
		*undefined = append(*undefined, name)
		return 0
	}
	return float64(num) / float64(den)
}

// compute returns the statistics over groups; a rate a group lacks leaves it
// out of the statistics built on that rate.
func compute(groups []cells) stats {
	nan := math.NaN()
	s := stats{nan, nan, nan, nan}
	if len(groups) < 2 {
		return s
	}
	srMin, srMax := math.Inf(1), math.Inf(-1)
	tprMin, tprMax, tprN := math.Inf(1), math.Inf(-1), 0
	fprMin, fprMax, fprN := math.Inf(1), math.Inf(-1), 0
	for _, c := range groups {
		sr := float64(c.tp+c.fp) / float64(c.size())
		srMin, srMax = min(srMin, sr), max(srMax, sr)
		if pos := c.tp + c.fn; pos > 0 {
			tpr := float64(c.tp) / float64(pos)
			tprMin, tprMax, tprN = min(tprMin, tpr), max(tprMax, tpr), tprN+1
		}
		if neg := c.fp + c.tn; neg > 0 {
			fpr := float64(c.fp) / float64(neg)
			fprMin, fprMax, fprN = min(fprMin, fpr), max(fprMax, fpr), fprN+1
		}
	}
	s.dpDiff = srMax - srMin
	if srMax > 0 {
		s.dpRatio = srMin / srMax
	}
	if tprN >= 2 {
		s.eopDiff = tprMax - tprMin
	}
	if tprN >= 2 && fprN >= 2 {
		s.eoddsDiff = max(s.eopDiff, fprMax-fprMin)
	}
	return s
}

// bootstrap returns the statistics of opt.Bootstrap stratified resamples.
// Resample b draws from its own generator seeded with (opt.Seed, b), so the
// result does not depend on how the work is split across goroutines.
func bootstrap(groups []cells, opt Options) []stats {
	if len(groups) < 2 {
		return nil
	}
	out := make([]stats, opt.Bootstrap)
	workers := min(runtime.GOMAXPROCS(0), opt.Bootstrap)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			resampled := make([]cells, len(groups))
			for b := w; b < opt.Bootstrap; b += workers {
				rng := rand.New(rand.NewPCG(opt.Seed, uint64(b)))
				for i, c := range groups {
					resampled[i] = resample(rng, c)
				}
				out[b] = compute(resampled)
			}
		})
	}
	wg.Wait()
	return out
}

// resample draws c.size() rows with replacement from a group with confusion
// matrix c. Only the cell of a row matters, so a row is drawn as a uniform
// index into the group's rows laid out cell by cell.
func resample(rng *rand.Rand, c cells) cells {
	n := uint64(c.size())
	t1 := uint64(c.tp)
	t2 := t1 + uint64(c.fp)
	t3 := t2 + uint64(c.fn)
	var out cells
	for range n {
		switch u := rng.Uint64N(n); {
		case u < t1:
			out.tp++
		case u < t2:
			out.fp++
		case u < t3:
			out.fn++
		default:
			out.tn++
		}
	}
	return out
}

// difference pairs a point estimate with the percentile interval of the
// resamples where the statistic is defined; nil when the point is undefined.
func difference(point float64, samples []stats, get func(stats) float64, lo float64) *Difference {
	if math.IsNaN(point) {
		return nil
	}
	vals := make([]float64, 0, len(samples))
	for _, s := range samples {
		if v := get(s); !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	d := &Difference{Value: point, Low: point, High: point, Resamples: len(vals)}
	if len(vals) == 0 {
		return d
	}
	slices.Sort(vals)
	d.Low, d.High = quantile(vals, lo), quantile(vals, 1-lo)
	return d
}

// quantile is the q-quantile of sorted by linear interpolation between order
// statistics (numpy's default).
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(i)
	return sorted[i] + frac*(sorted[i+1]-sorted[i])
}
