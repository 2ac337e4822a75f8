"""Reference values for pkg/drift's scipy equivalence test (scipy_test.go).

Reads the cases Go wrote (JSON), computes every statistic with scipy/numpy,
writes the results (JSON). Usage: scipy_drift.py IN.json OUT.json
"""
import json
import sys
import warnings

import numpy as np
from scipy import stats
from scipy.spatial import distance


def psi(ref, cur, edges, eps):
    def shares(x):
        idx = np.searchsorted(edges, x, side="left")
        return np.bincount(idx, minlength=len(edges) + 1) / len(x)
    p = np.maximum(shares(ref), eps)
    q = np.maximum(shares(cur), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def edges(ref, bins):
    qs = np.quantile(ref, np.arange(1, bins) / bins, method="inverted_cdf")
    out = []
    for e in qs:
        if not out or e > out[-1]:
            out.append(float(e))
    return out


def ks(a, b, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = stats.ks_2samp(a, b, method=method)
    return {"d": float(r.statistic), "p": float(r.pvalue)}


def chi2(ref, cur):
    table = np.array([ref, cur], dtype=float)
    table = table[:, table.sum(axis=0) > 0]  # scipy rejects all-zero columns
    r = stats.chi2_contingency(table)
    return {"stat": float(r[0]), "p": float(r[1]), "dof": int(r[2])}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {
        "scipy": __import__("scipy").__version__,
        "ks": [{m: ks(np.array(c["a"]), np.array(c["b"]), m) for m in ("exact", "asymp", "auto")}
               for c in cases["ks"]],
        "wasserstein": [float(stats.wasserstein_distance(c["u"], c["v"])) for c in cases["wasserstein"]],
        "psi": [{"edges": edges(np.array(c["ref"]), c["bins"]),
                 "psi": psi(np.array(c["ref"]), np.array(c["cur"]), np.array(c["edges"]), cases["psiEpsilon"])}
                for c in cases["psi"]],
        "chi2": [chi2(c["ref"], c["cur"]) for c in cases["chi2"]],
        "js": [float(distance.jensenshannon(c["p"], c["q"])) for c in cases["js"]],
        "kstwo": [float(stats.kstwo.sf(c["x"], c["n"])) for c in cases["kstwo"]],
        "chi2sf": [float(stats.chi2.sf(c["x"], c["dof"])) for c in cases["chi2sf"]],
    }
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
