package report

import (
	"cmp"
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gyreml/gyre/pkg/evaluate/explain"
	"github.com/gyreml/gyre/pkg/evaluate/fairness"
	"github.com/gyreml/gyre/pkg/evaluate/metrics"
)

// maxCurvePoints bounds the points drawn per curve; a million-row holdout
// has up to a million thresholds, which would make the page megabytes.
const maxCurvePoints = 500

// maxFeatures bounds the bars of an importance chart.
const maxFeatures = 20

// plot is one SVG chart: a drawing area inside margins, mapping data
// coordinates [x0, x1] x [y0, y1] to pixels. Styling lives in the page's CSS.
type plot struct {
	b                        strings.Builder
	w, h                     float64
	left, right, top, bottom float64
	x0, x1, y0, y1           float64
	label                    string
}

func newPlot(w, h float64, x0, x1, y0, y1 float64) *plot {
	return &plot{w: w, h: h, left: 56, right: 16, top: 32, bottom: 48, x0: x0, x1: x1, y0: y0, y1: y1}
}

func (p *plot) px(x float64) float64 {
	return p.left + (x-p.x0)/(p.x1-p.x0)*(p.w-p.left-p.right)
}

func (p *plot) py(y float64) float64 {
	return p.h - p.bottom - (y-p.y0)/(p.y1-p.y0)*(p.h-p.top-p.bottom)
}

// f formats a pixel coordinate; a tenth of a pixel is finer than any screen.
func f(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func (p *plot) text(x, y float64, anchor, class, s string) {
	fmt.Fprintf(&p.b, `<text x="%s" y="%s" text-anchor="%s" class="%s">%s</text>`, f(x), f(y), anchor, class, html.EscapeString(s))
}

func (p *plot) line(x1, y1, x2, y2 float64, class string) {
	fmt.Fprintf(&p.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="%s"/>`, f(x1), f(y1), f(x2), f(y2), class)
}

func (p *plot) rect(x, y, w, h float64, class, tip string) {
	fmt.Fprintf(&p.b, `<rect x="%s" y="%s" width="%s" height="%s" class="%s">`, f(x), f(y), f(math.Max(w, 0)), f(math.Max(h, 0)), class)
	p.tip(tip)
	p.b.WriteString(`</rect>`)
}

func (p *plot) circle(cx, cy, r float64, class, tip string) {
	fmt.Fprintf(&p.b, `<circle cx="%s" cy="%s" r="%s" class="%s">`, f(cx), f(cy), f(r), class)
	p.tip(tip)
	p.b.WriteString(`</circle>`)
}

// tip is the hover text of the enclosing shape.
func (p *plot) tip(s string) {
	if s != "" {
		fmt.Fprintf(&p.b, `<title>%s</title>`, html.EscapeString(s))
	}
}

// polyline draws data points, skipping any that are not finite.
func (p *plot) polyline(xs, ys []float64, class string) {
	p.b.WriteString(`<polyline class="` + class + `" points="`)
	for i := range xs {
		if !finite(xs[i]) || !finite(ys[i]) {
			continue
		}
		p.b.WriteString(f(p.px(xs[i])) + "," + f(p.py(ys[i])) + " ")
	}
	p.b.WriteString(`"/>`)
}

// axes draws the frame, grid, ticks, axis labels and title.
func (p *plot) axes(title, xlabel, ylabel string, xticks, yticks []float64) {
	p.label = title
	for _, t := range xticks {
		x := p.px(t)
		p.line(x, p.top, x, p.h-p.bottom, "grid")
		p.line(x, p.h-p.bottom, x, p.h-p.bottom+4, "axis")
		p.text(x, p.h-p.bottom+16, "middle", "tick", tickLabel(t))
	}
	for _, t := range yticks {
		y := p.py(t)
		p.line(p.left, y, p.w-p.right, y, "grid")
		p.line(p.left-4, y, p.left, y, "axis")
		p.text(p.left-7, y+4, "end", "tick", tickLabel(t))
	}
	p.line(p.left, p.h-p.bottom, p.w-p.right, p.h-p.bottom, "axis")
	p.line(p.left, p.top, p.left, p.h-p.bottom, "axis")
	p.text((p.left+p.w-p.right)/2, p.h-10, "middle", "label", xlabel)
	if ylabel != "" {
		cy := (p.top + p.h - p.bottom) / 2
		fmt.Fprintf(&p.b, `<text transform="translate(14 %s) rotate(-90)" text-anchor="middle" class="label">%s</text>`, f(cy), html.EscapeString(ylabel))
	}
	p.text(p.w/2, 18, "middle", "title", title)
}

func (p *plot) html() template.HTML {
	// Every piece of text above went through html.EscapeString and every
	// attribute is a number or a class constant, so the markup is safe.
	return template.HTML(fmt.Sprintf(`<svg class="chart" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">%s</svg>`,
		f(p.w), f(p.h), f(p.w), f(p.h), html.EscapeString(p.label), p.b.String()))
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func tickLabel(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

var unitTicks = []float64{0, 0.2, 0.4, 0.6, 0.8, 1}

// niceRange widens [lo, hi] to multiples of a 1-2-5 step, about five ticks.
func niceRange(lo, hi float64) (float64, float64, []float64) {
	if !finite(lo) || !finite(hi) || hi <= lo {
		lo, hi = math.Min(lo, 0), math.Max(hi, lo+1)
		if !finite(lo) || !finite(hi) {
			lo, hi = 0, 1
		}
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	for t := lo; t <= hi+step/2; t += step {
		ticks = append(ticks, math.Round(t/step)*step)
	}
	return lo, hi, ticks
}

// downsample keeps at most maxCurvePoints indexes of n, first and last included.
func downsample(n int) []int {
	if n <= maxCurvePoints {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := make([]int, maxCurvePoints)
	for i := range idx {
		idx[i] = i * (n - 1) / (maxCurvePoints - 1)
	}
	return idx
}

func rocChart(b *metrics.Binary) template.HTML {
	p := newPlot(380, 360, 0, 1, 0, 1)
	p.axes("ROC curve · AUC "+num(b.ROCAUC), "False positive rate", "True positive rate", unitTicks, unitTicks)
	p.line(p.px(0), p.py(0), p.px(1), p.py(1), "ref")
	var xs, ys []float64
	for _, i := range downsample(len(b.ROC)) {
		xs, ys = append(xs, b.ROC[i].FPR), append(ys, b.ROC[i].TPR)
	}
	p.polyline(xs, ys, "curve")
	return p.html()
}

func prChart(b *metrics.Binary) template.HTML {
	p := newPlot(380, 360, 0, 1, 0, 1)
	p.axes("Precision-recall · AP "+num(b.PRAUC), "Recall", "Precision", unitTicks, unitTicks)
	// A classifier that predicts at random has precision equal to the prevalence.
	total := b.Confusion[0][0] + b.Confusion[0][1] + b.Confusion[1][0] + b.Confusion[1][1]
	if total > 0 {
		prev := float64(b.Confusion[1][0]+b.Confusion[1][1]) / float64(total)
		p.line(p.px(0), p.py(prev), p.px(1), p.py(prev), "ref")
		p.text(p.px(1)-4, p.py(prev)-5, "end", "note", "prevalence "+num(prev))
	}
	var xs, ys []float64
	for _, i := range downsample(len(b.PR)) {
		xs, ys = append(xs, b.PR[i].Recall), append(ys, b.PR[i].Precision)
	}
	p.polyline(xs, ys, "curve")
	return p.html()
}

func calibrationChart(b *metrics.Binary) template.HTML {
	p := newPlot(380, 360, 0, 1, 0, 1)
	p.axes("Calibration · ECE "+num(b.ECE), "Mean predicted probability", "Fraction positive", unitTicks, unitTicks)
	p.line(p.px(0), p.py(0), p.px(1), p.py(1), "ref")
	var most int64
	for _, c := range b.Calibration {
		most = max(most, c.Count)
	}
	if most == 0 {
		return p.html()
	}
	// Counts as faint bars along the bottom fifth: where the predictions are.
	for _, c := range b.Calibration {
		hgt := 0.2 * float64(c.Count) / float64(most)
		p.rect(p.px(c.Lower), p.py(hgt), p.px(c.Upper)-p.px(c.Lower), p.py(0)-p.py(hgt), "count",
			fmt.Sprintf("%s–%s: %d rows", num(c.Lower), num(c.Upper), c.Count))
	}
	var xs, ys []float64
	for _, c := range b.Calibration {
		xs, ys = append(xs, c.MeanPredicted), append(ys, c.FractionPositive)
	}
	p.polyline(xs, ys, "curve")
	for _, c := range b.Calibration {
		if !finite(c.MeanPredicted) || !finite(c.FractionPositive) {
			continue
		}
		r := 2.5 + 6*math.Sqrt(float64(c.Count)/float64(most))
		p.circle(p.px(c.MeanPredicted), p.py(c.FractionPositive), r, "dot",
			fmt.Sprintf("%s–%s: predicted %s, observed %s, %d rows", num(c.Lower), num(c.Upper), num(c.MeanPredicted), num(c.FractionPositive), c.Count))
	}
	return p.html()
}

// confusionChart shades each cell by its share of the true class's row, so
// the diagonal reads as per-class recall.
func confusionChart(labels []string, m [][]int64) template.HTML {
	n := len(m)
	cell := math.Max(28, math.Min(80, 480/float64(max(n, 1))))
	left, top := 120.0, 64.0
	p := &plot{w: math.Max(340, left+cell*float64(n)+16), h: top + cell*float64(n) + 16}
	p.label = "Confusion matrix"
	p.text(p.w/2, 18, "middle", "title", "Confusion matrix")
	p.text(left+cell*float64(n)/2, 40, "middle", "label", "predicted")
	p.text(left-8, top-8, "end", "label", "actual")
	for i := range n {
		var rowTotal int64
		for _, c := range m[i] {
			rowTotal += c
		}
		p.text(left-8, top+cell*(float64(i)+0.5)+4, "end", "tick", short(labels[i], 14))
		p.text(left+cell*(float64(i)+0.5), top-8, "middle", "tick", short(labels[i], int(cell/6)))
		for j := range n {
			c := m[i][j]
			share := 0.0
			if rowTotal > 0 {
				share = float64(c) / float64(rowTotal)
			}
			x, y := left+cell*float64(j), top+cell*float64(i)
			fmt.Fprintf(&p.b, `<rect x="%s" y="%s" width="%s" height="%s" class="cell" fill-opacity="%s">`,
				f(x), f(y), f(cell), f(cell), strconv.FormatFloat(0.06+0.94*share, 'f', 3, 64))
			p.tip(fmt.Sprintf("actual %s, predicted %s: %d (%s of the row)", labels[i], labels[j], c, pct(share)))
			p.b.WriteString(`</rect>`)
			class := "cellnum"
			if share > 0.5 {
				class = "cellnum light"
			}
			if cell >= 44 {
				p.text(x+cell/2, y+cell/2, "middle", class, strconv.FormatInt(c, 10))
				p.text(x+cell/2, y+cell/2+14, "middle", class+" small", pct(share))
			} else {
				p.text(x+cell/2, y+cell/2+4, "middle", class+" small", strconv.FormatInt(c, 10))
			}
		}
	}
	return p.html()
}

// short cuts a label to n runes; the full label stays in the table or tooltip.
func short(s string, n int) string {
	r := []rune(s)
	if n < 2 || len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// fairnessRatesChart draws selection rate, TPR and FPR side by side per group.
func fairnessRatesChart(r *fairness.Report) template.HTML {
	const groupWidth = 96
	w := math.Max(380, 56+16+groupWidth*float64(len(r.Groups)))
	p := newPlot(w, 336, 0, float64(len(r.Groups)), 0, 1)
	p.top, p.bottom = 48, 64
	p.axes("Rates by "+r.Attribute, r.Attribute, "Rate", nil, unitTicks)
	rates := []struct {
		name, class, undefined string
		get                    func(g fairness.Group) float64
	}{
		{"selection rate", "s1", "", func(g fairness.Group) float64 { return g.SelectionRate }},
		{"TPR", "s2", fairness.RateTPR, func(g fairness.Group) float64 { return g.TPR }},
		{"FPR", "s3", fairness.RateFPR, func(g fairness.Group) float64 { return g.FPR }},
	}
	for k, rt := range rates {
		x := p.left + float64(k)*110
		p.rect(x, 28, 10, 10, rt.class, "")
		p.text(x+14, 37, "start", "tick", rt.name)
	}
	slot := (p.px(1) - p.px(0))
	bar := slot * 0.8 / float64(len(rates))
	for i, g := range r.Groups {
		x0 := p.px(float64(i)) + slot*0.1
		for k, rt := range rates {
			x := x0 + float64(k)*bar
			if rt.undefined != "" && slices.Contains(g.Undefined, rt.undefined) {
				p.text(x+bar/2, p.py(0)-4, "middle", "note", "n/a")
				continue
			}
			v := rt.get(g)
			p.rect(x, p.py(v), bar-1, p.py(0)-p.py(v), rt.class, fmt.Sprintf("%s = %s: %s %s", r.Attribute, g.Value, rt.name, num(v)))
		}
		label := short(g.Value, 14)
		p.text(p.px(float64(i)+0.5), p.h-p.bottom+15, "middle", "tick", label)
		sub := "n=" + strconv.FormatInt(g.Size, 10)
		if g.TooSmall {
			sub += ", too small"
		}
		p.text(p.px(float64(i)+0.5), p.h-p.bottom+28, "middle", "note", sub)
	}
	return p.html()
}

// interval is one row of an interval chart: a value with its bootstrap
// interval; nil when it could not be computed.
type interval struct {
	Label string
	D     *fairness.Difference
}

// intervalChart draws each value as a point with its interval as whiskers,
// and a reference line at ref when it is inside the range.
func intervalChart(title, xlabel string, rows []interval, lo, hi float64, ref float64, ticks []float64) template.HTML {
	const rowHeight = 30
	p := newPlot(520, 56+48+rowHeight*float64(len(rows)), lo, hi, 0, float64(len(rows)))
	p.left = 210
	p.axes(title, xlabel, "", ticks, nil)
	if ref >= lo && ref <= hi {
		p.line(p.px(ref), p.top, p.px(ref), p.h-p.bottom, "ref")
	}
	for i, r := range rows {
		y := p.py(float64(len(rows)-i) - 0.5)
		p.text(p.left-8, y+4, "end", "tick", short(r.Label, 32))
		if r.D == nil || !finite(r.D.Value) {
			p.text(p.px(lo)+6, y+4, "start", "note", "not computed")
			continue
		}
		d := r.D
		if finite(d.Low) && finite(d.High) {
			p.line(p.px(d.Low), y, p.px(d.High), y, "whisker")
			p.line(p.px(d.Low), y-5, p.px(d.Low), y+5, "whisker")
			p.line(p.px(d.High), y-5, p.px(d.High), y+5, "whisker")
		}
		p.circle(p.px(d.Value), y, 4.5, "dot", fmt.Sprintf("%s: %s [%s, %s]", r.Label, num(d.Value), num(d.Low), num(d.High)))
	}
	return p.html()
}

func fairnessDifferencesChart(r *fairness.Report) template.HTML {
	rows := []interval{
		{"demographic parity difference", r.DemographicParityDifference},
		{"demographic parity ratio", r.DemographicParityRatio},
		{"equal opportunity difference", r.EqualOpportunityDifference},
		{"equalized odds difference", r.EqualizedOddsDifference},
	}
	title := fmt.Sprintf("Between-group differences, %s intervals", pct(r.Confidence))
	return intervalChart(title, "Value (differences: 0 is equal; ratio: 1 is equal)", rows, 0, 1, math.NaN(), unitTicks)
}

func championChart(c *Champion) template.HTML {
	lo, hi, ticks := niceRange(math.Min(0, c.Low), math.Max(0, c.High))
	rows := []interval{{"challenger − champion", &fairness.Difference{Value: c.Difference, Low: c.Low, High: c.High}}}
	return intervalChart("Difference in "+c.Primary, c.Primary+" difference (right of 0: challenger better)", rows, lo, hi, 0, ticks)
}

// importanceChart draws the maxFeatures most important inputs as bars with
// ±1 std whiskers. It reports how many inputs it left out.
func importanceChart(title string, imp []explain.Importance) (template.HTML, int) {
	top := slices.Clone(imp)
	slices.SortStableFunc(top, func(a, b explain.Importance) int { return cmp.Compare(b.Mean, a.Mean) })
	more := 0
	if len(top) > maxFeatures {
		more = len(top) - maxFeatures
		top = top[:maxFeatures]
	}
	lo, hi := 0.0, 0.0
	for _, m := range top {
		if finite(m.Mean) && finite(m.Std) {
			lo, hi = math.Min(lo, m.Mean-m.Std), math.Max(hi, m.Mean+m.Std)
		}
	}
	lo, hi, ticks := niceRange(lo, hi)
	const rowHeight = 22
	p := newPlot(560, 32+48+rowHeight*float64(len(top)), lo, hi, 0, float64(len(top)))
	p.left = 200
	p.axes(title, "Importance (bar: mean, whisker: ±1 std)", "", ticks, nil)
	for i, m := range top {
		y := p.py(float64(len(top)-i) - 0.5)
		p.text(p.left-8, y+4, "end", "tick", short(m.Feature, 28))
		if !finite(m.Mean) {
			continue
		}
		x0, x1 := p.px(0), p.px(m.Mean)
		p.rect(math.Min(x0, x1), y-rowHeight*0.35, math.Abs(x1-x0), rowHeight*0.7, "s1",
			fmt.Sprintf("%s: %s ± %s", m.Feature, num(m.Mean), num(m.Std)))
		if finite(m.Std) && m.Std > 0 {
			p.line(p.px(m.Mean-m.Std), y, p.px(m.Mean+m.Std), y, "whisker")
			p.line(p.px(m.Mean-m.Std), y-4, p.px(m.Mean-m.Std), y+4, "whisker")
			p.line(p.px(m.Mean+m.Std), y-4, p.px(m.Mean+m.Std), y+4, "whisker")
		}
	}
	return p.html(), more
}
