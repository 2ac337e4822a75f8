package profile

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// benchSpecs is a 20-column table like the ingestion benchmark's: 10
// numeric, 6 categorical, 2 bool, 2 timestamp.
var benchSpecs = func() []ColumnSpec {
	var specs []ColumnSpec
	for i := range 10 {
		specs = append(specs, ColumnSpec{"num" + strconv.Itoa(i), Numeric})
	}
	for i := range 6 {
		specs = append(specs, ColumnSpec{"cat" + strconv.Itoa(i), Categorical})
	}
	specs = append(specs, ColumnSpec{"flag0", Bool}, ColumnSpec{"flag1", Bool})
	specs = append(specs, ColumnSpec{"ts0", Timestamp}, ColumnSpec{"ts1", Timestamp})
	return specs
}()

// benchRows generates n rows for benchSpecs, with 1% nulls.
func benchRows(n int) ([][]string, [][]bool) {
	rng := rand.New(rand.NewPCG(11, 12))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	rows, nulls := make([][]string, n), make([][]bool, n)
	for r := range rows {
		row, null := make([]string, len(benchSpecs)), make([]bool, len(benchSpecs))
		for i, s := range benchSpecs {
			null[i] = rng.IntN(100) == 0
			switch s.Kind {
			case Numeric:
				row[i] = strconv.FormatFloat(rng.NormFloat64()*1000, 'f', 2, 64)
			case Categorical:
				// Half low-cardinality codes, half high-cardinality ids.
				if i%2 == 0 {
					row[i] = "code-" + strconv.Itoa(rng.IntN(40))
				} else {
					row[i] = "id-" + strconv.Itoa(rng.IntN(1_000_000))
				}
			case Bool:
				row[i] = strconv.FormatBool(rng.IntN(2) == 0)
			case Timestamp:
				row[i] = base.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))).Format(time.RFC3339)
			}
		}
		rows[r], nulls[r] = row, null
	}
	return rows, nulls
}

// parseRow is the baseline: reading each value as its kind and nothing else.
func parseRow(row []string, null []bool) (sink float64) {
	for i, s := range benchSpecs {
		if null[i] {
			continue
		}
		switch s.Kind {
		case Numeric:
			x, _ := strconv.ParseFloat(row[i], 64)
			sink += x
		case Timestamp:
			x, _ := ParseTimestamp(row[i])
			sink += x
		case Bool:
			if b, _ := ParseBool(row[i]); b {
				sink++
			}
		case Categorical:
			sink += float64(len(row[i]))
		}
	}
	return sink
}

var benchSink float64

// BenchmarkParseOnly is the baseline: parsing every value of a row (one op).
func BenchmarkParseOnly(b *testing.B) {
	rows, nulls := benchRows(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchSink += parseRow(rows[i%len(rows)], nulls[i%len(rows)])
		i++
	}
}

// BenchmarkProfiler profiles a 20-column row per op and reports its time as
// a multiple of parsing the same rows alone ("x-parse"), measured in the
// same run.
func BenchmarkProfiler(b *testing.B) {
	rows, nulls := benchRows(4096)
	p := NewProfiler(benchSpecs)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Observe(rows[i%len(rows)], nulls[i%len(rows)])
		i++
	}
	profiled := b.Elapsed()

	start := time.Now()
	for j := range i {
		benchSink += parseRow(rows[j%len(rows)], nulls[j%len(rows)])
	}
	parsed := time.Since(start)
	b.ReportMetric(float64(profiled.Nanoseconds())/float64(i)/float64(len(benchSpecs)), "ns/value")
	b.ReportMetric(float64(profiled)/float64(max(parsed, 1)), "x-parse")
}
