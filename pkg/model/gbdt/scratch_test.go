package gbdt

import (
	"testing"
	"time"
)

func TestScratch(t *testing.T) {
	tr := synthBinary(1_000_000, 28, 0, 1)
	for range 2 {
		start := time.Now()
		train(t, binarySpec, tr, nil)
		t.Logf("train %v", time.Since(start))
	}
}
