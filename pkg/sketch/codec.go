package sketch

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Every binary form starts with a tag naming the sketch and a format version,
// so a blob given to the wrong decoder fails loudly instead of decoding junk.
const (
	tagHLL     = 'H'
	tagKLL     = 'K'
	tagTopK    = 'T'
	tagMoments = 'M'

	formatVersion = 1
)

var errTruncated = errors.New("truncated")

// writer appends the binary encoding; it cannot fail.
type writer struct{ buf []byte }

func newWriter(tag byte) *writer {
	return &writer{buf: []byte{tag, formatVersion}}
}

func (w *writer) byte(b byte)      { w.buf = append(w.buf, b) }
func (w *writer) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *writer) uint64(v uint64)  { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }
func (w *writer) float(f float64)  { w.uint64(math.Float64bits(f)) }
func (w *writer) bytes(b []byte)   { w.buf = append(w.buf, b...) }
func (w *writer) string(s string) {
	w.uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

// reader decodes what writer wrote; the first error sticks and later reads
// return zero values, so decoders check once at the end.
type reader struct {
	buf []byte
	err error
}

func newReader(data []byte, tag byte, name string) (*reader, error) {
	if len(data) < 2 {
		return nil, fmt.Errorf("decode %s: %w", name, errTruncated)
	}
	if data[0] != tag {
		return nil, fmt.Errorf("decode %s: not a %s sketch (tag %q)", name, name, data[0])
	}
	if data[1] != formatVersion {
		return nil, fmt.Errorf("decode %s: unsupported format version %d", name, data[1])
	}
	return &reader{buf: data[2:]}, nil
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.buf = nil
}

func (r *reader) byte() byte {
	if len(r.buf) < 1 {
		r.fail(errTruncated)
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail(errTruncated)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a length and checks it against what is left, so a corrupt
// length cannot make the decoder allocate gigabytes.
func (r *reader) count(minBytesEach int) int {
	v := r.uvarint()
	if r.err == nil && v > uint64(len(r.buf)/minBytesEach) {
		r.fail(fmt.Errorf("length %d exceeds the remaining %d bytes", v, len(r.buf)))
		return 0
	}
	return int(v)
}

func (r *reader) uint64() uint64 {
	if len(r.buf) < 8 {
		r.fail(errTruncated)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.buf)
	r.buf = r.buf[8:]
	return v
}

func (r *reader) float() float64 { return math.Float64frombits(r.uint64()) }

func (r *reader) bytes(n int) []byte {
	if len(r.buf) < n {
		r.fail(errTruncated)
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) string() string {
	n := r.count(1)
	return string(r.bytes(n))
}

// done reports the sticky error, or trailing bytes nobody asked for.
func (r *reader) done(name string) error {
	if r.err == nil && len(r.buf) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.buf))
	}
	if r.err != nil {
		return fmt.Errorf("decode %s: %w", name, r.err)
	}
	return nil
}

// marshalBase64 is the JSON form of a binary-encoded sketch: one string.
func marshalBase64(data []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(data))
}

func unmarshalBase64(js []byte, name string) ([]byte, error) {
	var s string
	if err := json.Unmarshal(js, &s); err != nil {
		return nil, fmt.Errorf("decode %s: want a base64 string: %w", name, err)
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return data, nil
}
