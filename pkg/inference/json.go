package inference

// A JSON reader and writer for the Open Inference Protocol's infer payloads
// only. It is the REST hot path: it reads straight into reused tensors,
// with no reflection and no intermediate tree, and writes into a reused
// buffer.

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/model"
)

// maxJSONDepth bounds nesting (data arrays of higher-rank tensors included).
const maxJSONDepth = 32

// inferRequest is a decoded infer request; it is reused across requests.
type inferRequest struct {
	id      string
	inputs  []inputTensor
	outputs []string
}

func (r *inferRequest) reset() {
	r.id = ""
	for i := range r.inputs {
		r.inputs[i].reset()
	}
	r.inputs = r.inputs[:0]
	clear(r.outputs)
	r.outputs = r.outputs[:0]
}

// nextInput returns a cleared tensor, reusing an old one's memory.
func (r *inferRequest) nextInput() *inputTensor {
	if len(r.inputs) < cap(r.inputs) {
		r.inputs = r.inputs[:len(r.inputs)+1]
	} else {
		r.inputs = append(r.inputs, inputTensor{})
	}
	t := &r.inputs[len(r.inputs)-1]
	t.reset()
	return t
}

// jsonError is malformed JSON: a bad request.
func jsonError(s *scanner, format string, args ...any) error {
	return apierr.Invalid(fmt.Sprintf("request body: invalid JSON at offset %d: %s", s.i, fmt.Sprintf(format, args...)))
}

type scanner struct {
	b []byte
	i int
	// scratch holds a string that needed unescaping.
	scratch []byte
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		if s.i >= len(s.b) {
			return jsonError(s, "unexpected end, want %q", c)
		}
		return jsonError(s, "want %q, got %q", c, s.b[s.i])
	}
	s.i++
	return nil
}

// str reads a string. The bytes are the input's own when the string has no
// escapes, else scratch: either way only valid until the next call.
func (s *scanner) str() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.valid(s.b[start:s.i-1], ascii), nil
		case c == '\\':
			return s.unescape(start)
		case c < 0x20:
			return nil, jsonError(s, "control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
		s.i++
	}
	return nil, jsonError(s, "unterminated string")
}

// valid replaces invalid UTF-8 with U+FFFD, as encoding/json does.
func (s *scanner) valid(b []byte, ascii bool) []byte {
	if ascii || utf8.Valid(b) {
		return b
	}
	s.scratch = append(s.scratch[:0], bytes.ToValidUTF8(b, []byte("\uFFFD"))...)
	return s.scratch
}

func (s *scanner) unescape(start int) ([]byte, error) {
	out := append(s.scratch[:0], s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				out = bytes.ToValidUTF8(out, []byte("\uFFFD"))
			}
			s.scratch = out
			return out, nil
		case c < 0x20:
			return nil, jsonError(s, "control character in string")
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, jsonError(s, "bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				save := s.i
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					if r2, ok := s.hex4(); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
				}
				s.i = save
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, jsonError(s, "bad escape \\%c", e)
		}
	}
	return nil, jsonError(s, "unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	s.i += 4
	return r, true
}

// number reads a number's text.
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case '0' <= c && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			s.i++
			continue
		}
		break
	}
	if s.i == start {
		return nil, jsonError(s, "want a number")
	}
	return s.b[start:s.i], nil
}

func (s *scanner) float() (float64, []byte, error) {
	raw, err := s.number()
	if err != nil {
		return 0, nil, err
	}
	f, perr := strconv.ParseFloat(string(raw), 64)
	if perr != nil && !isRangeError(perr) {
		s.i -= len(raw)
		return 0, nil, jsonError(s, "bad number %q", raw)
	}
	return f, raw, nil
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// literal reads true, false or null.
func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// skip reads past one value of any kind.
func (s *scanner) skip(depth int) error {
	if depth > maxJSONDepth {
		return jsonError(s, "nested too deeply")
	}
	switch c := s.peek(); c {
	case '"':
		_, err := s.str()
		return err
	case '{':
		s.i++
		if s.peek() == '}' {
			s.i++
			return nil
		}
		for {
			if _, err := s.str(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if done, err := s.next('}'); done || err != nil {
				return err
			}
		}
	case '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if done, err := s.next(']'); done || err != nil {
				return err
			}
		}
	case 't':
		if s.literal("true") {
			return nil
		}
	case 'f':
		if s.literal("false") {
			return nil
		}
	case 'n':
		if s.literal("null") {
			return nil
		}
	default:
		_, _, err := s.float()
		return err
	}
	return jsonError(s, "unexpected %q", s.b[s.i])
}

// next reads the separator after a member: ',' (more follow) or end.
func (s *scanner) next(end byte) (bool, error) {
	switch s.peek() {
	case ',':
		s.i++
		return false, nil
	case end:
		s.i++
		return true, nil
	}
	return false, jsonError(s, "want ',' or %q", end)
}

// object calls member for each key of an object.
func (s *scanner) object(member func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		if done, err := s.next('}'); done || err != nil {
			return err
		}
	}
}

// array calls elem for each element of an array; null is an empty array.
func (s *scanner) array(elem func() error) error {
	if s.peek() == 'n' && s.literal("null") {
		return nil
	}
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		if done, err := s.next(']'); done || err != nil {
			return err
		}
	}
}

// parseInferRequest decodes {"id", "inputs", "outputs", "parameters"}.
// Unknown members are ignored, as the protocol allows extensions.
func parseInferRequest(body []byte, req *inferRequest) error {
	s := &scanner{b: body}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			if s.peek() == 'n' && s.literal("null") {
				return nil
			}
			v, err := s.str()
			if err != nil {
				return err
			}
			req.id = string(v)
		case "inputs":
			// A repeated member replaces the earlier one, as in encoding/json.
			req.inputs = req.inputs[:0]
			return s.array(func() error { return parseTensor(s, req.nextInput()) })
		case "outputs":
			req.outputs = req.outputs[:0]
			return s.array(func() error {
				return s.object(func(key []byte) error {
					if string(key) != "name" {
						return s.skip(0)
					}
					v, err := s.str()
					if err != nil {
						return err
					}
					req.outputs = append(req.outputs, string(v))
					return nil
				})
			})
		default:
			return s.skip(0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.peek() != 0 {
		return jsonError(s, "data after the request object")
	}
	return nil
}

// parseTensor decodes {"name", "shape", "datatype", "data", "parameters"}.
// data is decoded when the datatype is known, so a data member that comes
// first is read again at the end.
func parseTensor(s *scanner, t *inputTensor) error {
	dataAt := -1
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "name":
			v, err := s.str()
			if err != nil {
				return err
			}
			t.name = string(v)
		case "datatype":
			v, err := s.str()
			if err != nil {
				return err
			}
			t.datatype = datatypeName(v)
		case "shape":
			return s.array(func() error {
				f, _, err := s.float()
				if err != nil {
					return err
				}
				if f != math.Trunc(f) || math.Abs(f) > 1<<40 {
					return jsonError(s, "shape: %v is not a dimension", f)
				}
				t.shape = append(t.shape, int64(f))
				return nil
			})
		case "data":
			if t.datatype == "" {
				dataAt = s.i
				return s.skip(1)
			}
			return parseData(s, t, 0)
		default:
			return s.skip(0)
		}
		return nil
	})
	if err != nil || dataAt < 0 {
		return err
	}
	if err := checkDatatype(t); err != nil {
		return err
	}
	end := s.i
	s.i = dataAt
	err = parseData(s, t, 0)
	s.i = end
	return err
}

// datatypeName returns the constant for common data types, so that
// decoding one allocates nothing.
func datatypeName(v []byte) string {
	switch string(v) {
	case dtFP64:
		return dtFP64
	case dtFP32:
		return dtFP32
	case dtInt64:
		return dtInt64
	case dtInt32:
		return dtInt32
	case dtBool:
		return dtBool
	case dtBytes:
		return dtBytes
	}
	return string(v)
}

// parseData decodes a data array, flattening nested arrays in row-major
// order. Numeric tensors take numbers (null is a missing value); BOOL takes
// true and false; BYTES takes strings, numbers (as their text), booleans
// and null (missing).
func parseData(s *scanner, t *inputTensor, depth int) error {
	if depth > maxJSONDepth {
		return jsonError(s, "nested too deeply")
	}
	if err := checkDatatype(t); err != nil {
		return err
	}
	bytesType := t.datatype == dtBytes
	return s.array(func() error {
		switch c := s.peek(); {
		case c == '[':
			return parseData(s, t, depth+1)
		case c == '"':
			v, err := s.str()
			if err != nil {
				return err
			}
			if !bytesType {
				return inputError(t.name, "datatype %s, but data holds a string", t.datatype)
			}
			t.strs = append(t.strs, string(v))
		case c == 'n' && s.literal("null"):
			if bytesType {
				t.setNull(len(t.strs))
				t.strs = append(t.strs, "")
			} else {
				t.nums = append(t.nums, math.NaN())
			}
		case c == 't' && s.literal("true"), c == 'f' && s.literal("false"):
			switch {
			case bytesType:
				t.strs = append(t.strs, strconv.FormatBool(c == 't'))
			case t.datatype == dtBool:
				t.nums = append(t.nums, boolFloat(c == 't'))
			default:
				return inputError(t.name, "datatype %s, but data holds a boolean", t.datatype)
			}
		default:
			f, raw, err := s.float()
			if err != nil {
				return err
			}
			switch {
			case bytesType:
				t.strs = append(t.strs, string(raw))
			case t.datatype == dtBool:
				return inputError(t.name, "datatype BOOL, but data holds a number")
			case isIntegerDatatype(t.datatype) && f != math.Trunc(f):
				return inputError(t.name, "datatype %s, but data holds %s", t.datatype, raw)
			default:
				t.nums = append(t.nums, f)
			}
		}
		return nil
	})
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// appendString writes s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size - 1
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			start = i + 1
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendFloat writes f as a JSON number (null when not finite).
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// inferAnswer is what a response says besides the predictions.
type inferAnswer struct {
	model, version, id, env, role string
}

// appendInferResponse writes the infer response:
//
//	{"model_name", "model_version", "id", "parameters": {...},
//	 "outputs": [{"name", "datatype", "shape", "data"}, ...]}
func appendInferResponse(b []byte, a *inferAnswer, outs outputSet, classes int, preds []model.Prediction) []byte {
	n := strconv.Itoa(len(preds))
	b = append(b, `{"model_name":`...)
	b = appendString(b, a.model)
	b = append(b, `,"model_version":`...)
	b = appendString(b, a.version)
	b = append(b, `,"id":`...)
	b = appendString(b, a.id)
	b = append(b, `,"parameters":{"environment":`...)
	b = appendString(b, a.env)
	b = append(b, `,"role":`...)
	b = appendString(b, a.role)
	b = append(b, `},"outputs":[`...)
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	if outs.label {
		sep()
		b = append(b, `{"name":"label","datatype":"BYTES","shape":[`...)
		b = append(b, n...)
		b = append(b, `],"data":[`...)
		for i := range preds {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, preds[i].Label)
		}
		b = append(b, "]}"...)
	}
	if outs.probabilities {
		sep()
		b = append(b, `{"name":"probabilities","datatype":"FP64","shape":[`...)
		b = append(b, n...)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(classes), 10)
		b = append(b, `],"data":[`...)
		k := 0
		for i := range preds {
			for c := range classes {
				if k > 0 {
					b = append(b, ',')
				}
				k++
				p := math.NaN()
				if c < len(preds[i].Probabilities) {
					p = preds[i].Probabilities[c]
				}
				b = appendFloat(b, p)
			}
		}
		b = append(b, "]}"...)
	}
	if outs.value {
		sep()
		b = append(b, `{"name":"value","datatype":"FP64","shape":[`...)
		b = append(b, n...)
		b = append(b, `],"data":[`...)
		for i := range preds {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendFloat(b, preds[i].Value)
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// appendError writes {"error": message}.
func appendError(b []byte, msg string) []byte {
	b = append(b, `{"error":`...)
	b = appendString(b, msg)
	return append(b, '}')
}
