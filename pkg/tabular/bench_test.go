package tabular

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchCSV is 1e5 rows of 20 mixed columns: ints, floats, bools,
// timestamps, categories, free text (some quoted) and nulls.
var benchCSV = sync.OnceValue(func() []byte { return genBenchCSV(true) })

// benchPlainCSV is the same without quoted fields: every line plain.
var benchPlainCSV = sync.OnceValue(func() []byte { return genBenchCSV(false) })

func genBenchCSV(quoted bool) []byte {
	const rows, groups = 100_000, 4
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for g := range groups {
		if g > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "id%d,amount%d,active%d,created%d,country%d", g, g, g, g, g)
	}
	b.WriteByte('\n')
	countries := []string{"BR", "PT", "US", "DE", "IN"}
	for i := range rows {
		for g := range groups {
			if g > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d,", i*groups+g)
			if r.IntN(20) > 0 {
				fmt.Fprintf(&b, "%.2f", r.Float64()*10000)
			}
			fmt.Fprintf(&b, ",%t,", r.IntN(2) == 0)
			b.WriteString(time.Unix(1.7e9+int64(r.IntN(1e7)), 0).UTC().Format(time.RFC3339))
			b.WriteByte(',')
			if g == 3 && quoted {
				fmt.Fprintf(&b, "\"%s, note %d\"", countries[r.IntN(len(countries))], r.IntN(1000))
			} else {
				b.WriteString(countries[r.IntN(len(countries))])
			}
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkCSVReader compares the reader with a bare encoding/csv read of
// the same bytes in the same run: ratio is the reader's throughput over the
// bare read's.
func BenchmarkCSVReader(b *testing.B) {
	data := benchCSV()
	var ours, bare time.Duration
	for b.Loop() {
		start := time.Now()
		if n := readTabular(b, data); n != 100_000 {
			b.Fatalf("read %d rows", n)
		}
		ours += time.Since(start)

		start = time.Now()
		if n := readEncodingCSV(b, data); n != 100_000 {
			b.Fatalf("encoding/csv read %d rows", n)
		}
		bare += time.Since(start)
	}
	mb := float64(len(data)) * float64(b.N) / 1e6
	b.ReportMetric(mb/ours.Seconds(), "MB/s")
	b.ReportMetric(mb/bare.Seconds(), "bare-MB/s")
	b.ReportMetric(bare.Seconds()/ours.Seconds(), "ratio")
}

// BenchmarkReadBatch compares ReadBatch then WriteBatch (the canonical
// form, as ingestion spools it) with Next then WriteRecord, and with a bare
// encoding/csv read of the same bytes in the same run, on files of plain
// lines (split a block at a time), CRLF line ends (the same), and quoted
// fields in every line or in a few (those lines go through Next):
// next-ratio is ReadBatch's speed over Next's.
func BenchmarkReadBatch(b *testing.B) {
	plain := benchPlainCSV()
	some := benchCSV() // a quoted field in the last group of columns of every line
	fewQuoted := bytes.Clone(plain)
	for i, lines := 0, 0; i < len(fewQuoted); i++ {
		if fewQuoted[i] == '\n' {
			if lines++; lines%10 == 0 && i+1 < len(fewQuoted) && fewQuoted[i+1] != ',' {
				fewQuoted = append(fewQuoted[:i+1], append([]byte{'"'}, fewQuoted[i+1:]...)...)
				j := i + 2 + bytes.IndexByte(fewQuoted[i+2:], ',')
				fewQuoted = append(fewQuoted[:j], append([]byte{'"'}, fewQuoted[j:]...)...)
			}
		}
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"plain", plain},
		{"crlf", bytes.ReplaceAll(plain, []byte("\n"), []byte("\r\n"))},
		{"quoted-every-line", some},
		{"quoted-every-10th-line", fewQuoted},
	} {
		b.Run(c.name, func(b *testing.B) {
			var batches, records, bare time.Duration
			for b.Loop() {
				start := time.Now()
				if n := readBatches(b, c.data); n != 100_000 {
					b.Fatalf("read %d rows", n)
				}
				batches += time.Since(start)

				start = time.Now()
				readAndWriteRecords(b, c.data)
				records += time.Since(start)

				start = time.Now()
				readEncodingCSV(b, c.data)
				bare += time.Since(start)
			}
			mb := float64(len(c.data)) * float64(b.N) / 1e6
			b.ReportMetric(mb/batches.Seconds(), "MB/s")
			b.ReportMetric(mb/records.Seconds(), "next-MB/s")
			b.ReportMetric(mb/bare.Seconds(), "bare-MB/s")
			b.ReportMetric(records.Seconds()/batches.Seconds(), "next-ratio")
			b.ReportMetric(bare.Seconds()/batches.Seconds(), "ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// readBatches reads data with ReadBatch, writes its canonical form with
// WriteBatch, and returns the rows read.
func readBatches(b *testing.B, data []byte) int {
	r, err := NewReader(bytes.NewReader(data), CSV, Options{})
	if err != nil {
		b.Fatal(err)
	}
	w := NewCSVWriter(io.Discard, r.Header())
	batch, n := NewBatch(len(r.Header()), 512), 0
	for {
		err := ReadBatch(r, batch)
		if err == io.EOF {
			return n
		} else if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteBatch(batch); err != nil {
			b.Fatal(err)
		}
		n += batch.Len
	}
}

// readAndWriteRecords reads data with Next and writes its canonical form with
// WriteRecord, as ingestion did before batches.
func readAndWriteRecords(b *testing.B, data []byte) {
	r, err := NewReader(bytes.NewReader(data), CSV, Options{})
	if err != nil {
		b.Fatal(err)
	}
	w := NewCSVWriter(io.Discard, r.Header())
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return
		} else if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func readTabular(b *testing.B, data []byte) int {
	r, err := NewReader(bytes.NewReader(data), CSV, Options{})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
}

func readEncodingCSV(b *testing.B, data []byte) int {
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = true
	n := -1 // the header
	for {
		_, err := r.Read()
		if err == io.EOF {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkInferrer is the cost of schema inference per row of the same data.
func BenchmarkInferrer(b *testing.B) {
	data := benchCSV()
	r, err := NewReader(bytes.NewReader(data), CSV, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var records []Record
	for range 10_000 {
		rec, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		records = append(records, Record{Values: slices.Clone(rec.Values), Null: slices.Clone(rec.Null)})
	}
	rows := 0
	for b.Loop() {
		in := NewInferrer(r.Header())
		for _, rec := range records {
			in.Observe(rec.Values, rec.Null)
		}
		in.Schema()
		rows += len(records)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows), "ns/row")
}
