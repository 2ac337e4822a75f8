package tabular

import (
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"time"
)

// ColumnType is the type of a column's values; the names are those of
// pipeline.ColumnTypes.
type ColumnType string

const (
	Int       ColumnType = "int"
	Float     ColumnType = "float"
	Bool      ColumnType = "bool"
	Timestamp ColumnType = "timestamp"
	String    ColumnType = "string"
	// Category is a string column of few distinct values.
	Category ColumnType = "category"
)

// Schema is the columns of a dataset, in file order.
type Schema struct {
	Columns []SchemaColumn `json:"columns"`
}

type SchemaColumn struct {
	Name string     `json:"name"`
	Type ColumnType `json:"type"`
	// Nullable: the column may hold nulls. An inferred schema says whether
	// any were seen.
	Nullable bool `json:"nullable"`
}

// Column returns the column named name.
func (s Schema) Column(name string) (SchemaColumn, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return SchemaColumn{}, false
}

// IsInt reports whether v is an int value: a base-10 integer that fits
// int64.
func IsInt(v string) bool {
	start := signLen(v)
	end := digitsEnd(v, start)
	if end == len(v) && end > start && end-start <= 18 {
		return true // at most 18 digits always fit int64
	}
	_, err := strconv.ParseInt(v, 10, 64)
	return err == nil
}

// isFloat is ParseFloat's ok, without the parse for plain decimals.
func isFloat(v string) bool {
	start := signLen(v)
	end := digitsEnd(v, start)
	digits := end - start
	if end < len(v) && v[end] == '.' {
		frac := end + 1
		end = digitsEnd(v, frac)
		digits += end - frac
	}
	if end == len(v) && digits > 0 && digits <= 300 {
		return true // [+-]digits[.digits]: in range, strconv accepts it
	}
	_, ok := ParseFloat(v)
	return ok
}

// signLen is the length of v's leading sign: 0 or 1.
func signLen(v string) int {
	if len(v) > 0 && (v[0] == '-' || v[0] == '+') {
		return 1
	}
	return 0
}

// digitsEnd is where the ASCII digits of v from i end.
func digitsEnd(v string, i int) int {
	for i < len(v) && v[i]-'0' <= 9 {
		i++
	}
	return i
}

// ParseFloat parses a float value: decimal digits with an optional
// fraction and exponent ("-1.5", "2e10"), or NaN, Inf, +Inf, -Inf as the
// readers write them. Hexadecimal and out-of-range numbers are refused.
func ParseFloat(v string) (float64, bool) {
	f, err := strconv.ParseFloat(v, 64)
	switch {
	case err != nil:
		return 0, false
	case math.IsNaN(f) || math.IsInf(f, 0):
		return f, v == "NaN" || v == "Inf" || v == "+Inf" || v == "-Inf"
	case isHex(v):
		return 0, false
	}
	return f, true
}

// isHex reports a hexadecimal float ("0x1p-2", "-0X10"), which strconv
// accepts and a dataset should not.
func isHex(v string) bool {
	if len(v) > 0 && (v[0] == '-' || v[0] == '+') {
		v = v[1:]
	}
	return len(v) > 1 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')
}

// ParseBool parses a bool value: "true" or "false", in any case.
func ParseBool(v string) (value, ok bool) {
	switch {
	case strings.EqualFold(v, "true"):
		return true, true
	case strings.EqualFold(v, "false"):
		return false, true
	}
	return false, false
}

// timestampLayouts are the accepted timestamp forms. Fractional seconds are
// accepted after the seconds of any layout that has them.
var timestampLayouts = []string{time.RFC3339Nano, time.DateOnly, time.DateTime}

// ParseTimestamp parses a timestamp value: RFC 3339 ("2024-05-01T10:00:00Z",
// with an offset), a date ("2024-05-01") or a date and time without a zone
// ("2024-05-01 10:00:00", read as UTC).
func ParseTimestamp(v string) (time.Time, bool) {
	// Every layout starts with a four-digit year and a dash: most
	// non-timestamps fail here, cheaply.
	if len(v) < len("2006-01-02") || v[4] != '-' {
		return time.Time{}, false
	}
	if len(v) == len("2006-01-02") {
		// The date-only form, read without time.Parse's layout walk: the
		// same checks, the same result.
		return parseDate(v)
	}
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseDate parses "2006-01-02" as time.Parse(time.DateOnly, v) does.
func parseDate(v string) (time.Time, bool) {
	year, ok1 := atoiFixed(v[0:4])
	month, ok2 := atoiFixed(v[5:7])
	day, ok3 := atoiFixed(v[8:10])
	if !ok1 || !ok2 || !ok3 || v[4] != '-' || v[7] != '-' || month < 1 || month > 12 || day < 1 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if t.Day() != day { // past the month's end: normalized into the next
		return time.Time{}, false
	}
	return t, true
}

// isTimestamp is ParseTimestamp's ok. The common forms (a date, and RFC
// 3339 with a T, seconds, an optional fraction and Z or an offset) are
// checked in place, as inference does for every value of a column; anything
// else goes through ParseTimestamp.
func isTimestamp(v string) bool {
	if len(v) < len("2006-01-02") || v[4] != '-' {
		return false
	}
	year, ok1 := atoiFixed(v[0:4])
	month, ok2 := atoiFixed(v[5:7])
	day, ok3 := atoiFixed(v[8:10])
	if !ok1 || !ok2 || !ok3 || v[7] != '-' || month < 1 || month > 12 || day < 1 || day > DaysIn(month, year) {
		return false
	}
	if len(v) == len("2006-01-02") {
		return true
	}
	if len(v) >= len("2006-01-02T15:04:05Z") && v[10] == 'T' && v[13] == ':' && v[16] == ':' {
		hour, ok4 := atoiFixed(v[11:13])
		minute, ok5 := atoiFixed(v[14:16])
		sec, ok6 := atoiFixed(v[17:19])
		rest := v[19:]
		if n := fractionDigits(rest); n > 0 && n <= 9 {
			rest = rest[1+n:]
		}
		if ok4 && ok5 && ok6 && hour <= 23 && minute <= 59 && sec <= 59 && isZone(rest) {
			return true
		}
	}
	_, ok := ParseTimestamp(v)
	return ok
}

// fractionDigits counts the digits of a ".123" prefix of s (0 without one).
func fractionDigits(s string) int {
	if s == "" || s[0] != '.' {
		return 0
	}
	n := 0
	for n+1 < len(s) && s[n+1] >= '0' && s[n+1] <= '9' {
		n++
	}
	return n
}

// isZone reports whether s is "Z" or an offset "+07:00" / "-07:00".
func isZone(s string) bool {
	if s == "Z" {
		return true
	}
	if len(s) != len("+07:00") || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return false
	}
	h, ok1 := atoiFixed(s[1:3])
	m, ok2 := atoiFixed(s[4:6])
	return ok1 && ok2 && h <= 23 && m <= 59
}

// DaysIn is the number of days of a month (1 to 12) in the Gregorian year.
func DaysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// atoiFixed parses a string of ASCII digits only.
func atoiFixed(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Accepts reports whether v is a value of type t, allowing the one widening
// a schema comparison calls compatible: an int column accepts float values.
// String and category columns accept any value.
func (t ColumnType) Accepts(v string) bool {
	switch t {
	case Int, Float:
		_, ok := ParseFloat(v)
		return ok
	case Bool:
		_, ok := ParseBool(v)
		return ok
	case Timestamp:
		_, ok := ParseTimestamp(v)
		return ok
	}
	return true
}

// Category bounds: a string column becomes a category when its distinct
// values number at most CategoryMaxDistinct and at most
// CategoryMaxFraction of its non-null values.
const (
	CategoryMaxDistinct = 50
	CategoryMaxFraction = 0.2
)

// Inferrer infers a schema from a stream of records, in one pass and in
// memory bounded by the number of columns (it keeps at most
// CategoryMaxDistinct+1 distinct values per column).
type Inferrer struct {
	header []string
	cols   []inferColumn
	seed   maphash.Seed
}

// Which types every non-null value seen so far still fits.
const (
	maybeInt = 1 << iota
	maybeFloat
	maybeBool
	maybeTimestamp
)

type inferColumn struct {
	maybe    uint8
	nulls    int64
	values   int64
	distinct *hashSet // nil once past CategoryMaxDistinct
}

// hashSet holds the 64-bit hashes of up to CategoryMaxDistinct+1 values,
// by open addressing: a lookup is one hash and a probe or two, where a map
// of strings costs several times more on every value of a column. Telling
// values apart by hash alone errs with odds about 50²/2⁶⁵: never, in
// practice, and only ever on the side of fewer categories.
type hashSet struct {
	slots [128]uint64 // 0 is free; a hash of 0 is stored as 1
	n     int
}

// add adds h and reports whether it was new.
func (s *hashSet) add(h uint64) bool {
	if h == 0 {
		h = 1
	}
	for i := h & 127; ; i = (i + 1) & 127 {
		switch s.slots[i] {
		case h:
			return false
		case 0:
			s.slots[i] = h
			s.n++
			return true
		}
	}
}

func NewInferrer(header []string) *Inferrer {
	in := &Inferrer{header: header, cols: make([]inferColumn, len(header)), seed: maphash.MakeSeed()}
	for i := range in.cols {
		in.cols[i] = inferColumn{maybe: maybeInt | maybeFloat | maybeBool | maybeTimestamp, distinct: &hashSet{}}
	}
	return in
}

// Observe takes one record's values; null may be nil when none is null.
func (in *Inferrer) Observe(values []string, null []bool) { in.ObserveN(values, null, 1) }

// ObserveN takes the same record n times, at the cost of one.
func (in *Inferrer) ObserveN(values []string, null []bool, n int64) {
	for i := range in.cols {
		c := &in.cols[i]
		if null != nil && null[i] {
			c.nulls += n
			continue
		}
		c.observe(values[i], n, in.seed)
	}
}

// ObserveValues takes values, none of them null, of column col: what
// Observe does with each of them, a column at a time.
func (in *Inferrer) ObserveValues(col int, values []string) {
	c := &in.cols[col]
	for _, v := range values {
		c.observe(v, 1, in.seed)
	}
}

func (c *inferColumn) observe(v string, n int64, seed maphash.Seed) {
	c.values += n
	if c.maybe&maybeInt != 0 && !IsInt(v) {
		c.maybe &^= maybeInt
	}
	if c.maybe&maybeFloat != 0 && c.maybe&maybeInt == 0 {
		if !isFloat(v) {
			c.maybe &^= maybeFloat
		}
	}
	if c.maybe&maybeBool != 0 {
		if _, ok := ParseBool(v); !ok {
			c.maybe &^= maybeBool
		}
	}
	if c.maybe&maybeTimestamp != 0 {
		if !isTimestamp(v) {
			c.maybe &^= maybeTimestamp
		}
	}
	if c.distinct != nil && c.distinct.add(maphash.String(seed, v)) && c.distinct.n > CategoryMaxDistinct {
		c.distinct = nil
	}
}

// Schema is the schema of the records observed so far. A column of nulls
// only is a nullable string.
func (in *Inferrer) Schema() Schema {
	s := Schema{Columns: make([]SchemaColumn, len(in.cols))}
	for i, c := range in.cols {
		t := String
		switch {
		case c.values == 0:
		case c.maybe&maybeInt != 0:
			t = Int
		case c.maybe&maybeFloat != 0:
			t = Float
		case c.maybe&maybeBool != 0:
			t = Bool
		case c.maybe&maybeTimestamp != 0:
			t = Timestamp
		case c.distinct != nil && float64(c.distinct.n) <= CategoryMaxFraction*float64(c.values):
			t = Category
		}
		s.Columns[i] = SchemaColumn{Name: in.header[i], Type: t, Nullable: c.nulls > 0}
	}
	return s
}
