package tabular

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// parquetBatch is how many rows are decoded at a time.
const parquetBatch = 256

type parquetReader struct {
	opts    Options
	header  []string
	render  []renderFunc
	rows    *parquet.Reader
	batch   []parquet.Row
	n, next int
	row     int64
	rec     Record
}

// renderFunc writes one non-null Parquet value as text.
type renderFunc func(v parquet.Value) (string, error)

// NewParquetReader reads a Parquet file of the given size. Only flat schemas
// are accepted: every column a leaf, none repeated. Values are rendered as
// the text readers render them (see docs/datasets.md), so a Parquet file and
// its CSV form give the same records. Pages are decoded a batch of rows at
// a time, so memory is bounded by the file's page sizes, not its length.
// opts is optional; its zero fields take the defaults.
func NewParquetReader(ra io.ReaderAt, size int64, opts ...Options) (_ Reader, err error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o = o.withDefaults()
	// parquet-go panics on some malformed files; a bad upload must not take
	// the service down.
	defer recoverCorrupt(&err, 0)

	if err := checkFooter(ra, size); err != nil {
		return nil, err
	}
	f, err := parquet.OpenFile(sourceReaderAt{ra, size}, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, parquetError(err, 0, "not a readable Parquet file: ")
	}
	if err := checkPages(ra, size, f.Metadata()); err != nil {
		return nil, err
	}
	fields := f.Schema().Fields()
	if len(fields) == 0 {
		return nil, &ParseError{Msg: "no header: the Parquet schema has no columns"}
	}
	if len(fields) > o.MaxColumns {
		return nil, &ParseError{Msg: fmt.Sprintf("more than %d columns", o.MaxColumns)}
	}
	header := make([]string, len(fields))
	render := make([]renderFunc, len(fields))
	for i, fld := range fields {
		header[i] = fld.Name()
		if !fld.Leaf() || fld.Repeated() {
			return nil, &ParseError{Column: fld.Name(), Msg: "nested or repeated column: only flat schemas are accepted"}
		}
		if render[i], err = renderer(fld.Name(), fld.Type(), o); err != nil {
			return nil, err
		}
	}
	if _, err := checkHeader(header, 0); err != nil {
		return nil, err
	}
	return &parquetReader{
		opts:   o,
		header: header,
		render: render,
		rows:   parquet.NewReader(f),
		batch:  make([]parquet.Row, parquetBatch),
		rec:    Record{Values: make([]string, len(header)), Null: make([]bool, len(header))},
	}, nil
}

func (r *parquetReader) Header() []string { return r.header }

func (r *parquetReader) Next() (_ Record, err error) {
	defer recoverCorrupt(&err, r.row+1)
	if r.next == r.n {
		n, err := r.rows.ReadRows(r.batch)
		if n == 0 {
			if err == nil || err == io.EOF {
				return Record{}, io.EOF
			}
			return Record{}, parquetError(err, r.row+1, "corrupt Parquet data: ")
		}
		r.n, r.next = n, 0
	}
	row := r.batch[r.next]
	r.next++
	r.row++
	for i := range r.rec.Values {
		r.rec.Values[i], r.rec.Null[i] = "", true
	}
	for _, v := range row {
		c := v.Column()
		if c < 0 || c >= len(r.header) || v.IsNull() {
			continue
		}
		s, err := r.render[c](v)
		if err != nil {
			return Record{}, &ParseError{Row: r.row, Column: r.header[c], Msg: err.Error()}
		}
		r.rec.Values[c], r.rec.Null[c] = s, false
	}
	r.rec.Row = r.row
	return r.rec, nil
}

// checkFooter checks the file's trailer before parquet-go allocates the
// footer length it claims, which a corrupt file may set to 4 GiB.
func checkFooter(ra io.ReaderAt, size int64) error {
	const magic = "PAR1"
	if size < int64(2*len(magic)+4) {
		return &ParseError{Msg: fmt.Sprintf("not a Parquet file: %d bytes is too short", size)}
	}
	var trailer [8]byte
	if _, err := ra.ReadAt(trailer[:], size-8); err != nil {
		return fmt.Errorf("read parquet footer: %w", err)
	}
	if string(trailer[4:]) != magic {
		return &ParseError{Msg: "not a Parquet file: no PAR1 magic at its end (encrypted Parquet is not accepted)"}
	}
	if footer := int64(binary.LittleEndian.Uint32(trailer[:4])); footer > size-int64(2*len(magic)+4) {
		return &ParseError{Msg: fmt.Sprintf("corrupt Parquet file: footer of %d bytes in a %d-byte file", footer, size)}
	}
	return nil
}

// Bounds on what one Parquet page may claim. parquet-go allocates what a
// page header claims before reading it, so a few corrupt bytes could
// otherwise ask for gigabytes. Writers make pages of about 1 MiB and at most
// some 20,000 rows.
const (
	maxPageBytes  = 64 << 20
	maxPageValues = 1 << 24
)

// checkPages walks the page headers of every column chunk, before any page
// is read, and refuses claims outside the file or past the bounds above.
func checkPages(ra io.ReaderAt, size int64, md *format.FileMetaData) error {
	corrupt := func(g, c int, format string, args ...any) error {
		return &ParseError{Msg: fmt.Sprintf("corrupt Parquet file: row group %d, column chunk %d: ", g, c) + fmt.Sprintf(format, args...)}
	}
	var proto thrift.CompactProtocol
	window := make([]byte, 8<<10)
	for g, rg := range md.RowGroups {
		for c, cc := range rg.Columns {
			if cc.FilePath != "" {
				return corrupt(g, c, "data in another file is not accepted")
			}
			m := cc.MetaData
			start := m.DataPageOffset
			if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
				start = m.DictionaryPageOffset
			}
			end := start + m.TotalCompressedSize
			if start < 4 || m.TotalCompressedSize < 0 || end > size-8 {
				return corrupt(g, c, "pages outside the file")
			}
			for pos := start; pos < end; {
				var h format.PageHeader
				headerLen := 0
				// The header is decoded from a window of the file, grown
				// when a header (with large statistics) does not fit.
				for w := len(window); ; w *= 2 {
					if w > len(window) {
						window = make([]byte, w)
					}
					n, err := ra.ReadAt(window[:min(int64(w), end-pos)], pos)
					if err != nil && err != io.EOF {
						return fmt.Errorf("read parquet page header: %w", err)
					}
					r := proto.NewReaderFromBytes(window[:n])
					err = thrift.NewDecoder(r).Decode(&h)
					if err == nil {
						headerLen = r.BytesRead()
						break
					}
					if n < w || w >= maxPageBytes {
						return corrupt(g, c, "page header at offset %d: %v", pos, err)
					}
				}
				values := int64(0)
				switch {
				case h.DataPageHeader.Valid:
					values = int64(h.DataPageHeader.V.NumValues)
				case h.DataPageHeaderV2.Valid:
					values = int64(h.DataPageHeaderV2.V.NumValues)
				case h.DictionaryPageHeader.Valid:
					values = int64(h.DictionaryPageHeader.V.NumValues)
				}
				switch {
				case h.CompressedPageSize < 0 || int64(h.CompressedPageSize) > end-pos-int64(headerLen):
					return corrupt(g, c, "page at offset %d runs past its column chunk", pos)
				case h.UncompressedPageSize < 0 || h.UncompressedPageSize > maxPageBytes || h.CompressedPageSize > maxPageBytes:
					return corrupt(g, c, "page at offset %d: size over the %d-byte bound", pos, maxPageBytes)
				case values < 0 || values > maxPageValues:
					return corrupt(g, c, "page at offset %d: %d values, over the bound of %d", pos, values, maxPageValues)
				}
				pos += int64(headerLen) + int64(h.CompressedPageSize)
			}
		}
	}
	return nil
}

func recoverCorrupt(err *error, row int64) {
	if p := recover(); p != nil {
		*err = &ParseError{Row: row, Msg: fmt.Sprintf("corrupt Parquet file: %v", p)}
	}
}

// parquetError tells a failing file read from a bad file.
func parquetError(err error, row int64, prefix string) error {
	var se *sourceError
	if errors.As(err, &se) {
		return fmt.Errorf("read parquet: %w", se.err)
	}
	return &ParseError{Row: row, Msg: prefix + err.Error()}
}

type sourceReaderAt struct {
	ra   io.ReaderAt
	size int64
}

func (s sourceReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > s.size {
		// A corrupt file points outside itself.
		return 0, fmt.Errorf("read at offset %d of a %d-byte file", off, s.size)
	}
	n, err := s.ra.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// renderer picks how a column's values become text, from its logical type
// or, without one, its physical type.
func renderer(column string, t parquet.Type, o Options) (renderFunc, error) {
	text := func(v parquet.Value) (string, error) {
		b := v.ByteArray()
		switch {
		case len(b) > o.MaxFieldBytes:
			return "", fmt.Errorf("field longer than %d bytes", o.MaxFieldBytes)
		case !utf8.Valid(b):
			return "", errors.New("binary value, not UTF-8 text: only text byte arrays are accepted")
		case strings.IndexByte(string(b), 0) >= 0:
			return "", errors.New("NUL byte in a text value")
		}
		return string(b), nil
	}
	unsupported := func(what string) (renderFunc, error) {
		return nil, &ParseError{Column: column, Msg: fmt.Sprintf("unsupported Parquet type %s", what)}
	}

	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		switch lt := lt.Value.(type) {
		case *format.StringType, *format.EnumType, *format.JsonType:
			return text, nil
		case *format.DateType:
			return func(v parquet.Value) (string, error) {
				return time.Unix(int64(v.Int32())*86400, 0).UTC().Format(time.DateOnly), nil
			}, nil
		case *format.TimestampType:
			unit := lt.Unit.Value
			if unit == nil {
				return unsupported(lt.String())
			}
			layout := "2006-01-02 15:04:05.999999999"
			if lt.IsAdjustedToUTC {
				layout = time.RFC3339Nano
			}
			return func(v parquet.Value) (string, error) {
				return fromUnit(v.Int64(), unit.Duration()).Format(layout), nil
			}, nil
		case *format.TimeType:
			unit := lt.Unit.Value
			if unit == nil {
				return unsupported(lt.String())
			}
			return func(v parquet.Value) (string, error) {
				n := v.Int64()
				if t.Kind() == parquet.Int32 {
					n = int64(v.Int32())
				}
				return time.Unix(0, 0).UTC().Add(time.Duration(n) * unit.Duration()).Format("15:04:05.999999999"), nil
			}, nil
		case *format.IntType:
			if !lt.IsSigned {
				return func(v parquet.Value) (string, error) {
					if t.Kind() == parquet.Int32 {
						return strconv.FormatUint(uint64(v.Uint32()), 10), nil
					}
					return strconv.FormatUint(v.Uint64(), 10), nil
				}, nil
			}
		case *format.DecimalType:
			scale := int(lt.Scale)
			return func(v parquet.Value) (string, error) {
				var unscaled big.Int
				switch t.Kind() {
				case parquet.Int32:
					unscaled.SetInt64(int64(v.Int32()))
				case parquet.Int64:
					unscaled.SetInt64(v.Int64())
				default:
					twosComplement(&unscaled, v.ByteArray())
				}
				return formatDecimal(&unscaled, scale), nil
			}, nil
		case *format.UUIDType:
			return func(v parquet.Value) (string, error) {
				b := v.ByteArray()
				if len(b) != 16 {
					return "", fmt.Errorf("UUID of %d bytes, want 16", len(b))
				}
				h := hex.EncodeToString(b)
				return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
			}, nil
		case *format.NullType:
			return func(parquet.Value) (string, error) { return "", nil }, nil
		default:
			return unsupported(lt.String())
		}
	}

	switch t.Kind() {
	case parquet.Boolean:
		return func(v parquet.Value) (string, error) { return strconv.FormatBool(v.Boolean()), nil }, nil
	case parquet.Int32:
		return func(v parquet.Value) (string, error) { return strconv.FormatInt(int64(v.Int32()), 10), nil }, nil
	case parquet.Int64:
		return func(v parquet.Value) (string, error) { return strconv.FormatInt(v.Int64(), 10), nil }, nil
	case parquet.Int96:
		// Legacy timestamps (Impala, older Spark): nanoseconds in the day,
		// then the Julian day.
		return func(v parquet.Value) (string, error) {
			b := v.Bytes()
			if len(b) != 12 {
				return "", fmt.Errorf("INT96 of %d bytes, want 12", len(b))
			}
			nanos := int64(binary.LittleEndian.Uint64(b[:8]))
			day := int64(binary.LittleEndian.Uint32(b[8:]))
			const unixEpochJulianDay = 2440588
			return time.Unix((day-unixEpochJulianDay)*86400, nanos).UTC().Format(time.RFC3339Nano), nil
		}, nil
	case parquet.Float:
		return func(v parquet.Value) (string, error) { return formatFloat32(v.Float()), nil }, nil
	case parquet.Double:
		return func(v parquet.Value) (string, error) { return formatFloat(v.Double()), nil }, nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return text, nil
	}
	return unsupported(t.String())
}

func fromUnit(n int64, unit time.Duration) time.Time {
	switch unit {
	case time.Millisecond:
		return time.UnixMilli(n).UTC()
	case time.Microsecond:
		return time.UnixMicro(n).UTC()
	}
	return time.Unix(0, n).UTC()
}

// twosComplement sets z to the big-endian two's complement integer in b.
func twosComplement(z *big.Int, b []byte) {
	z.SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		z.Sub(z, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
}

// formatDecimal writes unscaled × 10^-scale in plain digits, keeping the
// scale's trailing zeros ("123.40").
func formatDecimal(unscaled *big.Int, scale int) string {
	s := unscaled.String()
	if scale <= 0 {
		return s
	}
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	return sign + s[:len(s)-scale] + "." + s[len(s)-scale:]
}

// formatFloat32 is formatFloat for a float32: the shortest text that reads
// back to the same float32 ("0.1", not "0.10000000149011612").
func formatFloat32(f float32) string {
	g := float64(f)
	switch {
	case g == 0:
		return "0"
	case g == math.Trunc(g) && math.Abs(g) < 1e21:
		return strconv.FormatFloat(g, 'f', -1, 32)
	}
	return strconv.FormatFloat(g, 'g', -1, 32)
}
