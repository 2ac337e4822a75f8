package ingestion

import "strings"

// dictionary holds the distinct values a column remembers, by index, and
// finds a value among them. Most values of real data are small numbers or
// a few categories, and are found without hashing the string:
//
//   - 1 to 4 digits (ages, codes, years): at a slot computed from the
//     digits (shortNumberSlot), once the column has such a value;
//   - among six values or fewer: by comparing them in turn;
//   - anything else: in a map.
type dictionary struct {
	values []string // by index
	short  []int32  // index + 1 by shortNumberSlot, once a value has one
	strs   map[string]int32
	// copies holds the values one after the other: a value must not keep
	// the block of the file it was read from alive, and together they stay
	// in cache better than copies each on its own.
	copies strings.Builder
	bytes  int // of the values
}

// smallDictionary is the most values that find compares one by one: fewer
// than a map lookup costs, as most short values differ in length.
const smallDictionary = 6

func newDictionary() *dictionary {
	return &dictionary{strs: map[string]int32{}}
}

// find returns the index of v.
func (d *dictionary) find(v string) (int32, bool) {
	// Without a short number remembered, none is looked up this way: the
	// test would cost the columns of other values.
	if d.short != nil {
		if slot := shortNumberSlot(v); slot >= 0 {
			k := d.short[slot] - 1
			return k, k >= 0
		}
	}
	if len(d.values) <= smallDictionary {
		for k, w := range d.values {
			if w == v {
				return int32(k), true
			}
		}
		return 0, false
	}
	k, ok := d.strs[v]
	return k, ok
}

// add remembers v, which find did not find, and returns its copy and index.
func (d *dictionary) add(v string) (string, int32) {
	start := d.copies.Len()
	d.copies.WriteString(v)
	// The builder only appends: the bytes of the strings it returned never
	// change.
	v = d.copies.String()[start:]
	k := int32(len(d.values))
	d.values = append(d.values, v)
	d.bytes += len(v)
	if slot := shortNumberSlot(v); slot >= 0 {
		if d.short == nil {
			d.short = make([]int32, shortNumberSlots)
		}
		d.short[slot] = k + 1
	} else {
		d.strs[v] = k
	}
	return v, k
}

// shortNumberSlot is v's place among the values of 1 to 4 ASCII digits
// ("7", "042", "1987"), or -1 for any other value. It is computed from the
// digits and the length ("042" is not "42").
func shortNumberSlot(v string) int {
	if len(v) == 0 || len(v) > 4 {
		return -1
	}
	x := 0
	for i := 0; i < len(v); i++ {
		d := v[i] - '0'
		if d > 9 {
			return -1
		}
		x = x*10 + int(d)
	}
	return shortNumberBase[len(v)] + x
}

// shortNumberBase is where the values of each length start: 10 of one
// digit, 100 of two, and so on.
var shortNumberBase = [5]int{0, 0, 10, 110, 1110}

const shortNumberSlots = 11110
