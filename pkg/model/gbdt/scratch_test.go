package gbdt

import (
	"testing"
)

func TestScratch(t *testing.T) {
	te := asFloat32(synthBinary(100_000, 28, 0, 2))
	tr := synthBinary(1_000_000, 28, 0, 1)
	for seed := range 3 {
		s := binarySpec
		s.Params.Seed = uint64(seed)
		m := fit(t, s, tr, te)
		t.Logf("seed=%v auc %.4f best %v", seed, AUC(predict(t, m, te), te.Y), m.file.BestScore)
	}
}
