"""The scipy side of pkg/drift's BenchmarkDrift (bench_test.go).

Reads the data Go wrote and times, per feature, only the computation:
numeric features: scipy.stats.ks_2samp (method='auto', which is asymptotic
at these sizes) + scipy.stats.wasserstein_distance + PSI with numpy on the
reference's bins; categorical features: counting the window's values
(numpy.unique) + scipy.stats.chi2_contingency + jensenshannon against the
reference's counts, counted beforehand as Go's reference sketch is.

Usage: scipy_bench.py DIR ROWS NUMERIC CATEGORICAL
DIR holds ref.f64 and win.f64 (NUMERIC features of ROWS little-endian
float64 values each, feature after feature), edges.json, and for each
categorical feature c: cat<c>.txt (the window's values, one a line) and
cat<c>_ref.json (the reference's counts). Writes DIR/scipy.json.
"""
import json
import os
import sys
import time

import numpy as np
from scipy import stats
from scipy.spatial import distance

PSI_EPSILON = 1e-4


def psi(ref, cur, edges):
    def shares(x):
        return np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1) / len(x)
    p = np.maximum(shares(ref), PSI_EPSILON)
    q = np.maximum(shares(cur), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def main():
    d, rows, numeric, categorical = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ref = np.fromfile(os.path.join(d, "ref.f64"), dtype="<f8").reshape(numeric, rows)
    win = np.fromfile(os.path.join(d, "win.f64"), dtype="<f8").reshape(numeric, rows)
    with open(os.path.join(d, "edges.json")) as f:
        edges = [np.array(e) for e in json.load(f)]
    out = {"scipy": __import__("scipy").__version__, "numeric": [], "categorical": []}
    for i in range(numeric):
        t0 = time.perf_counter()
        ks = stats.ks_2samp(ref[i], win[i])
        w = stats.wasserstein_distance(ref[i], win[i])
        p = psi(ref[i], win[i], edges[i])
        secs = time.perf_counter() - t0
        out["numeric"].append({"seconds": secs, "ks": float(ks.statistic), "p": float(ks.pvalue),
                               "wasserstein": float(w), "psi": p})
    for c in range(categorical):
        with open(os.path.join(d, f"cat{c}.txt")) as f:
            values = np.array(f.read().split("\n"))
        with open(os.path.join(d, f"cat{c}_ref.json")) as f:
            ref_counts = json.load(f)
        t0 = time.perf_counter()
        cv, cc = np.unique(values, return_counts=True)
        allv = sorted(set(ref_counts) | set(cv.tolist()))
        index = {v: i for i, v in enumerate(allv)}
        table = np.zeros((2, len(allv)))
        for v, n in ref_counts.items():
            table[0, index[v]] = n
        for v, n in zip(cv.tolist(), cc.tolist()):
            table[1, index[v]] = n
        chi = stats.chi2_contingency(table)
        js = distance.jensenshannon(table[0], table[1])
        secs = time.perf_counter() - t0
        out["categorical"].append({"seconds": secs, "chi2": float(chi[0]), "js": float(js)})
    with open(os.path.join(d, "scipy.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
