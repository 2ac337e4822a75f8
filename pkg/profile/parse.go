package profile

import (
	"math"
	"strconv"

	"github.com/gyreml/gyre/pkg/tabular"
)

// ParseBool reads the spellings of a boolean a CSV is likely to hold:
// true/false, t/f, 1/0, yes/no, y/n, in lower, Title or UPPER case.
func ParseBool(s string) (value, ok bool) {
	switch s {
	case "true", "True", "TRUE", "t", "T", "1", "yes", "Yes", "YES", "y", "Y":
		return true, true
	case "false", "False", "FALSE", "f", "F", "0", "no", "No", "NO", "n", "N":
		return false, true
	}
	return false, false
}

// ParseTimestamp reads s as an instant and returns it in Unix seconds
// (a float64 keeps microseconds for present-day dates). It accepts
//
//	2006-01-02                         (midnight UTC)
//	2006-01-02T15:04:05                (T, t or a space between date and time)
//	2006-01-02T15:04:05.123456789      (1 to 9 fraction digits)
//	... followed by Z, z or ±07:00     (no zone means UTC)
//
// which covers RFC 3339 and ISO 8601 as databases and pandas write them.
// It never allocates, unlike trying time.Parse layouts in turn.
func ParseTimestamp(s string) (float64, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > tabular.DaysIn(month, year) {
		return 0, false
	}
	var hour, minute, sec, nanos, offset int
	if rest := s[10:]; rest != "" {
		if len(rest) < 9 || (rest[0] != 'T' && rest[0] != 't' && rest[0] != ' ') || rest[3] != ':' || rest[6] != ':' {
			return 0, false
		}
		var ok4, ok5, ok6 bool
		hour, ok4 = digits(rest[1:3])
		minute, ok5 = digits(rest[4:6])
		sec, ok6 = digits(rest[7:9])
		if !ok4 || !ok5 || !ok6 || hour > 23 || minute > 59 || sec > 59 {
			return 0, false
		}
		rest = rest[9:]
		if rest != "" && rest[0] == '.' {
			n := 1
			for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				n++
			}
			frac, ok := digits(rest[1:n])
			if !ok || n-1 > 9 {
				return 0, false
			}
			for range 10 - n {
				frac *= 10
			}
			nanos = frac
			rest = rest[n:]
		}
		switch {
		case rest == "" || rest == "Z" || rest == "z":
		case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
			oh, ok7 := digits(rest[1:3])
			om, ok8 := digits(rest[4:6])
			if !ok7 || !ok8 || oh > 23 || om > 59 {
				return 0, false
			}
			offset = oh*3600 + om*60
			if rest[0] == '-' {
				offset = -offset
			}
		default:
			return 0, false
		}
	}
	unix := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - int64(offset)
	return float64(unix) + float64(nanos)/1e9, true
}

// daysFromCivil is the number of days from 1970-01-01 to the Gregorian date
// (Howard Hinnant's days_from_civil): what time.Date(...).Unix()/86400
// gives, without its normalisation, for the valid dates that reach it.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 { // 0000-01-01 to 0000-02-29: floor, not truncation
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12 // March is 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

// digits parses a non-empty run of ASCII digits.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
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

// pow10 holds the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseNumber is strconv.ParseFloat refusing NaN and ±Inf (a Numeric
// column's reading). Plain decimals of at most 15 digits, by far the most
// common values, skip strconv: their digits and power of ten are exact
// float64s, so one division rounds correctly, as strconv's own exact path.
func parseNumber(s string) (float64, bool) {
	i, neg := 0, false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		i, neg = 1, s[0] == '-'
	}
	var mant uint64
	start := i
	for ; i < len(s) && s[i]-'0' <= 9; i++ {
		mant = mant*10 + uint64(s[i]-'0')
	}
	digits, frac := i-start, 0
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for ; i < len(s) && s[i]-'0' <= 9; i++ {
			mant = mant*10 + uint64(s[i]-'0')
		}
		frac = i - start
		digits += frac
	}
	if i < len(s) || digits == 0 || digits > 15 {
		x, err := strconv.ParseFloat(s, 64)
		return x, err == nil && !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	x := float64(mant) / pow10[frac]
	if neg {
		x = -x
	}
	return x, true
}
