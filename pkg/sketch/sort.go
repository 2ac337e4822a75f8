package sketch

import (
	"math"
	"slices"
)

// radixMin is the length from which sortFloats sorts by radix.
const radixMin = 128

// sortFloats sorts xs, finite numbers, in place; scratch is reused between
// calls and returned. A comparison sort of random numbers spends most of
// its time on mispredicted branches (about 50 ns a value for 512 of them),
// so longer runs are sorted by radix instead: by the top four bytes of keys
// that order like the numbers, then by an insertion sort that puts the
// values left with equal top bytes (within 2^-20 of each other) in order,
// a pass whose branches are mostly predicted right.
func sortFloats(xs []float64, scratch []uint64) []uint64 {
	if len(xs) < radixMin {
		slices.Sort(xs)
		return scratch
	}
	keys := slices.Grow(scratch[:0], 2*len(xs))[:2*len(xs)]
	src, dst := keys[:len(xs)], keys[len(xs):]
	var counts [4][256]uint32
	for i, x := range xs {
		// A negative number has all its bits flipped, a positive one its
		// sign bit: the keys then order as unsigned integers.
		k := math.Float64bits(x)
		k ^= uint64(int64(k)>>63) | 1<<63
		src[i] = k
		counts[0][byte(k>>32)]++
		counts[1][byte(k>>40)]++
		counts[2][byte(k>>48)]++
		counts[3][byte(k>>56)]++
	}
	for d := range 4 {
		shift := 32 + 8*d
		c := &counts[d]
		if c[byte(src[0]>>shift)] == uint32(len(xs)) {
			continue // every key has this byte: nothing moves
		}
		var sum uint32
		for b, n := range c {
			c[b] = sum
			sum += n
		}
		for _, k := range src {
			b := byte(k >> shift)
			dst[c[b]] = k
			c[b]++
		}
		src, dst = dst, src
	}
	// Keys with equal top bytes are left in input order: an insertion
	// sort orders them. Random numbers leave few such keys, side by side;
	// numbers very close to each other leave many, and past a budget of
	// moves a comparison sort takes over.
	moves := 0
	for i := 1; i < len(src); i++ {
		k, j := src[i], i
		for ; j > 0 && src[j-1] > k; j-- {
			src[j] = src[j-1]
		}
		src[j] = k
		if moves += i - j; moves > 4*len(src) {
			slices.Sort(src)
			break
		}
	}
	for i, k := range src {
		k ^= ^uint64(int64(k)>>63) | 1<<63
		xs[i] = math.Float64frombits(k)
	}
	return keys
}
