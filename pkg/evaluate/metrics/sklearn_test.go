package metrics

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// sklearnScript computes, for each case on stdin, what the package should report.
const sklearnScript = `
import json, sys, warnings
import numpy as np
from sklearn import metrics as M
from sklearn.calibration import calibration_curve
warnings.simplefilter("ignore")

def binary(c):
    y = np.array(c["y"]); p = np.array(c["p"], dtype=np.float64)
    yp = (p >= c["threshold"]).astype(int)
    fpr, tpr, roc_thr = M.roc_curve(y, p)
    prec, rec, pr_thr = M.precision_recall_curve(y, p)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=c["bins"], strategy="uniform")
    edges = np.linspace(0.0, 1.0, c["bins"] + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=c["bins"])
    counts = counts[counts != 0]
    return {
        "accuracy": M.accuracy_score(y, yp),
        "precision": M.precision_score(y, yp, zero_division=0),
        "recall": M.recall_score(y, yp, zero_division=0),
        "f1": M.f1_score(y, yp, zero_division=0),
        "auc": M.roc_auc_score(y, p),
        "pr_auc": M.average_precision_score(y, p),
        "log_loss": M.log_loss(y, p),
        "brier": M.brier_score_loss(y, p),
        "ece": float(np.sum(counts / len(y) * np.abs(prob_true - prob_pred))),
        "confusion": M.confusion_matrix(y, yp, labels=[0, 1]).tolist(),
        "roc": [fpr.tolist(), tpr.tolist(), roc_thr.tolist()],
        "pr": [prec.tolist(), rec.tolist(), pr_thr.tolist()],
        "calibration": [prob_pred.tolist(), prob_true.tolist(), counts.tolist()],
    }

def multiclass(c):
    y = np.array(c["y"]); P = np.array(c["probs"], dtype=np.float64)
    labels = list(range(P.shape[1]))
    yp = np.argmax(P, axis=1)
    pr, rc, f1, sup = M.precision_recall_fscore_support(y, yp, labels=labels, zero_division=0)
    return {
        "accuracy": M.accuracy_score(y, yp),
        "macro_precision": M.precision_score(y, yp, labels=labels, average="macro", zero_division=0),
        "macro_recall": M.recall_score(y, yp, labels=labels, average="macro", zero_division=0),
        "macro_f1": M.f1_score(y, yp, labels=labels, average="macro", zero_division=0),
        "log_loss": M.log_loss(y, P, labels=labels),
        "auc": M.roc_auc_score(y, P, multi_class="ovr", labels=labels),
        "per_class": [pr.tolist(), rc.tolist(), f1.tolist(), sup.tolist()],
        "confusion": M.confusion_matrix(y, yp, labels=labels).tolist(),
    }

def regression(c):
    y = np.array(c["y"], dtype=np.float64); p = np.array(c["pred"], dtype=np.float64)
    return {
        "rmse": M.mean_squared_error(y, p, squared=False),
        "mae": M.mean_absolute_error(y, p),
        "r2": M.r2_score(y, p),
        "mape": M.mean_absolute_percentage_error(y, p),
    }

out = []
for c in json.load(sys.stdin):
    out.append({"binary": binary, "multiclass": multiclass, "regression": regression}[c["kind"]](c))
json.dump(out, sys.stdout)
`

// sklearnCase is one input for sklearnScript; Kind picks the fields that matter.
type sklearnCase struct {
	Kind      string      `json:"kind"`
	Y         any         `json:"y"`
	P         []float64   `json:"p,omitempty"`
	Threshold float64     `json:"threshold"`
	Bins      int         `json:"bins"`
	Probs     [][]float64 `json:"probs,omitempty"`
	Pred      []float64   `json:"pred,omitempty"`
}

type sklearnResult struct {
	Accuracy       float64     `json:"accuracy"`
	Precision      float64     `json:"precision"`
	Recall         float64     `json:"recall"`
	F1             float64     `json:"f1"`
	Auc            float64     `json:"auc"`
	PRAuc          float64     `json:"pr_auc"`
	LogLoss        float64     `json:"log_loss"`
	Brier          float64     `json:"brier"`
	ECE            float64     `json:"ece"`
	MacroPrecision float64     `json:"macro_precision"`
	MacroRecall    float64     `json:"macro_recall"`
	MacroF1        float64     `json:"macro_f1"`
	RMSE           float64     `json:"rmse"`
	MAE            float64     `json:"mae"`
	R2             float64     `json:"r2"`
	MAPE           float64     `json:"mape"`
	Confusion      [][]int64   `json:"confusion"`
	ROC            [][]float64 `json:"roc"`         // fpr, tpr, thresholds
	PR             [][]float64 `json:"pr"`          // precision, recall, thresholds
	Calibration    [][]float64 `json:"calibration"` // mean predicted, fraction positive, count
	PerClass       [][]float64 `json:"per_class"`   // precision, recall, f1, support
}

// runSklearn evaluates cases with scikit-learn, skipping the test when no Python has it.
func runSklearn(t *testing.T, cases []sklearnCase) []sklearnResult {
	t.Helper()
	python := ""
	for _, candidate := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(candidate, "-c", "import sklearn").Run() == nil {
			python = candidate
			break
		}
	}
	if python == "" {
		t.Skip("no python3 with scikit-learn (apt-get install python3-sklearn); cannot compare metrics with it")
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", sklearnScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scikit-learn script: %v\n%s", err, stderr.String())
	}
	var results []sklearnResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decode scikit-learn output: %v", err)
	}
	if len(results) != len(cases) {
		t.Fatalf("scikit-learn returned %d results for %d cases", len(results), len(cases))
	}
	return results
}
