package tabular

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Default limits; a zero field in Options takes these.
const (
	DefaultMaxFieldBytes  = 1 << 20
	DefaultMaxColumns     = 4096
	DefaultMaxRecordBytes = 16 << 20
)

// readBufferSize is the read-ahead of the text readers.
const readBufferSize = 64 << 10

// Options bounds what a reader accepts, and so the memory it uses: a reader
// holds one record at a time, at most MaxRecordBytes of it.
type Options struct {
	// MaxFieldBytes bounds one value, in bytes (default 1 MiB).
	MaxFieldBytes int
	// MaxColumns bounds the header (default 4096).
	MaxColumns int
	// MaxRecordBytes bounds one record, a CSV or JSON line with its
	// quoted line breaks, in bytes (default 16 MiB).
	MaxRecordBytes int
}

func (o Options) withDefaults() Options {
	if o.MaxFieldBytes <= 0 {
		o.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if o.MaxColumns <= 0 {
		o.MaxColumns = DefaultMaxColumns
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	return o
}

// Reader streams the records of a dataset file, one at a time.
type Reader interface {
	// Header is the column names, in file order.
	Header() []string
	// Next returns the next record, or io.EOF after the last one. A bad
	// record is a *ParseError; an error of the underlying io.Reader is
	// returned wrapped, as it is (errors.Is works on it).
	Next() (Record, error)
}

// Record is one data row. Values and Null have one entry per header column;
// where Null[i] is true, Values[i] is "".
//
// The Values and Null slices are reused by the next call to Next: copy them
// to keep them. The strings they hold are never modified and may be kept.
type Record struct {
	// Row is the 1-based number of the data row (the header is not a row).
	Row int64
	// Line is the 1-based line of the file where the row starts (CSV and
	// JSON Lines; 0 for Parquet).
	Line   int64
	Values []string
	Null   []bool

	// canonical is the record's line as CSVWriter would write it, without
	// the line end, when the input line already was canonical (CSV without
	// quotes or carriage returns); plain says whether it is set.
	canonical string
	plain     bool
}

// ParseError is bad input: where it is and what is wrong. Its message never
// holds the data itself, only where it is, as reports and logs must not leak
// personal data.
type ParseError struct {
	// Line is the 1-based line of a text file, 0 when unknown or for Parquet.
	Line int64
	// Row is the 1-based data row, set for Parquet only.
	Row int64
	// Column is the column name, empty when not applicable.
	Column string
	Msg    string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	switch {
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d", e.Line)
	case e.Row > 0:
		fmt.Fprintf(&b, "row %d", e.Row)
	}
	if e.Column != "" {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "column %q", e.Column)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// NewReader reads the header of a CSV or JSON Lines stream and returns a
// reader of its records. Gzip-compressed input is recognised by its magic
// bytes and decompressed on the fly, whatever the format says.
//
// Parquet needs random access: r must then also be an io.ReaderAt and an
// io.Seeker (an *os.File). A service receiving Parquet over the network
// spools it to a temporary file first and calls NewParquetReader.
func NewReader(r io.Reader, f Format, opts Options) (Reader, error) {
	opts = opts.withDefaults()
	switch f {
	case CSV, JSONL:
	case Parquet:
		ra, ok := r.(io.ReaderAt)
		s, seekable := r.(io.Seeker)
		if !ok || !seekable {
			return nil, errors.New("parquet needs random access: spool the stream to a file and use NewParquetReader")
		}
		size, err := s.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("size of parquet file: %w", err)
		}
		return NewParquetReader(ra, size, opts)
	default:
		return nil, fmt.Errorf("unknown format %q", f)
	}

	lr, err := newLineReader(r, opts)
	if err != nil {
		return nil, err
	}
	if magic, _ := lr.br.Peek(4); string(magic) == "PAR1" {
		return nil, &ParseError{Line: 1, Msg: "this is a Parquet file, not " + string(f) + ": send it as " + Parquet.ContentType()}
	}
	if f == CSV {
		return newCSVReader(lr, opts)
	}
	return newJSONLReader(lr, opts)
}

// sourceError marks a failure of the caller's reader (a network error, a
// client gone), which is not bad input.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// lineReader yields the lines of a text stream, each at most maxLine bytes.
type lineReader struct {
	br      *bufio.Reader
	line    int64 // the number of the line last returned
	maxLine int
	long    []byte // a line longer than br's buffer, assembled
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

func newLineReader(r io.Reader, opts Options) (*lineReader, error) {
	lr := &lineReader{br: bufio.NewReaderSize(sourceReader{r}, readBufferSize), maxLine: opts.MaxRecordBytes + len("\r\n")}
	if magic, _ := lr.br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(lr.br)
		if err != nil {
			return nil, lr.readError(err)
		}
		lr.br = bufio.NewReaderSize(zr, readBufferSize)
	}
	// Spreadsheet exports often start with a byte order mark; it is not
	// part of the first column's name.
	if bom, _ := lr.br.Peek(len(utf8BOM)); bytes.Equal(bom, utf8BOM) {
		lr.br.Discard(len(utf8BOM))
	}
	return lr, nil
}

// next returns the next line with its line break (none on a last line
// without one), or io.EOF. The slice is valid until the next call.
func (lr *lineReader) next() ([]byte, error) {
	l, err := lr.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		lr.long = append(lr.long[:0], l...)
		for err == bufio.ErrBufferFull {
			if len(lr.long) > lr.maxLine {
				return nil, &ParseError{Line: lr.line + 1, Msg: fmt.Sprintf("line longer than %d bytes", lr.maxLine-len("\r\n"))}
			}
			l, err = lr.br.ReadSlice('\n')
			lr.long = append(lr.long, l...)
		}
		l = lr.long
	}
	if len(l) > lr.maxLine {
		return nil, &ParseError{Line: lr.line + 1, Msg: fmt.Sprintf("line longer than %d bytes", lr.maxLine-len("\r\n"))}
	}
	switch {
	case err == nil, err == io.EOF && len(l) > 0:
		lr.line++
		return l, nil
	case err == io.EOF:
		return nil, io.EOF
	default:
		return nil, lr.readError(err)
	}
}

// readError tells a failing source from corrupt compressed data.
func (lr *lineReader) readError(err error) error {
	var se *sourceError
	if errors.As(err, &se) {
		return fmt.Errorf("read line %d: %w", lr.line+1, se.err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &ParseError{Line: lr.line + 1, Msg: "truncated gzip data"}
	}
	return &ParseError{Line: lr.line + 1, Msg: "corrupt gzip data: " + err.Error()}
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
		if n := len(l); n > 0 && l[n-1] == '\r' {
			l = l[:n-1]
		}
	}
	return l
}
