package tabular

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCSVWriterCanonicalBytes(t *testing.T) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf, []string{"id", "name, full", "note"})
	records := []struct {
		values []string
		null   []bool
	}{
		{[]string{"1", "ann", "plain"}, nil},
		{[]string{"2", "", ""}, []bool{false, true, false}},
		{[]string{"3", `say "hi"`, "two\nlines\r\n"}, []bool{false, false, false}},
		{[]string{"4", "ignored", " spaced "}, []bool{false, true, false}},
	}
	for _, r := range records {
		if err := w.Write(r.values, r.null); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "id,\"name, full\",note\n" +
		"1,ann,plain\n" +
		"2,,\"\"\n" +
		"3,\"say \"\"hi\"\"\",\"two\nlines\r\n\"\n" +
		"4,, spaced \n"
	if buf.String() != want {
		t.Errorf("bytes\n%q\nwant\n%q", buf.String(), want)
	}

	// Reading the canonical form and writing it again gives the same bytes.
	header, rows, _ := readAll(t, buf.String(), CSV, Options{})
	var again bytes.Buffer
	w2 := NewCSVWriter(&again, header)
	for _, r := range rows {
		values, null := make([]string, len(r)), make([]bool, len(r))
		for i, v := range r {
			if v == nil {
				null[i] = true
			} else {
				values[i] = *v
			}
		}
		if err := w2.Write(values, null); err != nil {
			t.Fatal(err)
		}
	}
	if err := w2.Flush(); err != nil {
		t.Fatal(err)
	}
	if again.String() != want {
		t.Errorf("rewritten\n%q\nwant\n%q", again.String(), want)
	}
}

func TestCSVWriterOneColumnNullsAndEmptyStrings(t *testing.T) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf, []string{"\ufeffx"})
	for _, r := range []struct {
		v    string
		null bool
	}{{"a", false}, {"", true}, {"", false}} {
		if err := w.Write([]string{r.v}, []bool{r.null}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "\"\ufeffx\"\na\n\n\"\"\n"; buf.String() != want {
		t.Fatalf("bytes %q, want %q", buf.String(), want)
	}
	header, rows, _ := readAll(t, buf.String(), CSV, Options{})
	if header[0] != "\ufeffx" {
		t.Errorf("header %q", header)
	}
	equalRows(t, rows, []row{{s("a")}, {nil}, {s("")}})
}

func TestCSVWriterErrors(t *testing.T) {
	w := NewCSVWriter(&bytes.Buffer{}, []string{"a", "b"})
	if err := w.Write([]string{"1"}, nil); err == nil || !strings.Contains(err.Error(), "1 values, want 2") {
		t.Errorf("short record: %v", err)
	}
	broken := errors.New("disk full")
	w = NewCSVWriter(errWriter{broken}, []string{"a"})
	if err := w.Write([]string{strings.Repeat("x", 128<<10)}, nil); err != nil && !errors.Is(err, broken) {
		t.Fatalf("write: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, broken) {
		t.Errorf("flush: %v, want %v", err, broken)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }
