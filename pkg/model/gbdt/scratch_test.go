package gbdt

import (
	"testing"
	"time"
)

func TestScratch(t *testing.T) {
	tr := synthBinary(1_000_000, 28, 0, 1)
	te := synthBinary(100_000, 28, 0, 2)
	for range 2 {
		start := time.Now()
		m := fit(t, binarySpec, tr, nil)
		t.Logf("train %v auc %.4f", time.Since(start), AUC(predict(t, m, te), te.Y))
		res := runXGBoost(t, xgboostPython(), t.TempDir(), false, tr, te, binarySpec.Params)
		t.Logf("xgb %.3fs auc %.4f", res.Seconds, AUC(res.Pred, te.Y))
	}
}
