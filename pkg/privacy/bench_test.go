package privacy

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benignRows returns rows of 20 columns of everyday data with no personal
// data in it: ids, amounts, timestamps, categories, codes, short free text,
// and the look-alikes the detectors must reject cheaply (16-digit order
// numbers, dotted versions, dates, grouped amounts).
func benignRows(n int) (columns []string, rows [][]string) {
	columns = []string{
		"id", "order_number", "created_at", "ship_date", "amount", "quantity", "currency", "country",
		"status", "is_gift", "sku", "discount", "latitude", "longitude", "app_version", "session",
		"comment", "category", "score", "total",
	}
	r := rand.New(rand.NewPCG(21, 22))
	statuses := []string{"new", "paid", "shipped", "delivered", "returned"}
	comments := []string{
		"", "left at the door", "customer asked for gift wrap", "delivered 2 days late, refund 5.00",
		"box damaged in transit, replaced under ticket 48213", "ok",
	}
	for i := range n {
		ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(365*24*3600)) * time.Second)
		rows = append(rows, []string{
			fmt.Sprint(1000000 + i),
			randDigits(r, 16),
			ts.Format(time.RFC3339),
			ts.Format("2006-01-02"),
			fmt.Sprintf("%.2f", r.Float64()*500),
			fmt.Sprint(1 + r.IntN(9)),
			[]string{"USD", "EUR", "BRL"}[r.IntN(3)],
			[]string{"US", "DE", "BR", "GB", "FR"}[r.IntN(5)],
			statuses[r.IntN(len(statuses))],
			[]string{"true", "false"}[r.IntN(2)],
			fmt.Sprintf("SKU-%05d", r.IntN(100000)),
			fmt.Sprintf("%.1f%%", r.Float64()*30),
			fmt.Sprintf("%.6f", r.Float64()*180-90),
			fmt.Sprintf("%.6f", r.Float64()*360-180),
			fmt.Sprintf("%d.%d.%d", r.IntN(5), r.IntN(20), r.IntN(100)),
			fmt.Sprintf("%016x", r.Uint64()),
			comments[r.IntN(len(comments))],
			[]string{"books", "garden", "toys", "electronics"}[r.IntN(4)],
			fmt.Sprintf("%.4f", r.Float64()),
			fmt.Sprintf("%d %03d.%02d", 1+r.IntN(99), r.IntN(1000), r.IntN(100)),
		})
	}
	return columns, rows
}

// BenchmarkScannerObserve compares Scanner.Observe with every detector on
// to two baselines over the same rows, in the same run: reading every byte
// of the values, and encoding/csv parsing them. The three alternate every
// few hundred rows so that a busy machine slows them alike.
func BenchmarkScannerObserve(b *testing.B) {
	const n, chunk = 20000, 500
	columns, rows := benignRows(n)
	var chunks [][]byte
	for c := 0; c < n; c += chunk {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.WriteAll(rows[c : c+chunk]); err != nil {
			b.Fatal(err)
		}
		chunks = append(chunks, buf.Bytes())
	}
	var baseline, csvRead, scan time.Duration
	sink := 0
	for b.Loop() {
		s, err := NewScanner(columns, Config{Detect: Detectors})
		if err != nil {
			b.Fatal(err)
		}
		for c := 0; c < n; c += chunk {
			start := time.Now()
			for _, row := range rows[c : c+chunk] {
				for _, v := range row {
					for i := 0; i < len(v); i++ {
						sink += int(v[i])
					}
				}
			}
			baseline += time.Since(start)

			start = time.Now()
			r := csv.NewReader(bytes.NewReader(chunks[c/chunk]))
			r.ReuseRecord = true
			for {
				rec, err := r.Read()
				if err != nil {
					break
				}
				sink += len(rec)
			}
			csvRead += time.Since(start)

			start = time.Now()
			for i, row := range rows[c : c+chunk] {
				s.Observe(int64(c+i+1), row, nil)
			}
			scan += time.Since(start)
		}
		for _, f := range s.Findings() {
			if f.Flagged {
				b.Fatalf("benign data flagged: %+v", f)
			}
		}
	}
	if sink == 0 {
		b.Fatal("baseline read nothing")
	}
	perRow := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*n) }
	b.ReportMetric(perRow(baseline), "baseline-ns/row")
	b.ReportMetric(perRow(scan), "scan-ns/row")
	b.ReportMetric(perRow(csvRead), "csv-ns/row")
	b.ReportMetric(perRow(scan)/perRow(baseline), "scan/baseline")
	b.ReportMetric(perRow(scan)/perRow(csvRead), "scan/csv")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkScannerObserveAllocs shows that benign values cost no allocation.
func BenchmarkScannerObserveAllocs(b *testing.B) {
	columns, rows := benignRows(1000)
	s, err := NewScanner(columns, Config{Detect: Detectors})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Observe(int64(i), rows[i%len(rows)], nil)
		i++
	}
}

// BenchmarkKAnonymityObserveHashColumns counts rows of three
// quasi-identifiers with 130,000 classes between them (zip3 x birth year x
// sex), 512 rows an op: the class table is then larger than the cache, as
// in the ingestion benchmark.
func BenchmarkKAnonymityObserveHashColumns(b *testing.B) {
	k, err := NewKAnonymity([]string{"zip3", "birth_year", "sex"}, []string{"zip3", "birth_year", "sex"})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	const rows, batch = 1 << 20, 512
	hashes, nulls := make([][]uint64, 3), make([][]bool, 3)
	for q, distinct := range []int{1000, 65, 2} {
		hashes[q], nulls[q] = make([]uint64, rows), make([]bool, rows)
		for i := range hashes[q] {
			hashes[q][i] = mix64(uint64(rng.IntN(distinct)))
		}
	}
	i := 0
	for b.Loop() {
		k.ObserveHashColumns([][]uint64{hashes[0][i : i+batch], hashes[1][i : i+batch], hashes[2][i : i+batch]},
			[][]bool{nulls[0][i : i+batch], nulls[1][i : i+batch], nulls[2][i : i+batch]})
		i = (i + batch) & (rows - 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/batch, "ns/row")
	b.ReportMetric(0, "ns/op")
}
