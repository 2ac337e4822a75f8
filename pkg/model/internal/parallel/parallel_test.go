package parallel

import (
	"runtime"
	"testing"
)

func TestSumSameOnAnyCoreCount(t *testing.T) {
	const n = 100_003
	sum := func() []float64 {
		acc := make([]float64, 2)
		Sum(n, 1000, acc, func(lo, hi int, part []float64) {
			for i := lo; i < hi; i++ {
				part[0] += 1 / float64(i+1)
				part[1]++
			}
		})
		return acc
	}
	prev := runtime.GOMAXPROCS(1)
	one := sum()
	runtime.GOMAXPROCS(max(prev, 4))
	many := sum()
	runtime.GOMAXPROCS(prev)
	if one[0] != many[0] || one[1] != n || many[1] != n {
		t.Errorf("one core %v, several %v", one, many)
	}
}

func TestChunksCoverEveryIndexOnce(t *testing.T) {
	seen := make([]int32, 10_001)
	Chunks(len(seen), 97, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			seen[i]++
		}
	})
	for i, s := range seen {
		if s != 1 {
			t.Fatalf("index %d seen %d times", i, s)
		}
	}
}
