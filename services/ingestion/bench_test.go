package ingestion

import (
	"bufio"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/tabular"
)

// benchCSV writes (once per run) a CSV of rows x 20 mixed columns: ints,
// floats, categories, booleans, timestamps and free text.
func benchCSV(b *testing.B, rows int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), fmt.Sprintf("bench-%d.csv", rows))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	fmt.Fprintln(w, "id,age,income,debt_ratio,score,late_payments,segment,region,product,channel,active,verified,opened,last_seen,zip3,birth_year,sex,notes,balance,label")
	segments := []string{"retail", "sme", "corporate", "private"}
	regions := []string{"north", "south", "east", "west", "central"}
	for i := range rows {
		fmt.Fprintf(w, "%d,%d,%.2f,%.4f,%.3f,%d,%s,%s,p%d,c%d,%t,%t,2024-%02d-%02d,2025-%02d-%02dT10:00:00Z,%03d,%d,%s,%s,%.2f,%d\n",
			i, 18+rng.IntN(70), 20000+rng.Float64()*150000, rng.Float64(), rng.NormFloat64(), rng.IntN(6),
			segments[rng.IntN(4)], regions[rng.IntN(5)], rng.IntN(30), rng.IntN(8), rng.IntN(2) == 0, rng.IntN(3) > 0,
			1+rng.IntN(12), 1+rng.IntN(28), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(1000), 1940+rng.IntN(65),
			[]string{"f", "m"}[rng.IntN(2)], []string{"no issues", "called twice", "asked for a limit increase", ""}[rng.IntN(4)],
			rng.Float64()*1e5-2e4, rng.IntN(2))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

// benchValidation is the benchmarks' rules: a few quality rules, the
// privacy detectors, and k-anonymity over three quasi-identifiers.
var benchValidation = pipeline.Validation{
	Rules: []pipeline.Rule{{Column: "age", Min: ptr(18.0), Max: ptr(120.0)}, {Column: "income", NotNull: true}, {Column: "segment", Allowed: []string{"retail", "sme", "corporate", "private"}}},
	Privacy: pipeline.Privacy{Detect: []string{"email", "phone", "credit_card", "ssn", "ip_address"}, Action: "reject",
		QuasiIdentifiers: []string{"zip3", "birth_year", "sex"}, KAnonymity: 1},
}

// BenchmarkIngestVsBareRead measures the whole check of an upload (parse,
// schema inference, rules, privacy scan, k-anonymity, spool; then profile
// and canonical rewrite) against a bare encoding/csv read of the same file,
// in the same run. Storage is left out: it is the S3 server's speed.
//
// Each round reads the file the three ways back to back, and the figures
// are medians over the rounds: on a shared machine a burst of load slows
// one read of a round, and a median over rounds is not moved by it.
func BenchmarkIngestVsBareRead(b *testing.B) {
	rows, rounds := 1_000_000, 5
	if testing.Short() {
		rows, rounds = 50_000, 1
	}
	path := benchCSV(b, rows)
	info, _ := os.Stat(path)
	mb := float64(info.Size()) / 1e6
	v := benchValidation
	s := &Service{cfg: Config{MaxUploadBytes: 1 << 40, SpoolDir: b.TempDir()}}
	timed := func(f func()) float64 {
		start := time.Now()
		f()
		return time.Since(start).Seconds()
	}
	var bareMBs, gyreMBs, ratios, floorRatios []float64
	for b.Loop() {
		for range rounds {
			bare := timed(func() { bareRead(b, path) })
			full := timed(func() { ingestFile(b, s, path, v) })
			floor := timed(func() { parseAndSpool(b, path, s.cfg.SpoolDir) })
			bareMBs, gyreMBs = append(bareMBs, mb/bare), append(gyreMBs, mb/full)
			ratios, floorRatios = append(ratios, bare/full), append(floorRatios, bare/floor)
		}
	}
	b.ReportMetric(median(bareMBs), "bare-MB/s")
	b.ReportMetric(median(gyreMBs), "gyre-MB/s")
	b.ReportMetric(median(ratios), "ratio")
	// The part of pass 1 no check can make cheaper: parse, digest, spool.
	b.ReportMetric(median(floorRatios), "no-checks-ratio")
	b.ReportMetric(0, "ns/op")
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// parseAndSpool is pass 1 without any check: the upload parsed, digested
// and spooled, as analyze does it.
func parseAndSpool(b *testing.B, path, dir string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	spool, err := os.CreateTemp(dir, "spool-*.csv")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	rd, err := tabular.NewReader(io.TeeReader(f, sha256.New()), tabular.CSV, tabular.Options{})
	if err != nil {
		b.Fatal(err)
	}
	out := tabular.NewCSVWriter(spool, rd.Header())
	batch := tabular.NewBatch(len(rd.Header()), batchRows)
	for {
		err := tabular.ReadBatch(rd, batch)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			b.Fatal(err)
		}
		if err := out.WriteBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := out.Flush(); err != nil {
		b.Fatal(err)
	}
}

// eachRecord calls fn with the header and each record of the CSV in r.
func eachRecord(b *testing.B, r io.Reader, fn func(header []string, rec tabular.Record)) {
	rd, err := tabular.NewReader(r, tabular.CSV, tabular.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			b.Fatal(err)
		}
		fn(rd.Header(), rec)
	}
}

// BenchmarkPassOneChecks is what all the checks of pass 1 cost per value
// (ns per cell) on one core, on the rows of the ingestion benchmark held in
// memory: the CPU time that the workers share in BenchmarkIngestVsBareRead.
func BenchmarkPassOneChecks(b *testing.B) {
	path := benchCSV(b, 100_000)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var header []string
	var recs []tabular.Record
	eachRecord(b, f, func(h []string, rec tabular.Record) {
		header = h
		rec.Values, rec.Null = slices.Clone(rec.Values), slices.Clone(rec.Null)
		recs = append(recs, rec)
	})
	cells := float64(len(recs) * len(header))
	// Every check of pass 1, on one worker: the CPU time the two workers share.
	for b.Loop() {
		cs, err := newPassOneChecks(header, benchValidation, tabular.Schema{})
		if err != nil {
			b.Fatal(err)
		}
		clear(cs.owner) // all columns on worker 0, alone
		cs.workers, cs.barrier.parties = 1, 1
		in := make(chan *batch, 1)
		go func() {
			defer close(in)
			for start := 0; start < len(recs); start += batchRows {
				in <- batchOf(len(header), recs[start:min(start+batchRows, len(recs))])
			}
		}()
		cs.work(0, in, func(*batch) {})
		if cs.profile(cs.inferred(), int64(len(recs))) == nil {
			b.Fatal("no profile")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/cells, "ns/cell")
	b.ReportMetric(0, "ns/op")
}

func ptr[T any](v T) *T { return &v }

func bareRead(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	for {
		if _, err := r.Read(); err == io.EOF {
			return
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

func ingestFile(b *testing.B, s *Service, path string, v pipeline.Validation) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	spool, err := os.CreateTemp(s.cfg.SpoolDir, "spool-*.csv")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	an, err := s.analyze(Upload{Format: tabular.CSV, Body: f}, rules{validation: v}, tabular.Schema{}, spool)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	if an.profile == nil {
		b.Fatal("pass 1 did not profile")
	}
}
