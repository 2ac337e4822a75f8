package sketch

import "math"

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// HashString is FNV-1a 64 of s followed by the murmur3 finaliser: FNV alone
// mixes its high bits poorly, and HyperLogLog reads the high bits first.
// It is fixed across processes and Go versions, unlike hash/maphash.
func HashString(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

// HashFloat hashes a float64 by its bits, with -0 folded into +0 so equal
// numbers hash equally.
func HashFloat(x float64) uint64 {
	if x == 0 {
		x = 0
	}
	return mix64(math.Float64bits(x) ^ fnvOffset64)
}

// mix64 is murmur3's fmix64: a bijection in which every input bit flips
// each output bit with probability about one half.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// splitmix64 is the KLL coin: tiny state, so it serialises with the sketch
// and a decoded sketch flips the same coins as the one that was saved.
func splitmix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
