package tabular

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// The seed corpora are under testdata/fuzz/<FuzzName>/; run one with
// go test -fuzz=FuzzCSV ./pkg/tabular/.

// fuzzOptions are small, so that the limits are reached too.
var fuzzOptions = Options{MaxFieldBytes: 256, MaxColumns: 64, MaxRecordBytes: 4096}

func FuzzCSV(f *testing.F) {
	for _, seed := range []string{
		"a,b\n1,2\n",
		"a,b\r\n\"x, \"\"y\"\"\",\r\n,\"\"\n",
		"a\n\n1\n",
		"a,b\n\"multi\nline\",2\n",
		"a,b\n1,\"open\n",
		"\ufeffa,b\n1,2",
		"a,b\r\n1,x\ry\r\n,\n",
		"a\n\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, CSV)
	})
}

func FuzzJSONL(f *testing.F) {
	for _, seed := range []string{
		`{"a":1,"b":"x"}` + "\n" + `{"b":null,"a":-2.5e3}`,
		`{"a":"\u00e9\ud83d\ude00\n"}`,
		`{"a":true}` + "\n\n" + `{"a":false}`,
		`{"a":{"b":1}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, JSONL)
	})
}

// fuzzRoundTrip reads data; every error must be a *ParseError, and when
// it reads, its canonical CSV must read back to the same records.
func fuzzRoundTrip(t *testing.T, data []byte, f Format) {
	header, records, err := readRecords(bytes.NewReader(data), f)
	checkBatches(t, data, f, header, records, err)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v (%T), want a *ParseError", err, err)
		}
		return
	}
	canonical := writeCanonical(t, header, records)
	// WriteRecord copies lines that already were canonical: the same bytes.
	var buf bytes.Buffer
	w := NewCSVWriter(&buf, header)
	for _, r := range records {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), canonical) {
		t.Fatalf("WriteRecord wrote %q, Write %q", buf.Bytes(), canonical)
	}
	header2, records2, err := readRecords(bytes.NewReader(canonical), CSV)
	if err != nil {
		t.Fatalf("canonical form %q does not read back: %v", canonical, err)
	}
	if !slices.Equal(header, header2) {
		t.Fatalf("header %q read back as %q", header, header2)
	}
	if len(records) != len(records2) {
		t.Fatalf("%d records read back as %d", len(records), len(records2))
	}
	for i := range records {
		if !slices.Equal(records[i].Values, records2[i].Values) || !slices.Equal(records[i].Null, records2[i].Null) {
			t.Fatalf("record %d %q %v read back as %q %v", i+1, records[i].Values, records[i].Null, records2[i].Values, records2[i].Null)
		}
	}
	if again := writeCanonical(t, header2, records2); !bytes.Equal(canonical, again) {
		t.Fatalf("canonical form not stable: %q then %q", canonical, again)
	}
}

func readRecords(src io.Reader, f Format) ([]string, []Record, error) {
	r, err := NewReader(src, f, fuzzOptions)
	if err != nil {
		return nil, nil, err
	}
	var out []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Header(), out, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if len(rec.Values) != len(r.Header()) || len(rec.Null) != len(r.Header()) {
			return nil, nil, errors.New("record width differs from the header")
		}
		out = append(out, Record{Row: rec.Row, Values: slices.Clone(rec.Values), Null: slices.Clone(rec.Null), canonical: rec.canonical, plain: rec.plain})
	}
}

// checkBatches reads data with ReadBatch, in batches of a few sizes: the
// records, or the error, must be those of Next (header, records and err),
// and WriteBatch must write the records' canonical form.
func checkBatches(t *testing.T, data []byte, f Format, header []string, records []Record, err error) {
	t.Helper()
	for _, size := range []int{1, 3, 1000} {
		r, berr := NewReader(bytes.NewReader(data), f, fuzzOptions)
		if berr != nil {
			if err == nil || berr.Error() != err.Error() {
				t.Fatalf("batches of %d: NewReader: %v, want %v", size, berr, err)
			}
			continue
		}
		var got []Record
		var text bytes.Buffer
		w := NewCSVWriter(&text, r.Header())
		b := NewBatch(len(r.Header()), size)
		for {
			berr = ReadBatch(r, b)
			if berr != nil {
				break
			}
			if b.Len == 0 || b.Len > size {
				t.Fatalf("batches of %d: a batch of %d", size, b.Len)
			}
			for i := range b.Len {
				rec := Record{Row: b.Row(i)}
				for j := range r.Header() {
					values, null := b.Column(j)
					// A copy: the batch's values are valid until it is read into again.
					rec.Values, rec.Null = append(rec.Values, strings.Clone(values[i])), append(rec.Null, null[i])
				}
				got = append(got, rec)
			}
			if werr := w.WriteBatch(b); werr != nil {
				t.Fatal(werr)
			}
		}
		if err != nil {
			if berr == io.EOF || berr.Error() != err.Error() {
				t.Fatalf("batches of %d: error %v, want %v", size, berr, err)
			}
			continue
		}
		if berr != io.EOF {
			t.Fatalf("batches of %d: error %v", size, berr)
		}
		if len(got) != len(records) {
			t.Fatalf("batches of %d: %d records, want %d", size, len(got), len(records))
		}
		for i, rec := range records {
			if got[i].Row != rec.Row || !slices.Equal(got[i].Values, rec.Values) || !slices.Equal(got[i].Null, rec.Null) {
				t.Fatalf("batches of %d: record %d is row %d %q %v, want row %d %q %v", size, i, got[i].Row, got[i].Values, got[i].Null, rec.Row, rec.Values, rec.Null)
			}
		}
		if werr := w.Flush(); werr != nil {
			t.Fatal(werr)
		}
		if canonical := writeCanonical(t, header, records); !bytes.Equal(text.Bytes(), canonical) {
			t.Fatalf("batches of %d: WriteBatch wrote %q, Write %q", size, text.Bytes(), canonical)
		}
	}
}

func writeCanonical(t *testing.T, header []string, records []Record) []byte {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf, header)
	for _, r := range records {
		if err := w.Write(r.Values, r.Null); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzParquet(f *testing.F) {
	type seed struct {
		ID   int64   `parquet:"id"`
		Name *string `parquet:"name,optional"`
		X    float64 `parquet:"x"`
	}
	name := "a"
	var buf bytes.Buffer
	if err := writeParquetTo(&buf, []seed{{1, &name, 0.5}, {2, nil, -1}}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		err := readParquetErr(data)
		var pe *ParseError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("error %v (%T), want a *ParseError", err, err)
		}
	})
}

func FuzzIsTimestamp(f *testing.F) {
	for _, seed := range []string{"2024-05-01", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123+05:30", "2024-02-29 10:00:00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if _, want := ParseTimestamp(v); isTimestamp(v) != want {
			t.Fatalf("isTimestamp(%q) = %v, ParseTimestamp says %v", v, !want, want)
		}
	})
}
