package tabular

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonlReader reads JSON Lines: one flat JSON object per line. The first
// object's keys, in order, are the columns; a later object may leave keys
// out (null) but may not bring new ones. Blank lines are skipped.
type jsonlReader struct {
	lr     *lineReader
	opts   Options
	header []string
	index  map[string]int
	row    int64
	seen   []bool
	rec    Record
	// pending: the first object, read for its keys, is not yet returned.
	pending bool
	scan    jsonScanner
}

func newJSONLReader(lr *lineReader, opts Options) (*jsonlReader, error) {
	r := &jsonlReader{lr: lr, opts: opts}
	line, err := r.nextLine()
	if err == io.EOF {
		return nil, &ParseError{Line: 1, Msg: "empty file: want one JSON object per line"}
	}
	if err != nil {
		return nil, err
	}
	var keys, values []string
	var nulls []bool
	err = r.scan.object(line, r.lr.line, opts, func(key, value string, null bool) error {
		if len(keys) == opts.MaxColumns {
			return &ParseError{Line: r.lr.line, Msg: fmt.Sprintf("more than %d columns", opts.MaxColumns)}
		}
		keys = append(keys, key)
		values = append(values, value)
		nulls = append(nulls, null)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, &ParseError{Line: r.lr.line, Msg: "no header: the first object has no keys, and its keys name the columns"}
	}
	if _, err := checkHeader(keys, r.lr.line); err != nil {
		return nil, err
	}
	r.header = keys
	r.index = make(map[string]int, len(keys))
	for i, k := range keys {
		r.index[k] = i
	}
	r.seen = make([]bool, len(keys))
	r.rec = Record{Row: 1, Line: r.lr.line, Values: values, Null: nulls}
	r.row = 1
	r.pending = true
	return r, nil
}

func (r *jsonlReader) Header() []string { return r.header }

func (r *jsonlReader) Next() (Record, error) {
	if r.pending {
		r.pending = false
		return r.rec, nil
	}
	line, err := r.nextLine()
	if err != nil {
		return Record{}, err
	}
	clear(r.seen)
	lineNo := r.lr.line
	err = r.scan.object(line, lineNo, r.opts, func(key, value string, null bool) error {
		i, ok := r.index[key]
		if !ok {
			return &ParseError{Line: lineNo, Column: key, Msg: "key not in the first object (the first line's keys name the columns)"}
		}
		if r.seen[i] {
			return &ParseError{Line: lineNo, Column: key, Msg: "duplicate key"}
		}
		r.seen[i] = true
		r.rec.Values[i], r.rec.Null[i] = value, null
		return nil
	})
	if err != nil {
		return Record{}, err
	}
	for i, seen := range r.seen {
		if !seen {
			r.rec.Values[i], r.rec.Null[i] = "", true
		}
	}
	r.row++
	r.rec.Row = r.row
	r.rec.Line = lineNo
	return r.rec, nil
}

// nextLine returns the next line that is not blank, as a string (values are
// slices of it), after checking that it is UTF-8 text.
func (r *jsonlReader) nextLine() (string, error) {
	for {
		line, err := r.lr.next()
		if err != nil {
			return "", err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return "", &ParseError{Line: r.lr.line, Msg: "NUL byte: binary data, not JSON text"}
		}
		if !utf8.Valid(line) {
			return "", &ParseError{Line: r.lr.line, Msg: "invalid UTF-8"}
		}
		return string(line), nil
	}
}

// jsonScanner parses one flat JSON object. It is strict JSON (RFC 8259)
// except that it refuses nested objects and arrays.
type jsonScanner struct {
	s       string
	pos     int
	line    int64
	key     string
	scratch []byte
}

func (p *jsonScanner) fail(msg string) error {
	return &ParseError{Line: p.line, Column: p.key, Msg: msg}
}

func (p *jsonScanner) invalid(want string) error {
	if p.pos >= len(p.s) {
		return p.fail("invalid JSON: line ends where " + want + " was expected")
	}
	return p.fail(fmt.Sprintf("invalid JSON at byte %d: want %s", p.pos+1, want))
}

func (p *jsonScanner) ws() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonScanner) consume(c byte) bool {
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// object calls emit for each key and its value, rendered as text.
func (p *jsonScanner) object(s string, line int64, opts Options, emit func(key, value string, null bool) error) error {
	p.s, p.pos, p.line, p.key = s, 0, line, ""
	p.ws()
	if !p.consume('{') {
		return p.fail("want a JSON object on each line")
	}
	p.ws()
	if !p.consume('}') {
		for {
			p.ws()
			if p.pos >= len(p.s) || p.s[p.pos] != '"' {
				return p.invalid("a quoted key")
			}
			key, err := p.str()
			if err != nil {
				return err
			}
			p.key = key
			if key == "" {
				return p.fail("empty key: keys name the columns")
			}
			p.ws()
			if !p.consume(':') {
				return p.invalid("':' after the key")
			}
			p.ws()
			value, null, err := p.value()
			if err != nil {
				return err
			}
			if len(value) > opts.MaxFieldBytes {
				return p.fail(fmt.Sprintf("value longer than %d bytes", opts.MaxFieldBytes))
			}
			if err := emit(key, value, null); err != nil {
				return err
			}
			p.ws()
			if p.consume(',') {
				p.key = ""
				continue
			}
			if p.consume('}') {
				break
			}
			return p.invalid("',' or '}' after the value")
		}
	}
	p.key = ""
	p.ws()
	if p.pos < len(p.s) {
		return p.fail("unexpected data after the object: want one JSON object per line")
	}
	return nil
}

func (p *jsonScanner) value() (string, bool, error) {
	if p.pos >= len(p.s) {
		return "", false, p.invalid("a value")
	}
	switch c := p.s[p.pos]; {
	case c == '"':
		v, err := p.str()
		return v, false, err
	case c == '{' || c == '[':
		return "", false, p.fail("nested objects and arrays are not supported: flatten the record")
	case c == '-' || c >= '0' && c <= '9':
		v, err := p.number()
		return v, false, err
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(p.s)-p.pos >= len(lit) && p.s[p.pos:p.pos+len(lit)] == lit {
			p.pos += len(lit)
			if lit == "null" {
				return "", true, nil
			}
			return lit, false, nil
		}
	}
	return "", false, p.invalid("a value")
}

// str reads a string at p.pos (its opening quote). A string without escapes
// is a slice of the line.
func (p *jsonScanner) str() (string, error) {
	p.pos++
	start := p.pos
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == '"':
			p.pos++
			return p.s[start : p.pos-1], nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", p.fail("invalid JSON: control character in a string")
		}
		p.pos++
	}
	return "", p.fail("invalid JSON: unterminated string")
}

// escaped finishes a string with escapes, from start, into scratch.
func (p *jsonScanner) escaped(start int) (string, error) {
	b := append(p.scratch[:0], p.s[start:p.pos]...)
	defer func() { p.scratch = b[:0] }()
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c < 0x20:
			return "", p.fail("invalid JSON: control character in a string")
		case c != '\\':
			b = append(b, c)
			p.pos++
			continue
		}
		p.pos++
		if p.pos >= len(p.s) {
			break
		}
		e := p.s[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.invalid("4 hex digits after \\u")
			}
			if utf16.IsSurrogate(r) {
				// A lone surrogate becomes U+FFFD, as encoding/json does.
				r2 := utf8.RuneError
				if p.pos+1 < len(p.s) && p.s[p.pos] == '\\' && p.s[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					if lo, ok := p.hex4(); ok && utf16.DecodeRune(r, lo) != utf8.RuneError {
						r2 = utf16.DecodeRune(r, lo)
					} else {
						p.pos = save
					}
				}
				r = r2
			}
			if r == 0 {
				return "", p.fail("NUL character (\\u0000) in a string")
			}
			b = utf8.AppendRune(b, r)
		default:
			p.pos--
			return "", p.invalid("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
		}
	}
	return "", p.fail("invalid JSON: unterminated string")
}

func (p *jsonScanner) hex4() (rune, bool) {
	if len(p.s)-p.pos < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(p.s[p.pos:p.pos+4], 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(n), true
}

// number reads a JSON number and renders it canonically: an integer that
// fits int64 in plain digits, any other number as the shortest text that
// reads back to the same float64 (see formatFloat).
func (p *jsonScanner) number() (string, error) {
	start := p.pos
	p.consume('-')
	switch {
	case p.consume('0'):
	case p.digits() == 0:
		return "", p.invalid("a digit")
	}
	integer := true
	if p.consume('.') {
		integer = false
		if p.digits() == 0 {
			return "", p.invalid("a digit after '.'")
		}
	}
	if p.consume('e') || p.consume('E') {
		integer = false
		if !p.consume('+') {
			p.consume('-')
		}
		if p.digits() == 0 {
			return "", p.invalid("a digit in the exponent")
		}
	}
	lit := p.s[start:p.pos]
	if integer {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return strconv.FormatInt(n, 10), nil
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "", p.fail("number out of the float64 range")
	}
	return formatFloat(f), nil
}

func (p *jsonScanner) digits() int {
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	return p.pos - start
}

// formatFloat renders a float64 as the shortest text that reads back to the
// same value: whole numbers below 1e21 in plain digits ("1000000", "3"),
// others as strconv's 'g' format does ("0.25", "1.5e+300", "1e-07").
// Negative zero is "0"; NaN and infinities are "NaN", "+Inf" and "-Inf".
func formatFloat(f float64) string {
	switch {
	case f == 0:
		return "0"
	case f == math.Trunc(f) && math.Abs(f) < 1e21:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
