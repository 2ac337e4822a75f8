package gbdt

import (
	"sync"
	"sync/atomic"
)

// parallelFor runs fn(0..n-1) on up to threads goroutines. Callers make
// each fn(i) write only its own outputs, so results do not depend on which
// goroutine ran what.
func parallelFor(n, threads int, fn func(i int)) {
	if threads <= 1 || n <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(threads, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
