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
	dst     io.Writer // under w
	columns int
	line    []byte // the record being written
	err     error
}

// NewCSVWriter writes the header; call Flush when done.
func NewCSVWriter(w io.Writer, header []string) *CSVWriter {
	cw := &CSVWriter{w: bufio.NewWriterSize(w, 64<<10), dst: w, columns: len(header)}
	var line []byte
	for i, name := range header {
		if i > 0 {
			line = append(line, ',')
		}
		// A leading byte order mark would be dropped when read back.
		line = appendField(line, name, i == 0 && strings.HasPrefix(name, "\ufeff"))
	}
	cw.write(append(line, '\n'))
	return cw
}

// Write writes one record. null may be nil when no value is null.
func (cw *CSVWriter) Write(values []string, null []bool) error {
	if len(values) != cw.columns || null != nil && len(null) != cw.columns {
		return fmt.Errorf("write csv record: %d values, want %d", len(values), cw.columns)
	}
	cw.line = appendCSVRecord(cw.line[:0], values, null)
	return cw.write(cw.line)
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

// WriteBatch writes the records of a batch as ReadBatch filled it (its
// values not modified since), as Write would: the canonical lines read are
// copied as they are.
func (cw *CSVWriter) WriteBatch(b *Batch) error {
	if b.columns != cw.columns {
		return fmt.Errorf("write csv batch: %d columns, want %d", b.columns, cw.columns)
	}
	if len(b.text) < cw.w.Size()/2 || cw.err != nil {
		return cw.write(b.text)
	}
	// A batch's text (tens of KiB) is written as it is, not copied through
	// the buffer first: that costs a copy of every byte, and saves no
	// write.
	if err := cw.Flush(); err != nil {
		return err
	}
	if _, err := cw.dst.Write(b.text); err != nil {
		cw.err = fmt.Errorf("write csv record: %w", err)
	}
	return cw.err
}

func (cw *CSVWriter) write(p []byte) error {
	if cw.err != nil {
		return cw.err
	}
	if _, err := cw.w.Write(p); err != nil {
		cw.err = fmt.Errorf("write csv record: %w", err)
	}
	return cw.err
}

// appendCSVRecord appends a record's canonical line to dst.
func appendCSVRecord(dst []byte, values []string, null []bool) []byte {
	for i, v := range values {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch {
		case null != nil && null[i]:
		case v == "":
			dst = append(dst, `""`...) // the empty string, told from null by its quotes
		default:
			dst = appendField(dst, v, false)
		}
	}
	return append(dst, '\n')
}

// appendField appends v, quoted when it must be.
func appendField(dst []byte, v string, forceQuote bool) []byte {
	if !forceQuote && !needsQuote(v) {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	for {
		i := strings.IndexByte(v, '"')
		if i < 0 {
			break
		}
		dst = append(dst, v[:i+1]...)
		dst = append(dst, '"')
		v = v[i+1:]
	}
	dst = append(dst, v...)
	return append(dst, '"')
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
