package tabular

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

// Batch is a run of consecutive records held column by column, as
// ReadBatch fills it: for a caller that works on a column at a time.
//
// Its values are valid until the batch is read into again: ReadBatch
// reuses the memory that holds them (so that reading allocates nothing
// once the batch has grown to its work, which spares the garbage collector
// a file's worth of strings). A caller that keeps a value copies it
// (strings.Clone).
type Batch struct {
	// Len records are held, at most Cap.
	Len, Cap int
	// FirstRow is the row number of the first record; the others follow.
	FirstRow int64

	// values[j*stride+i] is column j's value in record i, and
	// null[j*stride+i] says whether it is null (the value is "" then).
	values []string
	null   []bool
	stride int
	// text is the records as CSVWriter writes them (canonical CSV lines),
	// for WriteBatch.
	text []byte
	// arena holds the bytes of the values of the lines read a block at a
	// time; reused from one read to the next.
	arena   []byte
	columns int
}

// NewBatch returns an empty batch for records of columns values, holding
// up to capacity of them.
func NewBatch(columns, capacity int) *Batch {
	// A column's values are stored apart from the next one's by a stride
	// that is not a multiple of 4 KiB: with one, the values of a record
	// all map to the same set of the CPU's cache, which then holds only
	// a few of them.
	stride := capacity
	if capacity*16%4096 == 0 {
		stride += 4
	}
	return &Batch{Cap: capacity, columns: columns, stride: stride, values: make([]string, columns*stride), null: make([]bool, columns*stride)}
}

// Column returns column j's values and null flags, one per record held. The
// strings are valid until the batch is read into again.
func (b *Batch) Column(j int) ([]string, []bool) {
	return b.values[j*b.stride : j*b.stride+b.Len], b.null[j*b.stride : j*b.stride+b.Len]
}

// Row returns record i's row number.
func (b *Batch) Row(i int) int64 { return b.FirstRow + int64(i) }

func (b *Batch) reset() {
	b.Len, b.FirstRow, b.text, b.arena = 0, 0, b.text[:0], b.arena[:0]
}

// keep copies block into the arena and returns it as a string: its bytes
// are not written again until the batch is reset. When the arena is full,
// a larger one takes over; the strings in the old one keep it alive until
// they go.
func (b *Batch) keep(block []byte) string {
	if len(block) == 0 {
		return ""
	}
	if cap(b.arena)-len(b.arena) < len(block) {
		b.arena = make([]byte, 0, max(2*cap(b.arena), len(block), 64<<10))
	}
	start := len(b.arena)
	b.arena = append(b.arena, block...)
	return unsafe.String(&b.arena[start], len(block))
}

// Add appends a record as a Reader returned it, the row after the last one
// held (ReadBatch fills a batch so; Add is for records from elsewhere). The
// batch must not be full.
func (b *Batch) Add(rec Record) {
	if b.Len == 0 {
		b.FirstRow = rec.Row
	}
	for j, v := range rec.Values {
		b.values[j*b.stride+b.Len] = v
		b.null[j*b.stride+b.Len] = rec.Null[j]
	}
	b.Len++
	if rec.plain {
		b.text = append(b.text, rec.canonical...)
		b.text = append(b.text, '\n')
	} else {
		b.text = appendCSVRecord(b.text, rec.Values, rec.Null)
	}
}

// ReadBatch reads the next records of r into b, up to b.Cap of them,
// replacing what b held. It returns io.EOF, with b.Len zero, after the last
// record, and a reader's error as Next does (b's content is then
// undefined). Records of b's width only: b must have been made for r's
// header.
//
// A CSV reader fills the batch from its read buffer a block of lines at a
// time: a line without quotes, carriage returns (but a line end's) or
// anything else the record-by-record path must look at is split in one
// pass over the block, its values slices of the block's bytes copied into
// the batch's memory. Other lines, and other formats, go through Next.
func ReadBatch(r Reader, b *Batch) error {
	if len(r.Header()) != b.columns {
		return errors.New("read batch: the batch is not as wide as the reader's records")
	}
	if b.Cap < 1 {
		return errors.New("read batch: the batch holds no record")
	}
	b.reset()
	cr, _ := r.(*csvReader)
	// After two lines in a row that need Next, the rest of the batch goes
	// through Next: a file of quoted lines does not pay for looking.
	misses := 0
	for b.Len < b.Cap {
		if cr != nil && misses < 2 {
			if cr.readPlain(b) > 0 {
				misses = 0
				continue
			}
			misses++
		}
		rec, err := r.Next()
		if err == io.EOF {
			if b.Len == 0 {
				return io.EOF
			}
			return nil
		}
		if err != nil {
			return err
		}
		b.Add(rec)
	}
	return nil
}

// readPlain adds to b the records of the complete lines in the read buffer
// up to the first one that needs Next: one with a quote, a carriage return
// other than a line end's, a NUL byte or invalid UTF-8, the wrong number of
// fields, or a field or line over the limits. It returns how many records
// it added.
func (r *csvReader) readPlain(b *Batch) int {
	buf, _ := r.lr.br.Peek(r.lr.br.Buffered())
	// The next line first: when it needs Next, looking further (a whole
	// buffer for a file with quotes in most lines) would be wasted.
	first := bytes.IndexByte(buf, '\n') + 1
	if first == 0 || plainPrefix(buf[:first]) == 0 {
		return 0
	}
	block := buf[:bytes.LastIndexByte(buf, '\n')+1]
	block = block[:plainPrefix(block)]
	// No more lines than the batch has room for.
	end := 0
	for n := b.Len; n < b.Cap && end < len(block); n++ {
		end += bytes.IndexByte(block[end:], '\n') + 1
	}
	block = block[:end]

	s := b.keep(block) // the values' bytes, in the batch's reused memory
	cols, maxField, maxLine := len(r.header), r.opts.MaxFieldBytes, r.opts.MaxRecordBytes
	row, col := b.Len, 0
	fieldStart, lineStart, textStart, lines := 0, 0, 0, 0
	if row == 0 {
		b.FirstRow = r.row + 1
	}
	var tail [8]byte
scan:
	for base := 0; base < len(block); base += 8 {
		var w uint64
		if base+8 <= len(block) {
			w = binary.LittleEndian.Uint64(block[base:])
		} else {
			copy(tail[:], block[base:]) // zero bytes are neither commas nor line feeds
			w = binary.LittleEndian.Uint64(tail[:])
		}
		eol := zeroBytes(w ^ lineFeeds)
		seps := zeroBytes(w^commas) | eol
		for seps != 0 {
			bit := bits.TrailingZeros64(seps)
			seps &= seps - 1
			i := base + bit/8
			atEOL := eol&(0x80<<(bit&^7)) != 0
			crlf := atEOL && i > lineStart && block[i-1] == '\r'
			fieldEnd := i
			if crlf {
				fieldEnd-- // the line's carriage return is not the value's
			}
			if col == cols || fieldEnd-fieldStart > maxField {
				break scan // too many fields, or a long one: Next says which
			}
			b.values[col*b.stride+row] = s[fieldStart:fieldEnd]
			b.null[col*b.stride+row] = fieldEnd == fieldStart
			col++
			fieldStart = i + 1
			if !atEOL {
				continue
			}
			switch {
			case fieldEnd-lineStart > maxLine:
				break scan
			case fieldEnd == lineStart && cols > 1:
				// A blank line: skipped, and not written.
				b.text = append(b.text, block[textStart:lineStart]...)
				textStart = i + 1
			case col != cols:
				break scan // too few fields: Next says so
			default:
				row++
				if crlf {
					// The canonical line ends with a line feed alone.
					b.text = append(append(b.text, block[textStart:i-1]...), '\n')
					textStart = i + 1
				}
			}
			col, lineStart = 0, i+1
			lines++
		}
	}
	b.text = append(b.text, block[textStart:lineStart]...)
	r.lr.br.Discard(lineStart)
	r.lr.line += int64(lines)
	added := row - b.Len
	r.row += int64(added)
	b.Len = row
	return added
}

const (
	lowBits   = 0x0101010101010101
	highBits  = 0x8080808080808080
	commas    = lowBits * ','
	lineFeeds = lowBits * '\n'
)

// zeroBytes sets the high bit of each byte of the result where x has a
// zero byte, and no other bit.
func zeroBytes(x uint64) uint64 {
	return ^((x&^highBits + ^uint64(highBits)) | x) & highBits
}

// plainPrefix is the length of the whole lines at the start of block (which
// ends with a line feed) that have no quote, NUL byte or carriage return
// (but the one of a "\r\n" line end), and are valid UTF-8.
func plainPrefix(block []byte) int {
	n := len(block)
	for _, c := range []byte{'"', 0} {
		if i := bytes.IndexByte(block[:n], c); i >= 0 {
			n = i
		}
	}
	for i := 0; i < n; i += 2 {
		j := bytes.IndexByte(block[i:n], '\r')
		if j < 0 {
			break
		}
		if i += j; block[i+1] != '\n' { // block ends with a line feed: i+1 is in it
			n = i
			break
		}
	}
	if !utf8.Valid(block[:n]) {
		// Up to the first byte outside ASCII, where the invalid part may
		// start: Next's check names the column.
		i := 0
		for i < n && block[i] < utf8.RuneSelf {
			i++
		}
		n = i
	}
	return bytes.LastIndexByte(block[:n], '\n') + 1
}
