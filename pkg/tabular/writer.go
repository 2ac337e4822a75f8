package tabular

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// CSVWriter writes the canonical stored form of a dataset: RFC 4180 CSV
// with "\n" line ends, a header line, a null as an empty unquoted field and
// the empty string as "". A field is quoted only when it must be (it holds
// a comma, a quote, a line break, or is the empty string), so the same
// records always give the same bytes, and the CSV reader gives back exactly
// the records written.
type CSVWriter struct {
	w       *bufio.Writer
	columns int
	err     error
}

// NewCSVWriter writes the header; call Flush when done.
func NewCSVWriter(w io.Writer, header []string) *CSVWriter {
	cw := &CSVWriter{w: bufio.NewWriterSize(w, 64<<10), columns: len(header)}
	for i, name := range header {
		// A leading byte order mark would be dropped when read back.
		cw.field(name, i > 0, i == 0 && strings.HasPrefix(name, "\ufeff"))
	}
	cw.w.WriteByte('\n')
	return cw
}

// Write writes one record. null may be nil when no value is null.
func (cw *CSVWriter) Write(values []string, null []bool) error {
	if cw.err != nil {
		return cw.err
	}
	if len(values) != cw.columns || null != nil && len(null) != cw.columns {
		return fmt.Errorf("write csv record: %d values, want %d", len(values), cw.columns)
	}
	for i, v := range values {
		isNull := null != nil && null[i]
		if isNull {
			v = ""
		}
		cw.field(v, i > 0, false)
		if !isNull && v == "" {
			// The empty string, told from null by its quotes.
			cw.w.WriteString(`""`)
		}
	}
	_, err := cw.w.WriteString("\n")
	if err != nil {
		cw.err = fmt.Errorf("write csv record: %w", err)
	}
	return cw.err
}

// WriteRecord writes a record as a Reader returned it (its values not
// modified since): a CSV line that already was canonical is copied as it
// is, which is the same bytes Write would give, without re-encoding.
func (cw *CSVWriter) WriteRecord(rec Record) error {
	if !rec.plain || len(rec.Values) != cw.columns {
		return cw.Write(rec.Values, rec.Null)
	}
	if cw.err != nil {
		return cw.err
	}
	cw.w.WriteString(rec.canonical)
	if err := cw.w.WriteByte('\n'); err != nil {
		cw.err = fmt.Errorf("write csv record: %w", err)
	}
	return cw.err
}

// field writes a comma when asked, then v, quoted when it must be.
func (cw *CSVWriter) field(v string, comma, forceQuote bool) {
	if comma {
		cw.w.WriteByte(',')
	}
	if !forceQuote && !needsQuote(v) {
		cw.w.WriteString(v)
		return
	}
	cw.w.WriteByte('"')
	for {
		i := strings.IndexByte(v, '"')
		if i < 0 {
			break
		}
		cw.w.WriteString(v[:i+1])
		cw.w.WriteByte('"')
		v = v[i+1:]
	}
	cw.w.WriteString(v)
	cw.w.WriteByte('"')
}

// quoteByte marks the bytes that make a field need quotes.
var quoteByte = [256]bool{',': true, '"': true, '\r': true, '\n': true}

// needsQuote is strings.ContainsAny(v, ",\"\r\n") without its per-call set
// building: this runs for every field written.
func needsQuote(v string) bool {
	for i := 0; i < len(v); i++ {
		if quoteByte[v[i]] {
			return true
		}
	}
	return false
}

// Flush writes what is buffered to the underlying writer.
func (cw *CSVWriter) Flush() error {
	if cw.err != nil {
		return cw.err
	}
	if err := cw.w.Flush(); err != nil {
		cw.err = fmt.Errorf("flush csv: %w", err)
	}
	return cw.err
}
