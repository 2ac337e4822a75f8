package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rankError is the KLL bound (k=200) the profile's quantiles carry.
const rankError = 0.0165

var testSpecs = []ColumnSpec{
	{"amount", Numeric},
	{"age", Numeric},
	{"city", Categorical},
	{"user", Categorical},
	{"active", Bool},
	{"signup", Timestamp},
}

// table is generated rows plus the exact numbers behind them.
type table struct {
	rows   [][]string
	nulls  [][]bool
	floats map[string][]float64 // valid values of numeric and timestamp columns
}

func genTable(n int, seed uint64, shift float64) *table {
	rng := rand.New(rand.NewPCG(seed, 99))
	zipf := rand.NewZipf(rng, 1.3, 1, 49)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	t := &table{floats: map[string][]float64{}}
	for i := range n {
		row := make([]string, len(testSpecs))
		null := make([]bool, len(testSpecs))
		amount := 500 + 100*(rng.NormFloat64()+shift)
		switch {
		case i%100 == 7:
			null[0] = true
		case i%1000 == 3:
			row[0] = "n/a"
		default:
			row[0] = strconv.FormatFloat(amount, 'f', -1, 64)
			t.floats["amount"] = append(t.floats["amount"], amount)
		}
		age := 18 + rng.IntN(73)
		row[1] = strconv.Itoa(age)
		t.floats["age"] = append(t.floats["age"], float64(age))
		row[2] = "city-" + strconv.FormatUint(zipf.Uint64(), 10)
		row[3] = "u" + strconv.Itoa(rng.IntN(150_000))
		row[4] = strconv.FormatBool(rng.Float64() < 0.3)
		ts := base.Add(time.Duration(rng.Int64N(int64(90 * 24 * time.Hour))))
		row[5] = ts.Format(time.RFC3339)
		t.floats["signup"] = append(t.floats["signup"], float64(ts.Unix()))
		t.rows = append(t.rows, row)
		t.nulls = append(t.nulls, null)
	}
	return t
}

func (t *table) profile(from, to int) *Profile {
	p := NewProfiler(testSpecs)
	for i := from; i < to; i++ {
		p.Observe(t.rows[i], t.nulls[i])
	}
	return p.Profile()
}

// checkQuantiles asserts each listed quantile's true rank in data is within
// the sketch's rank error.
func checkQuantiles(t *testing.T, c *ColumnProfile, data []float64) {
	t.Helper()
	sorted := slices.Clone(data)
	slices.Sort(sorted)
	for _, l := range quantileLevels {
		v, ok := c.Quantiles[l.key]
		if !ok {
			t.Fatalf("%s: no %s", c.Name, l.key)
		}
		lo := float64(sort.SearchFloat64s(sorted, v)) / float64(len(sorted))
		hi := float64(sort.Search(len(sorted), func(i int) bool { return sorted[i] > v })) / float64(len(sorted))
		if l.q < lo-rankError || l.q > hi+rankError {
			t.Errorf("%s %s=%g has true rank [%.4f, %.4f]", c.Name, l.key, v, lo, hi)
		}
	}
}

func TestProfilerSmallTableIsExact(t *testing.T) {
	p := NewProfiler([]ColumnSpec{{"x", Numeric}, {"c", Categorical}, {"b", Bool}, {"t", Timestamp}})
	rows := [][]string{
		{"1", "a", "true", "2024-01-01T00:00:00Z"},
		{"2", "b", "no", "2024-01-02"},
		{"3", "a", "maybe", "yesterday"},
		{"4", "a", "1", "2024-01-01 12:00:00+02:00"},
		{"abc", "", "FALSE", ""},
		{"NaN", "c", "t", "2024-01-01T00:00:00.5Z"},
		{"+Inf", "a", "f", "2024-02-30"},
		{"", "", "", ""},
	}
	nulls := [][]bool{nil, nil, nil, nil, nil, nil, nil, {true, true, true, true}}
	for i, r := range rows {
		p.Observe(r, nulls[i])
	}
	prof := p.Profile()
	if prof.Rows != 8 {
		t.Fatalf("rows %d", prof.Rows)
	}
	x := prof.Column("x")
	if x.Count != 4 || x.Nulls != 1 || x.Invalid != 3 || x.Distinct != 4 {
		t.Errorf("x counts %d/%d/%d distinct %d, want 4/1/3 distinct 4", x.Count, x.Nulls, x.Invalid, x.Distinct)
	}
	if *x.Min != 1 || *x.Max != 4 || *x.Mean != 2.5 || math.Abs(*x.Std-math.Sqrt(5.0/3)) > 1e-15 {
		t.Errorf("x min/max/mean/std %g/%g/%g/%g", *x.Min, *x.Max, *x.Mean, *x.Std)
	}
	if x.Quantiles["p50"] != 2 || x.Quantiles["p01"] != 1 || x.Quantiles["p99"] != 4 {
		t.Errorf("x quantiles %v", x.Quantiles)
	}
	var total int64
	for _, b := range x.Histogram {
		total += b.Count
	}
	if len(x.Histogram) != HistogramBins || total != 4 || x.Histogram[0].Lower != 1 || x.Histogram[HistogramBins-1].Upper != 4 {
		t.Errorf("x histogram %+v", x.Histogram)
	}
	c := prof.Column("c")
	wantTop := []ValueCount{{"a", 4, 0}, {"", 1, 0}, {"b", 1, 0}, {"c", 1, 0}}
	if c.Count != 7 || c.Distinct != 4 || !slices.Equal(c.TopK, wantTop) || c.Min != nil {
		t.Errorf("c count %d distinct %d top %v", c.Count, c.Distinct, c.TopK)
	}
	b := prof.Column("b")
	if b.Count != 6 || b.Invalid != 1 || b.Distinct != 2 || !slices.Equal(b.TopK, []ValueCount{{"false", 3, 0}, {"true", 3, 0}}) {
		t.Errorf("b count %d invalid %d top %v", b.Count, b.Invalid, b.TopK)
	}
	ts := prof.Column("t")
	day := float64(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	if ts.Count != 4 || ts.Invalid != 3 || *ts.Min != day || *ts.Max != day+86400 {
		t.Errorf("t count %d invalid %d min %v max %v", ts.Count, ts.Invalid, *ts.Min, *ts.Max)
	}
	if ts.Quantiles["p50"] != day+0.5 {
		t.Errorf("t median %f, want %f", ts.Quantiles["p50"], day+0.5)
	}
	if p.Observe([]string{"1", "a", "true", "2024-01-01"}, nil); prof.Rows != 8 || p.Profile().Rows != 9 {
		t.Error("a profile should be a snapshot")
	}
}

func TestProfileOfManyRows(t *testing.T) {
	tb := genTable(200_000, 1, 0)
	prof := tb.profile(0, len(tb.rows))
	amount := prof.Column("amount")
	if amount.Nulls != 2000 || amount.Invalid != 200 || amount.Count != int64(len(tb.floats["amount"])) {
		t.Errorf("amount counts %d/%d/%d", amount.Count, amount.Nulls, amount.Invalid)
	}
	for _, name := range []string{"amount", "age", "signup"} {
		c, data := prof.Column(name), tb.floats[name]
		checkQuantiles(t, c, data)
		// Each histogram count is a difference of two ranks.
		var total int64
		for i, b := range c.Histogram {
			exact := 0
			for _, x := range data {
				if (x > b.Lower || i == 0 && x == b.Lower) && x <= b.Upper {
					exact++
				}
			}
			if math.Abs(float64(b.Count-int64(exact))) > 2*rankError*float64(len(data)) {
				t.Errorf("%s bin %d [%g, %g]: %d, exact %d", name, i, b.Lower, b.Upper, b.Count, exact)
			}
			total += b.Count
		}
		if total != c.Count {
			t.Errorf("%s histogram sums to %d, count %d", name, total, c.Count)
		}
		distinct := map[float64]bool{}
		for _, x := range data {
			distinct[x] = true
		}
		if rel := math.Abs(float64(c.Distinct)-float64(len(distinct))) / float64(len(distinct)); rel > 0.02 {
			t.Errorf("%s distinct %d, exact %d", name, c.Distinct, len(distinct))
		}
	}
	users := map[string]bool{}
	for _, r := range tb.rows {
		users[r[3]] = true
	}
	if u := prof.Column("user"); math.Abs(float64(u.Distinct-int64(len(users))))/float64(len(users)) > 0.02 {
		t.Errorf("user distinct %d, exact %d", u.Distinct, len(users))
	}
	if city := prof.Column("city"); city.Distinct != 50 || city.TopK[0].Value != "city-0" || city.TopK[0].Error != 0 {
		t.Errorf("city distinct %d top %v", city.Distinct, city.TopK[:3])
	}
}

func TestMergeEqualsProfileOfUnion(t *testing.T) {
	tb := genTable(120_000, 2, 0)
	whole := tb.profile(0, len(tb.rows))
	merged := tb.profile(0, 30_000)
	for _, part := range []*Profile{tb.profile(30_000, 100_000), tb.profile(100_000, 120_000)} {
		if err := merged.Merge(part); err != nil {
			t.Fatal(err)
		}
	}
	if merged.Rows != whole.Rows {
		t.Errorf("rows %d, want %d", merged.Rows, whole.Rows)
	}
	for _, w := range whole.Columns {
		m := merged.Column(w.Name)
		if m.Count != w.Count || m.Nulls != w.Nulls || m.Invalid != w.Invalid {
			t.Errorf("%s: counts %d/%d/%d, want %d/%d/%d", w.Name, m.Count, m.Nulls, m.Invalid, w.Count, w.Nulls, w.Invalid)
		}
		// HyperLogLog merges exactly, so the estimates are identical.
		if m.Distinct != w.Distinct {
			t.Errorf("%s: distinct %d, want %d", w.Name, m.Distinct, w.Distinct)
		}
		if data, ok := tb.floats[w.Name]; ok {
			if *m.Min != *w.Min || *m.Max != *w.Max {
				t.Errorf("%s: min/max %g/%g, want %g/%g", w.Name, *m.Min, *m.Max, *w.Min, *w.Max)
			}
			if math.Abs(*m.Mean-*w.Mean) > 1e-12*math.Abs(*w.Mean) || math.Abs(*m.Std-*w.Std) > 1e-9**w.Std {
				t.Errorf("%s: mean/std %g/%g, want %g/%g", w.Name, *m.Mean, *m.Std, *w.Mean, *w.Std)
			}
			checkQuantiles(t, m, data)
		}
	}
	// Below the top-k capacity, counts are exact on both sides.
	for _, name := range []string{"city", "active"} {
		if m, w := merged.Column(name), whole.Column(name); !slices.Equal(m.TopK, w.TopK) {
			t.Errorf("%s top-k %v, want %v", name, m.TopK, w.TopK)
		}
	}
}

func TestMergeRejectsOtherColumns(t *testing.T) {
	a := NewProfiler([]ColumnSpec{{"x", Numeric}, {"y", Categorical}}).Profile()
	before, _ := json.Marshal(a)
	for _, tc := range []struct {
		other []ColumnSpec
		want  []string
	}{
		{[]ColumnSpec{{"x", Numeric}}, []string{`"y" missing from the other`}},
		{[]ColumnSpec{{"x", Numeric}, {"y", Categorical}, {"z", Bool}}, []string{`"z" missing from this`}},
		{[]ColumnSpec{{"y", Categorical}, {"x", Timestamp}}, []string{`"x" is numeric here and timestamp`}},
	} {
		err := a.Merge(NewProfiler(tc.other).Profile())
		if err == nil {
			t.Fatalf("merge with %v succeeded", tc.other)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}
	// Columns in another order are fine.
	if err := a.Merge(NewProfiler([]ColumnSpec{{"y", Categorical}, {"x", Numeric}}).Profile()); err != nil {
		t.Fatal(err)
	}
	after, _ := json.Marshal(a)
	if !bytes.Equal(before, after) {
		t.Error("failed merges or an empty merge changed the profile")
	}
	stripped := NewProfiler([]ColumnSpec{{"x", Numeric}, {"y", Categorical}}).Profile()
	stripped.Columns[0].Sketches.Quantiles = nil
	if err := a.Merge(stripped); err == nil || !strings.Contains(err.Error(), "no quantile sketch") {
		t.Errorf("merging a profile without sketches: %v", err)
	}
}

func TestJSONRoundTripIsExact(t *testing.T) {
	tb := genTable(50_000, 3, 0)
	a, b := tb.profile(0, 25_000), tb.profile(25_000, 50_000)
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("profile of %d rows x %d columns: %d bytes of JSON", a.Rows, len(a.Columns), len(js))
	roundTrip := func(p *Profile) *Profile {
		t.Helper()
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var d Profile
		if err := json.Unmarshal(js, &d); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(&d)
		if !bytes.Equal(js, again) {
			t.Fatal("JSON changed in a round trip")
		}
		return &d
	}
	ra, rb := roundTrip(a), roundTrip(b)
	// The decoded sketch state is the saved state: merges agree byte for byte.
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if err := ra.Merge(rb); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(a)
	got, _ := json.Marshal(ra)
	if !bytes.Equal(want, got) {
		t.Error("merging decoded profiles differs from merging the originals")
	}
	summary, _ := json.Marshal(a.Summary())
	t.Logf("its summary: %d bytes", len(summary))
	if bytes.Contains(summary, []byte("sketches")) || len(summary) > len(js)/5 {
		t.Errorf("summary has sketches or is %d bytes", len(summary))
	}
	if _, err := PSI(a.Summary().Column("amount"), a.Column("amount"), 10); err == nil {
		t.Error("PSI from a summary without sketches succeeded")
	}
	var bad Profile
	if err := json.Unmarshal([]byte(`{"columns":[{"name":"x","kind":"numeric","sketches":{"quantiles":"AAAA"}}]}`), &bad); err == nil {
		t.Error("a corrupt sketch decoded")
	}
}

func TestObservePanicsOnRaggedRow(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "2 values") {
			t.Errorf("panic %v", r)
		}
	}()
	NewProfiler(testSpecs).Observe([]string{"1", "2"}, nil)
}

func TestObserveDoesNotAllocate(t *testing.T) {
	rows, nulls := benchRows(512)
	p := NewProfiler(benchSpecs)
	for range 50 {
		for i := range rows {
			p.Observe(rows[i], nulls[i])
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(20_000, func() {
		p.Observe(rows[i%len(rows)], nulls[i%len(rows)])
		i++
	})
	// Sketch levels and map buckets still grow now and then; values never allocate.
	if allocs > 0.01 {
		t.Errorf("%.4f allocations per row of %d columns", allocs, len(benchSpecs))
	}
}

func TestParseTimestamp(t *testing.T) {
	for _, s := range []string{
		"2024-02-29", "1969-12-31T23:59:59Z", "2024-06-01T12:34:56.789+02:00", "2024-06-01 12:34:56",
		"2024-06-01t12:34:56.123456789z", "2000-01-01T00:00:00-05:30", "2024-06-01T12:34:56.1234567Z",
	} {
		got, ok := ParseTimestamp(s)
		layout := time.RFC3339Nano
		norm := strings.NewReplacer(" ", "T", "t", "T", "z", "Z").Replace(s)
		if len(norm) == 10 {
			norm += "T00:00:00Z"
		} else if !strings.ContainsAny(norm[19:], "Z+-") {
			norm += "Z"
		}
		want, err := time.Parse(layout, norm)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || got != float64(want.Unix())+float64(want.Nanosecond())/1e9 {
			t.Errorf("ParseTimestamp(%q) = %f, %v; want %f", s, got, ok, float64(want.UnixNano())/1e9)
		}
	}
	for _, s := range []string{
		"", "2024", "2023-02-29", "2024-13-01", "2024-00-10", "2024-01-01T24:00:00", "2024-01-01T12:60:00",
		"2024-01-01T12:00", "2024-01-01T12:00:00.", "2024-01-01T12:00:00.1234567891Z", "2024-01-01T12:00:00+2:00",
		"2024-01-01X12:00:00", "2024-01-01T12:00:00 UTC", "20x4-01-01", "1700000000",
	} {
		if _, ok := ParseTimestamp(s); ok {
			t.Errorf("ParseTimestamp(%q) accepted", s)
		}
	}
}

// The plain-decimal fast path must give strconv's value bit for bit.
func TestParseNumberMatchesStrconv(t *testing.T) {
	cases := []string{"", ".", "-", "+", "-0", "+0", "-0.00", "5.", ".5", "-.5", "1.2.3", "1e5", "NaN", "Inf", "-Inf", "0x1p-2", "1_000",
		"123456789012345", "1234567890123456", "0.000000000000001", "-99999.99999", "9007199254740993", "1.7976931348623157e308", "1e309"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		cases = append(cases, strconv.FormatFloat(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(12))), 'f', rng.IntN(8), 64))
	}
	for _, c := range cases {
		want, err := strconv.ParseFloat(c, 64)
		wantOK := err == nil && !math.IsNaN(want) && !math.IsInf(want, 0)
		got, ok := parseNumber(c)
		if ok != wantOK || ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("parseNumber(%q) = %v, %v; strconv gives %v, %v", c, got, ok, want, err)
		}
	}
}

// ParseTimestamp's calendar arithmetic must give time.Time's answer for
// every day of the four-digit years, and refuse the days that do not exist.
func TestParseTimestampCalendar(t *testing.T) {
	for _, years := range [][2]int{{0, 4}, {1896, 2104}, {9996, 9999}} { // leap rules at their edges
		for day := time.Date(years[0], 1, 1, 0, 0, 0, 0, time.UTC); day.Year() <= years[1]; day = day.AddDate(0, 0, 1) {
			v := day.Format("2006-01-02") + "T13:14:15.5-03:30"
			got, ok := ParseTimestamp(v)
			want := float64(day.Add(16*time.Hour+44*time.Minute+15*time.Second).Unix()) + 0.5
			if !ok || got != want {
				t.Fatalf("ParseTimestamp(%q) = %v, %v; want %v", v, got, ok, want)
			}
		}
	}
	for _, v := range []string{"2023-02-29", "1900-02-29", "2024-04-31", "2024-06-31", "2024-09-31", "2024-11-31", "2024-01-32"} {
		if _, ok := ParseTimestamp(v); ok {
			t.Errorf("ParseTimestamp(%q) accepted a day that does not exist", v)
		}
	}
}

// TestObserveValuesMatchesObserve profiles each column of a table a batch
// of values at a time: every count, the extremes, the distinct estimate and
// the top values are those of profiling row by row, the mean and standard
// deviation equal up to rounding (they are summed in another order), and
// the quantiles within the sketch's error.
func TestObserveValuesMatchesObserve(t *testing.T) {
	tb := genTable(50_000, 3, 0)
	rows := NewProfiler(testSpecs)
	for i, r := range tb.rows {
		rows.Observe(r, tb.nulls[i])
	}
	want := rows.Profile()
	for j, spec := range testSpecs {
		p := NewProfiler([]ColumnSpec{spec})
		var batch []string
		var nulls int64
		for i, r := range tb.rows {
			if tb.nulls[i][j] {
				nulls++
			} else {
				batch = append(batch, r[j])
			}
			if len(batch) == 300 || i == len(tb.rows)-1 {
				p.ObserveValues(0, batch)
				batch = batch[:0]
			}
		}
		p.ObserveN([]string{""}, []bool{true}, nulls)
		got, w := p.Profile().Columns[0], want.Columns[j]
		if got.Count != w.Count || got.Nulls != w.Nulls || got.Invalid != w.Invalid || got.Distinct != w.Distinct ||
			!reflect.DeepEqual([]*float64{got.Min, got.Max}, []*float64{w.Min, w.Max}) ||
			!closeTo(got.Mean, w.Mean) || !closeTo(got.Std, w.Std) || !reflect.DeepEqual(got.TopK, w.TopK) {
			t.Errorf("%s: by values %+v\nby rows %+v", spec.Name, got, w)
		}
		if data := tb.floats[spec.Name]; data != nil {
			checkQuantiles(t, got, data)
		}
	}
}

// closeTo reports whether a and b are both nil or equal to 12 digits.
func closeTo(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) <= 1e-12*max(math.Abs(*a), math.Abs(*b))
}
