package tabular

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// csvReader reads RFC 4180 CSV: comma-separated, fields with commas, quotes
// or line breaks enclosed in double quotes, a quote inside doubled. An
// unquoted empty field is null; a quoted empty field ("") is the empty
// string.
type csvReader struct {
	lr     *lineReader
	opts   Options
	header []string
	row    int64

	// The record being read: its bytes as read (quotes and separators
	// included), and where each field is in them.
	buf    []byte
	fields []span
	// plain: the record is one line without quotes or carriage returns, so
	// its bytes are its canonical CSV form.
	plain bool

	rec Record
}

func newCSVReader(lr *lineReader, opts Options) (*csvReader, error) {
	r := &csvReader{lr: lr, opts: opts}
	line, err := r.readRecord(opts.MaxColumns)
	if err == io.EOF {
		return nil, &ParseError{Line: 1, Msg: "empty file: want a header line naming the columns"}
	}
	if err != nil {
		return nil, err
	}
	if r.blank() {
		return nil, &ParseError{Line: line, Msg: "no header: the first line is empty"}
	}
	header, err := checkHeader(r.strings(), line)
	if err != nil {
		return nil, err
	}
	r.header = header
	r.rec.Values = make([]string, len(header))
	r.rec.Null = make([]bool, len(header))
	return r, nil
}

// checkHeader refuses empty and duplicate column names.
func checkHeader(names []string, line int64) ([]string, error) {
	seen := make(map[string]int, len(names))
	for i, n := range names {
		if n == "" {
			return nil, &ParseError{Line: line, Msg: fmt.Sprintf("column %d has an empty name", i+1)}
		}
		if j, dup := seen[n]; dup {
			return nil, &ParseError{Line: line, Column: n, Msg: fmt.Sprintf("duplicate column name (columns %d and %d)", j+1, i+1)}
		}
		seen[n] = i
	}
	return names, nil
}

// span is where a field is in the record's bytes.
type span struct {
	start, end int
	quoted     bool
	// escaped: a quoted field with doubled quotes, to be undoubled.
	escaped bool
}

// blank reports whether the record just read is an empty line.
func (r *csvReader) blank() bool {
	return len(r.fields) == 1 && r.fields[0].end == r.fields[0].start && !r.fields[0].quoted
}

func (r *csvReader) Header() []string { return r.header }

func (r *csvReader) Next() (Record, error) {
	for {
		line, err := r.readRecord(len(r.header))
		if err != nil {
			return Record{}, err
		}
		// A blank line is a null in a one-column file (the canonical form
		// writes it so) and is skipped otherwise.
		if r.blank() && len(r.header) > 1 {
			continue
		}
		if len(r.fields) != len(r.header) {
			pe := &ParseError{Line: line, Msg: fmt.Sprintf("wrong number of fields: got %d, want %d", len(r.fields), len(r.header))}
			if len(r.fields) < len(r.header) {
				pe.Column = r.header[len(r.fields)]
				pe.Msg += " (missing from here on)"
			}
			return Record{}, pe
		}
		// One string per record: fields are slices of it, so a record costs
		// one allocation and its values stay valid after the next call.
		s := string(r.buf)
		for i, f := range r.fields {
			r.rec.Values[i] = f.value(s)
			r.rec.Null[i] = f.end == f.start && !f.quoted
		}
		r.rec.plain = r.plain
		r.rec.canonical = ""
		if r.plain {
			r.rec.canonical = s[:len(trimEOL(r.buf))]
		}
		r.row++
		r.rec.Row = r.row
		r.rec.Line = line
		return r.rec, nil
	}
}

func (f span) value(s string) string {
	if f.escaped {
		return strings.ReplaceAll(s[f.start:f.end], `""`, `"`)
	}
	return s[f.start:f.end]
}

// strings returns the fields of the record just read as new strings.
func (r *csvReader) strings() []string {
	s := string(r.buf)
	out := make([]string, len(r.fields))
	for i, f := range r.fields {
		out[i] = f.value(s)
	}
	return out
}

// columnName names field i for an error: the header's name once known.
func (r *csvReader) columnName(i int) string {
	if i < len(r.header) {
		return r.header[i]
	}
	return ""
}

// readRecord reads the next record into buf and fields, and returns the
// line it starts on. It stops with an error past maxFields.
func (r *csvReader) readRecord(maxFields int) (int64, error) {
	line, err := r.lr.next()
	if err != nil {
		return 0, err
	}
	start := r.lr.line
	r.buf, r.fields = append(r.buf[:0], line...), r.fields[:0]
	r.plain = false
	if bytes.IndexByte(line, '"') < 0 {
		r.plain = bytes.IndexByte(trimEOL(line), '\r') < 0
		err = r.splitPlain(maxFields, start)
	} else {
		err = r.splitQuoted(maxFields, start)
	}
	if err != nil {
		return 0, err
	}
	return start, r.checkText(start)
}

// splitPlain splits a line without quotes: the common case, kept fast.
func (r *csvReader) splitPlain(maxFields int, lineNo int64) error {
	line := trimEOL(r.buf)
	for pos := 0; ; {
		i := bytes.IndexByte(line[pos:], ',')
		end := len(line)
		if i >= 0 {
			end = pos + i
		}
		if end-pos > r.opts.MaxFieldBytes {
			return r.tooLong(len(r.fields), lineNo)
		}
		if len(r.fields) == maxFields {
			return r.tooManyFields(maxFields, lineNo)
		}
		r.fields = append(r.fields, span{start: pos, end: end})
		if i < 0 {
			return nil
		}
		pos = end + 1
	}
}

// splitQuoted splits a line with quotes, reading more lines into buf while
// a quoted field spans line breaks.
func (r *csvReader) splitQuoted(maxFields int, lineNo int64) error {
	pos := 0
	for {
		field := len(r.fields)
		if field == maxFields {
			return r.tooManyFields(maxFields, lineNo)
		}
		if pos < len(r.buf) && r.buf[pos] == '"' {
			f := span{start: pos + 1, quoted: true}
			for pos = f.start; ; {
				i := bytes.IndexByte(r.buf[pos:], '"')
				if i < 0 {
					// The field goes on past this line.
					pos = len(r.buf)
					if err := r.more(field, f.start, lineNo); err != nil {
						return err
					}
					continue
				}
				pos += i + 1
				if pos < len(r.buf) && r.buf[pos] == '"' {
					f.escaped = true
					pos++
					continue
				}
				f.end = pos - 1
				break
			}
			if f.end-f.start > r.opts.MaxFieldBytes {
				return r.tooLong(field, lineNo)
			}
			r.fields = append(r.fields, f)
			rest := trimEOL(r.buf[pos:])
			if len(rest) == 0 {
				return nil
			}
			if rest[0] != ',' {
				return &ParseError{Line: r.lr.line, Column: r.columnName(field), Msg: "unexpected character after a closing quote (a quote inside a quoted field is written twice)"}
			}
			pos++
			continue
		}

		// Fields are short: a byte loop beats two IndexByte calls.
		end := pos
		for end < len(r.buf) && r.buf[end] != ',' && r.buf[end] != '"' {
			end++
		}
		if end < len(r.buf) && r.buf[end] == '"' {
			return &ParseError{Line: r.lr.line, Column: r.columnName(field), Msg: "quote in an unquoted field (quote the whole field and write the quote twice)"}
		}
		last := end == len(r.buf)
		if last {
			end = pos + len(trimEOL(r.buf[pos:]))
		}
		if end-pos > r.opts.MaxFieldBytes {
			return r.tooLong(field, lineNo)
		}
		r.fields = append(r.fields, span{start: pos, end: end})
		if last {
			return nil
		}
		pos = end + 1
	}
}

// more appends the next line to buf, for a quoted field that started at
// fieldStart and is still open.
func (r *csvReader) more(field, fieldStart int, lineNo int64) error {
	if len(r.buf)-fieldStart > r.opts.MaxFieldBytes {
		return r.tooLong(field, lineNo)
	}
	if len(r.buf) > r.opts.MaxRecordBytes {
		return &ParseError{Line: lineNo, Msg: fmt.Sprintf("record longer than %d bytes", r.opts.MaxRecordBytes)}
	}
	line, err := r.lr.next()
	if err == io.EOF {
		return &ParseError{Line: lineNo, Column: r.columnName(field), Msg: "unterminated quoted field"}
	}
	if err != nil {
		return err
	}
	r.buf = append(r.buf, line...)
	return nil
}

func (r *csvReader) tooLong(field int, lineNo int64) error {
	return &ParseError{Line: lineNo, Column: r.columnName(field), Msg: fmt.Sprintf("field longer than %d bytes", r.opts.MaxFieldBytes)}
}

func (r *csvReader) tooManyFields(maxFields int, lineNo int64) error {
	if r.header == nil {
		return &ParseError{Line: lineNo, Msg: fmt.Sprintf("more than %d columns", maxFields)}
	}
	return &ParseError{Line: lineNo, Msg: fmt.Sprintf("wrong number of fields: got more than %d, want %d", maxFields, maxFields)}
}

// checkText refuses a record that is not UTF-8 text: binary data sent as
// CSV fails here.
func (r *csvReader) checkText(lineNo int64) error {
	if bytes.IndexByte(r.buf, 0) < 0 && utf8.Valid(r.buf) {
		return nil
	}
	for i, sp := range r.fields {
		f := r.buf[sp.start:sp.end]
		switch {
		case bytes.IndexByte(f, 0) >= 0:
			return &ParseError{Line: lineNo, Column: r.columnName(i), Msg: "NUL byte: binary data, not CSV text"}
		case !utf8.Valid(f):
			return &ParseError{Line: lineNo, Column: r.columnName(i), Msg: "invalid UTF-8"}
		}
	}
	// Outside the fields: after a closing quote, or a line break.
	return &ParseError{Line: lineNo, Msg: "NUL byte or invalid UTF-8: binary data, not CSV text"}
}
