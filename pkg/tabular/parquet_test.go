package tabular

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

type parquetRow struct {
	ID      int64     `parquet:"id"`
	Name    string    `parquet:"name"`
	Score   float64   `parquet:"score"`
	Ratio   float32   `parquet:"ratio"`
	Active  bool      `parquet:"active"`
	Age     *int32    `parquet:"age,optional"`
	Note    *string   `parquet:"note,optional"`
	Seen    time.Time `parquet:"seen,timestamp(millisecond)"`
	Born    int32     `parquet:"born,date"` // days since 1970-01-01
	Price   int64     `parquet:"price,decimal(2:10)"`
	Count   uint32    `parquet:"count"`
	Session [16]byte  `parquet:"session,uuid"`
}

func writeParquet[T any](t *testing.T, rows []T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeParquetTo(&buf, rows); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeParquetTo[T any](w io.Writer, rows []T) error {
	pw := parquet.NewGenericWriter[T](w)
	if _, err := pw.Write(rows); err != nil {
		return err
	}
	return pw.Close()
}

func readParquet(t *testing.T, b []byte) ([]string, []row) {
	t.Helper()
	r, err := NewParquetReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("NewParquetReader: %v", err)
	}
	var rows []row
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Header(), rows
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Row != int64(len(rows)+1) || rec.Line != 0 {
			t.Errorf("record %d: row %d line %d", len(rows)+1, rec.Row, rec.Line)
		}
		rw := make(row, len(rec.Values))
		for i, v := range rec.Values {
			if !rec.Null[i] {
				rw[i] = s(v)
			}
		}
		rows = append(rows, rw)
	}
}

func TestParquetRoundTrip(t *testing.T) {
	age := int32(42)
	note := "a, \"quoted\"\nnote"
	seen := time.Date(2024, 5, 1, 10, 30, 0, 250e6, time.UTC)
	born := int32(time.Date(1990, 12, 31, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	uuid := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	b := writeParquet(t, []parquetRow{
		{ID: 1, Name: "ann", Score: 0.5, Ratio: 0.1, Active: true, Age: &age, Note: &note, Seen: seen, Born: born, Price: 12345, Count: 4000000000, Session: uuid},
		{ID: -2, Name: "", Score: 1e6, Ratio: 3, Seen: seen, Born: born, Price: -5},
	})
	header, rows := readParquet(t, b)
	if !slices.Equal(header, []string{"id", "name", "score", "ratio", "active", "age", "note", "seen", "born", "price", "count", "session"}) {
		t.Fatalf("header %q", header)
	}
	equalRows(t, rows, []row{
		{s("1"), s("ann"), s("0.5"), s("0.1"), s("true"), s("42"), s(note), s("2024-05-01T10:30:00.25Z"), s("1990-12-31"), s("123.45"), s("4000000000"), s("12345678-9abc-def0-1234-56789abcdef0")},
		{s("-2"), s(""), s("1000000"), s("3"), s("false"), nil, nil, s("2024-05-01T10:30:00.25Z"), s("1990-12-31"), s("-0.05"), s("0"), s("00000000-0000-0000-0000-000000000000")},
	})

	// The canonical CSV of the Parquet file reads back to the same records.
	var csv bytes.Buffer
	w := NewCSVWriter(&csv, header)
	for _, r := range rows {
		values, nulls := make([]string, len(r)), make([]bool, len(r))
		for i, v := range r {
			if v == nil {
				nulls[i] = true
			} else {
				values[i] = *v
			}
		}
		if err := w.Write(values, nulls); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_, again, _ := readAll(t, csv.String(), CSV, Options{})
	equalRows(t, again, rows)
}

func TestParquetThroughNewReaderFromFile(t *testing.T) {
	type small struct {
		A int64  `parquet:"a"`
		B string `parquet:"b"`
		C string `parquet:"c,dict"`
	}
	rows := make([]small, 1000)
	for i := range rows {
		rows[i] = small{A: int64(i), B: fmt.Sprintf("value %d", i), C: fmt.Sprintf("c%d", i%7)}
	}
	// Small pages and row groups: values must stay right across batches,
	// pages and row groups.
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[small](&buf, parquet.PageBufferSize(512), parquet.MaxRowsPerRowGroup(300))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "d.parquet")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f, Parquet, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want := []string{fmt.Sprint(n), fmt.Sprintf("value %d", n), fmt.Sprintf("c%d", n%7)}
		if !slices.Equal(rec.Values, want) {
			t.Fatalf("row %d: %q, want %q", n+1, rec.Values, want)
		}
		n++
	}
	if n != len(rows) {
		t.Errorf("read %d rows, want %d", n, len(rows))
	}
}

func TestParquetBadInput(t *testing.T) {
	type nested struct {
		ID   int64 `parquet:"id"`
		Addr struct {
			City string `parquet:"city"`
		} `parquet:"addr"`
	}
	type repeated struct {
		ID   int64    `parquet:"id"`
		Tags []string `parquet:"tags"`
	}
	type binary struct {
		Blob []byte `parquet:"blob"`
	}
	good := writeParquet(t, []struct {
		A int64 `parquet:"a"`
	}{{1}, {2}})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"nested", writeParquet(t, []nested{{ID: 1}}), `column "addr": nested or repeated column: only flat schemas are accepted`},
		{"repeated", writeParquet(t, []repeated{{ID: 1, Tags: []string{"a"}}}), `column "tags": nested or repeated column: only flat schemas are accepted`},
		{"binary value", writeParquet(t, []binary{{Blob: []byte{0xff, 0x00}}}), `row 1, column "blob": binary value, not UTF-8 text: only text byte arrays are accepted`},
		{"empty", nil, ""},
		{"csv", []byte("a,b\n1,2\n"), ""},
		{"truncated", good[:len(good)-10], ""},
		{"corrupt footer", append(slices.Clone(good[:len(good)-12]), 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 'P', 'A', 'R', '1'), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readParquetErr(tc.data)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *ParseError", err, err)
			}
			if tc.want != "" && err.Error() != tc.want {
				t.Errorf("error\n %s\nwant\n %s", err, tc.want)
			}
		})
	}
}

func readParquetErr(b []byte) error {
	r, err := NewParquetReader(bytes.NewReader(b), int64(len(b)))
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

// TestParquetPageClaimsAreBounded: parquet-go allocates what a page header
// claims, so claims past the bounds are refused before any page is read.
func TestParquetPageClaimsAreBounded(t *testing.T) {
	page := func(h format.PageHeader, body int) (*bytes.Reader, int64, *format.FileMetaData) {
		header, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
		if err != nil {
			t.Fatal(err)
		}
		file := append(append([]byte("PAR1"), header...), make([]byte, body)...)
		chunk := int64(len(file) - 4)
		file = append(file, 0, 0, 0, 0, 'P', 'A', 'R', '1')
		md := &format.FileMetaData{RowGroups: []format.RowGroup{{Columns: []format.ColumnChunk{{
			MetaData: format.ColumnMetaData{DataPageOffset: 4, TotalCompressedSize: chunk},
		}}}}}
		return bytes.NewReader(file), int64(len(file)), md
	}
	data := func(values int32) thrift.Null[format.DataPageHeader] {
		return thrift.New(format.DataPageHeader{NumValues: values})
	}
	for _, tc := range []struct {
		name   string
		header format.PageHeader
		want   string
	}{
		{"valid", format.PageHeader{UncompressedPageSize: 10, CompressedPageSize: 10, DataPageHeader: data(3)}, ""},
		{"huge page", format.PageHeader{UncompressedPageSize: 1 << 30, CompressedPageSize: 10, DataPageHeader: data(3)}, "size over the 67108864-byte bound"},
		{"past its chunk", format.PageHeader{UncompressedPageSize: 10, CompressedPageSize: 11, DataPageHeader: data(3)}, "runs past its column chunk"},
		{"many values", format.PageHeader{UncompressedPageSize: 10, CompressedPageSize: 10, DataPageHeader: data(1 << 30)}, "1073741824 values, over the bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra, size, md := page(tc.header, 10)
			err := checkPages(ra, size, md)
			var pe *ParseError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && (!errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want a ParseError with %q", err, tc.want)
			}
		})
	}
}
