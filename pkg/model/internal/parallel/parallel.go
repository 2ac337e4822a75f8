// Package parallel spreads fixed-size chunks of an index range across the
// machine's cores.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Count is how many chunks of size cover n items.
func Count(n, size int) int {
	if n <= 0 {
		return 0
	}
	return (n + size - 1) / size
}

// Chunks calls fn(chunk, lo, hi) for each chunk [lo, hi) of size items
// covering [0, n), on up to GOMAXPROCS goroutines, and waits. The chunks do
// not depend on the number of cores, so a caller that keeps one partial
// result per chunk and reduces them in chunk order gets the same floating
// point result on any machine.
func Chunks(n, size int, fn func(chunk, lo, hi int)) {
	count := Count(n, size)
	workers := min(runtime.GOMAXPROCS(0), count)
	if workers <= 1 {
		for c := range count {
			fn(c, c*size, min((c+1)*size, n))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				c := int(next.Add(1) - 1)
				if c >= count {
					return
				}
				fn(c, c*size, min((c+1)*size, n))
			}
		})
	}
	wg.Wait()
}

// Sum adds up per-chunk partial results: fn fills partial (zeroed, len(acc)
// long) from the items [lo, hi), and the partials are added into acc
// (zeroed first) in chunk order, so the sum is the same on any machine.
// Chunks run GOMAXPROCS at a time, one partial buffer each, so memory stays
// at GOMAXPROCS × len(acc) whatever n is.
func Sum(n, size int, acc []float64, fn func(lo, hi int, partial []float64)) {
	clear(acc)
	count := Count(n, size)
	workers := max(min(runtime.GOMAXPROCS(0), count), 1)
	bufs := make([][]float64, workers)
	for w := range bufs {
		bufs[w] = make([]float64, len(acc))
	}
	for first := 0; first < count; first += workers {
		batch := min(workers, count-first)
		var wg sync.WaitGroup
		for w := range batch {
			c := first + w
			wg.Go(func() {
				clear(bufs[w])
				fn(c*size, min((c+1)*size, n), bufs[w])
			})
		}
		wg.Wait()
		for w := range batch {
			for j, v := range bufs[w] {
				acc[j] += v
			}
		}
	}
}
