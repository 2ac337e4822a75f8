package tabular

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// row is a record as a test states it: nil for null.
type row []*string

func s(v string) *string { return &v }

// readAll reads every record of data; it fails the test on any error.
func readAll(t *testing.T, data string, f Format, opts Options) ([]string, []row, []Record) {
	t.Helper()
	r, err := NewReader(strings.NewReader(data), f, opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var rows []row
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Header(), rows, recs
		}
		if err != nil {
			t.Fatalf("Next after %d rows: %v", len(rows), err)
		}
		rw := make(row, len(rec.Values))
		for i, v := range rec.Values {
			if !rec.Null[i] {
				rw[i] = s(v)
			}
		}
		rows = append(rows, rw)
		recs = append(recs, Record{Row: rec.Row, Line: rec.Line})
	}
}

// readErr reads data to its first error, which must be a *ParseError.
func readErr(t *testing.T, data string, f Format, opts Options) *ParseError {
	t.Helper()
	err := firstError(strings.NewReader(data), f, opts)
	if err == nil {
		t.Fatalf("read %q: no error", data)
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("read %q: %v (%T), want a *ParseError", data, err, err)
	}
	return pe
}

func firstError(src io.Reader, f Format, opts Options) error {
	r, err := NewReader(src, f, opts)
	if err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func equalRows(t *testing.T, got, want []row) {
	t.Helper()
	show := func(rs []row) string {
		var b strings.Builder
		for _, r := range rs {
			for i, v := range r {
				if i > 0 {
					b.WriteByte('|')
				}
				if v == nil {
					b.WriteString("<null>")
				} else {
					b.WriteString("[" + *v + "]")
				}
			}
			b.WriteByte('\n')
		}
		return b.String()
	}
	if g, w := show(got), show(want); g != w {
		t.Errorf("rows:\n%s\nwant:\n%s", g, w)
	}
}

func TestCSVValuesAndNulls(t *testing.T) {
	data := "\ufeffid,name,note\r\n" +
		"1,ann,\r\n" +
		"2,\"\",\"a, b\"\r\n" +
		"\r\n" +
		"3,\"say \"\"hi\"\"\",\"two\nlines\"\n" +
		"4,,last"
	header, rows, recs := readAll(t, data, CSV, Options{})
	if !slices.Equal(header, []string{"id", "name", "note"}) {
		t.Fatalf("header %q", header)
	}
	equalRows(t, rows, []row{
		{s("1"), s("ann"), nil},
		{s("2"), s(""), s("a, b")},
		{s("3"), s(`say "hi"`), s("two\nlines")},
		{s("4"), nil, s("last")},
	})
	want := []Record{{Row: 1, Line: 2}, {Row: 2, Line: 3}, {Row: 3, Line: 5}, {Row: 4, Line: 7}}
	if !slices.EqualFunc(recs, want, func(a, b Record) bool { return a.Row == b.Row && a.Line == b.Line }) {
		t.Errorf("rows and lines %+v, want %+v", recs, want)
	}
}

func TestCSVOneColumnBlankLineIsNull(t *testing.T) {
	_, rows, _ := readAll(t, "x\n1\n\n\"\"\n", CSV, Options{})
	equalRows(t, rows, []row{{s("1")}, {nil}, {s("")}})
}

func TestCSVHeaderOnly(t *testing.T) {
	header, rows, _ := readAll(t, "a,b\n", CSV, Options{})
	if len(rows) != 0 || !slices.Equal(header, []string{"a", "b"}) {
		t.Errorf("header %q rows %d", header, len(rows))
	}
}

func TestCSVRecordStringsOutliveNext(t *testing.T) {
	r, err := NewReader(strings.NewReader("a\nfirst\nsecond\n"), CSV, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.Next()
	kept := first.Values[0]
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if kept != "first" {
		t.Errorf("kept value %q, want %q", kept, "first")
	}
}

func TestCSVBadInput(t *testing.T) {
	small := Options{MaxFieldBytes: 8, MaxColumns: 3, MaxRecordBytes: 32}
	for _, tc := range []struct {
		name, data string
		opts       Options
		want       string
	}{
		{"empty file", "", Options{}, "line 1: empty file: want a header line naming the columns"},
		{"bom only", "\ufeff", Options{}, "line 1: empty file: want a header line naming the columns"},
		{"no header", "\n1,2\n", Options{}, "line 1: no header: the first line is empty"},
		{"empty column name", "a,,c\n", Options{}, "line 1: column 2 has an empty name"},
		{"duplicate column", "a,b,a\n1,2,3\n", Options{}, `line 1, column "a": duplicate column name (columns 1 and 3)`},
		{"too many fields", "a,b\n1,2\n1,2,3\n", Options{}, "line 3: wrong number of fields: got more than 2, want 2"},
		{"too few fields", "a,b,c\n1,2\n", Options{}, `line 2, column "c": wrong number of fields: got 2, want 3 (missing from here on)`},
		{"quoted ragged", "a,b\n\"1\",\"2\",\"3\"\n", Options{}, "line 2: wrong number of fields: got more than 2, want 2"},
		{"unterminated quote", "a,b\n1,\"abc\n2,3\n", Options{}, `line 2, column "b": unterminated quoted field`},
		{"bare quote", "a,b\n1,ab\"c\n", Options{}, `line 2, column "b": quote in an unquoted field (quote the whole field and write the quote twice)`},
		{"text after closing quote", "a,b\n\"x\"y,2\n", Options{}, `line 2, column "a": unexpected character after a closing quote (a quote inside a quoted field is written twice)`},
		{"invalid utf-8", "a,b\n1,\xff\xfe\n", Options{}, `line 2, column "b": invalid UTF-8`},
		{"invalid utf-8 in header", "a,\xc3\n", Options{}, `line 1: invalid UTF-8`},
		{"nul byte", "a,b\n1,x\x00y\n", Options{}, `line 2, column "b": NUL byte: binary data, not CSV text`},
		{"binary garbage", "\x7fELF\x02\x01\x01\x00\x00\x00\x00", Options{}, "line 1: NUL byte: binary data, not CSV text"},
		{"parquet sent as csv", "PAR1\x15\x04", Options{}, "line 1: this is a Parquet file, not csv: send it as application/vnd.apache.parquet"},
		{"long field", "a,b\n1,123456789\n", small, `line 2, column "b": field longer than 8 bytes`},
		{"long quoted field", "a,b\n1,\"1234\n56789\"\n", small, `line 2, column "b": field longer than 8 bytes`},
		{"long line", "a,b,c\n1,2," + strings.Repeat("x,", 20) + "\n", small, "line 2: line longer than 32 bytes"},
		{"long record", "a,b,c\n1,\"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n", Options{MaxFieldBytes: 100, MaxRecordBytes: 32}, "line 2: record longer than 32 bytes"},
		{"too many columns", "a,b,c,d\n", small, "line 1: more than 3 columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readErr(t, tc.data, CSV, tc.opts).Error(); got != tc.want {
				t.Errorf("error\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

func TestCSVLongLinesWithinLimits(t *testing.T) {
	// Lines longer than the read buffer are assembled.
	long := strings.Repeat("x", 3*readBufferSize)
	_, rows, _ := readAll(t, "a,b\n"+long+",\""+long+"\"\n", CSV, Options{MaxFieldBytes: 4 * readBufferSize})
	equalRows(t, rows, []row{{s(long), s(long)}})
}

func gzipped(t *testing.T, data string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGzipIsRecognised(t *testing.T) {
	for _, f := range []Format{CSV, JSONL} {
		data := "a,b\n1,2\n"
		if f == JSONL {
			data = `{"a":1,"b":2}` + "\n"
		}
		header, rows, _ := readAll(t, string(gzipped(t, data)), f, Options{})
		if !slices.Equal(header, []string{"a", "b"}) {
			t.Errorf("%s header %q", f, header)
		}
		equalRows(t, rows, []row{{s("1"), s("2")}})
	}
}

func TestGzipCorrupt(t *testing.T) {
	z := gzipped(t, "a,b\n"+strings.Repeat("1,2\n", 1000))
	truncated := z[:len(z)/2]
	if got := readErr(t, string(truncated), CSV, Options{}).Msg; got != "truncated gzip data" {
		t.Errorf("truncated: %q", got)
	}
	corrupt := slices.Clone(z)
	corrupt[len(corrupt)-5] ^= 0xff // the length in the trailer
	if got := readErr(t, string(corrupt), CSV, Options{}).Msg; !strings.HasPrefix(got, "corrupt gzip data") {
		t.Errorf("corrupt: %q", got)
	}
	if got := readErr(t, "\x1f\x8b", CSV, Options{}).Msg; got != "truncated gzip data" {
		t.Errorf("magic only: %q", got)
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data io.Reader
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.data.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestSourceErrorIsNotAParseError(t *testing.T) {
	gone := errors.New("client went away")
	for _, data := range []string{"a,b\n1,2\n3,", string(gzipped(t, "a,b\n1,2\n"))[:20]} {
		err := firstError(&failingReader{strings.NewReader(data), gone}, CSV, Options{})
		var pe *ParseError
		if !errors.Is(err, gone) || errors.As(err, &pe) {
			t.Errorf("error %v (%T), want the source's error, not a ParseError", err, err)
		}
	}
}

func TestJSONLValues(t *testing.T) {
	data := "\n" +
		`{"id": 1, "name": "ann", "score": 1.50, "ok": true, "note": null}` + "\n" +
		"   \n" +
		`{"name":"b\u00e9\"\\\/\n\t\ud83d\ude00\udead","id":-0,"score":1e3,"ok":false,"note":""}` + "\r\n" +
		`{"id":9007199254740993,"score":0.00001}` + "\n" +
		`{"id":99999999999999999999,"score":1e21}` + "\n" +
		`{"id":-12,"score":-2.5E-3}`
	header, rows, recs := readAll(t, data, JSONL, Options{})
	if !slices.Equal(header, []string{"id", "name", "score", "ok", "note"}) {
		t.Fatalf("header %q", header)
	}
	equalRows(t, rows, []row{
		{s("1"), s("ann"), s("1.5"), s("true"), nil},
		{s("0"), s("bé\"\\/\n\t😀\ufffd"), s("1000"), s("false"), s("")},
		{s("9007199254740993"), nil, s("1e-05"), nil, nil},
		{s("100000000000000000000"), nil, s("1e+21"), nil, nil},
		{s("-12"), nil, s("-0.0025"), nil, nil},
	})
	if recs[0].Line != 2 || recs[1].Line != 4 || recs[1].Row != 2 {
		t.Errorf("rows and lines %+v", recs)
	}
}

func TestJSONLBadInput(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"empty file", "", "line 1: empty file: want one JSON object per line"},
		{"blank lines only", "\n  \n", "line 1: empty file: want one JSON object per line"},
		{"not an object", "[1,2]\n", "line 1: want a JSON object on each line"},
		{"no keys", "{}\n", "line 1: no header: the first object has no keys, and its keys name the columns"},
		{"empty key", `{"":1}`, `line 1: empty key: keys name the columns`},
		{"duplicate key in first object", `{"a":1,"a":2}`, `line 1, column "a": duplicate column name (columns 1 and 2)`},
		{"duplicate key later", "{\"a\":1,\"b\":2}\n{\"a\":1,\"a\":2}", `line 2, column "a": duplicate key`},
		{"new key", "{\"a\":1}\n{\"a\":2}\n{\"a\":3,\"zip\":4}", `line 3, column "zip": key not in the first object (the first line's keys name the columns)`},
		{"nested object", "{\"a\":1,\"b\":2}\n{\"a\":1,\"b\":{\"c\":1}}", `line 2, column "b": nested objects and arrays are not supported: flatten the record`},
		{"nested array", `{"a":[1]}`, `line 1, column "a": nested objects and arrays are not supported: flatten the record`},
		{"invalid json", "{\"a\":1}\n{\"a\":tru}", `line 2, column "a": invalid JSON at byte 6: want a value`},
		{"missing comma", "{\"a\":1 \"b\":2}", `line 1, column "a": invalid JSON at byte 8: want ',' or '}' after the value`},
		{"unquoted key", "{a:1}", `line 1: invalid JSON at byte 2: want a quoted key`},
		{"truncated", "{\"a\":1,", `line 1: invalid JSON: line ends where a quoted key was expected`},
		{"unterminated string", `{"a":"x}`, `line 1, column "a": invalid JSON: unterminated string`},
		{"bad number", `{"a":01}`, `line 1, column "a": invalid JSON at byte 7: want ',' or '}' after the value`},
		{"bad escape", `{"a":"\q"}`, `line 1, column "a": invalid JSON at byte 8: want an escape (\" \\ \/ \b \f \n \r \t \uXXXX)`},
		{"nul escape", `{"a":"x\u0000"}`, `line 1, column "a": NUL character (\u0000) in a string`},
		{"raw control character", "{\"a\":\"x\ty\"}", `line 1, column "a": invalid JSON: control character in a string`},
		{"number out of range", `{"a":1e999}`, `line 1, column "a": number out of the float64 range`},
		{"trailing data", `{"a":1} {"a":2}`, `line 1: unexpected data after the object: want one JSON object per line`},
		{"invalid utf-8", "{\"a\":1}\n{\"a\":\"\xff\"}", `line 2: invalid UTF-8`},
		{"binary garbage", "\x89PNG\r\n\x1a\n\x00\x00", `line 1: invalid UTF-8`},
		{"text garbage", "hello world\n", `line 1: want a JSON object on each line`},
		{"nul byte", "{\"a\":1}\n\x00\x00", `line 2: NUL byte: binary data, not JSON text`},
		{"long value", `{"a":"123456789"}`, `line 1, column "a": value longer than 8 bytes`},
		{"too many columns", `{"a":1,"b":2,"c":3,"d":4}`, `line 1: more than 3 columns`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{MaxFieldBytes: 8, MaxColumns: 3}
			if got := readErr(t, tc.data, JSONL, opts).Error(); got != tc.want {
				t.Errorf("error\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

func TestParseErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  ParseError
		want string
	}{
		{ParseError{Line: 12, Column: "age", Msg: "unterminated quoted field"}, `line 12, column "age": unterminated quoted field`},
		{ParseError{Line: 3, Msg: "m"}, "line 3: m"},
		{ParseError{Row: 7, Column: "x", Msg: "m"}, `row 7, column "x": m`},
		{ParseError{Column: "x", Msg: "m"}, `column "x": m`},
		{ParseError{Msg: "m"}, "m"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestFormatFromContentType(t *testing.T) {
	for ct, want := range map[string]Format{
		"text/csv":                         CSV,
		"text/csv; charset=utf-8":          CSV,
		"TEXT/CSV":                         CSV,
		"application/x-ndjson":             JSONL,
		"application/jsonl":                JSONL,
		"application/x-jsonlines":          JSONL,
		"application/vnd.apache.parquet":   Parquet,
		"application/x-parquet":            Parquet,
		"application/octet-stream":         "",
		"application/json":                 "",
		"":                                 "",
		"text/csv; charset=\"unterminated": "",
	} {
		got, err := FormatFromContentType(ct)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q, %v; want %q", ct, got, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "want text/csv, application/x-ndjson") {
			t.Errorf("%q: error %q does not list the accepted types", ct, err)
		}
	}
}

func TestFormatFromFileName(t *testing.T) {
	for name, want := range map[string]Format{
		"a.csv": CSV, "dir/A.CSV.gz": CSV, "x.jsonl": JSONL, "x.ndjson.gz": JSONL, "x.parquet": Parquet,
		"x.parquet.gz": "", "x.txt": "", "x": "",
	} {
		got, err := FormatFromFileName(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q, %v; want %q", name, got, err, want)
		}
	}
	if CSV.ContentType() != "text/csv" || JSONL.ContentType() != "application/x-ndjson" {
		t.Error("canonical content types")
	}
}

func TestNewReaderParquetNeedsRandomAccess(t *testing.T) {
	_, err := NewReader(io.MultiReader(strings.NewReader("PAR1")), Parquet, Options{})
	var pe *ParseError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "NewParquetReader") {
		t.Errorf("error %v, want one pointing at NewParquetReader", err)
	}
}

// endless yields prefix, then line over and over, counting what it gave.
type endless struct {
	prefix, line string
	pending      string
	read         int64
}

func (e *endless) Read(p []byte) (int, error) {
	if e.pending == "" {
		e.pending, e.prefix = e.prefix+e.line, ""
	}
	n := copy(p, e.pending)
	e.pending = e.pending[n:]
	e.read += int64(n)
	return n, nil
}

// TestBoundedByOneRecord: a quote that never closes, or a line that never
// ends, is refused once past the limits, not read to the end of the file.
func TestBoundedByOneRecord(t *testing.T) {
	opts := Options{MaxFieldBytes: 1 << 20, MaxRecordBytes: 3 << 19}
	for _, tc := range []struct {
		name string
		src  *endless
		f    Format
		want string
	}{
		{"open quote", &endless{prefix: "a,b\n1,\"", line: "xxxxxxx\n"}, CSV, `line 2, column "b": field longer than 1048576 bytes`},
		{"endless line", &endless{prefix: "a,b\n", line: "xxxxxxxx"}, CSV, "line 2: line longer than 1572864 bytes"},
		{"endless json", &endless{prefix: `{"a":"`, line: "xxxxxxxx"}, JSONL, "line 1: line longer than 1572864 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := firstError(tc.src, tc.f, opts)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
			if tc.src.read > 2<<20 {
				t.Errorf("read %d bytes before refusing", tc.src.read)
			}
		})
	}
}
