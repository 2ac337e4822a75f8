"""Fits scikit-learn's LogisticRegression or Ridge on a CSV with the same
preprocessing as Gyre's linear models, for the Go tests to compare against.

Usage: sklearn_fit.py CONFIG.json; prints JSON on stdout.
Config: csv, target, numeric, categorical, model ("logistic" or "ridge"),
l2, tol, max_iter, max_categories.

Preprocessing, as Gyre's: numeric z = (x - mean) / std over the non-missing
values (population std, 1 when 0), missing -> 0; categorical one-hot over the
max_categories most frequent values (ties by value) plus an "other" column,
missing -> all zeros. Regularisation: LogisticRegression(C = 1 / l2),
Ridge(alpha = l2); both leave the intercept unpenalised.
"""
import csv
import json
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

cfg = json.load(open(sys.argv[1]))
with open(cfg["csv"], newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    rows = list(reader)
col = {name: [row[i] for row in rows] for i, name in enumerate(header)}

names, blocks = [], []
for name in cfg["numeric"]:
    v = np.array([float(s) if s != "" else np.nan for s in col[name]])
    ok = ~np.isnan(v)
    mean, std = v[ok].mean(), v[ok].std()
    if std == 0:
        std = 1.0
    blocks.append(np.where(ok, (v - mean) / std, 0.0)[:, None])
    names.append(name)
for name in cfg["categorical"]:
    vals = col[name]
    counts = {}
    for s in vals:
        if s != "":
            counts[s] = counts.get(s, 0) + 1
    vocab = sorted(counts, key=lambda s: (-counts[s], s))[: cfg["max_categories"]]
    for s in vocab:
        blocks.append(np.array([1.0 if v == s else 0.0 for v in vals])[:, None])
        names.append(name + "=" + s)
    known = set(vocab)
    blocks.append(np.array([1.0 if v != "" and v not in known else 0.0 for v in vals])[:, None])
    names.append(name + "=<other>")
X = np.hstack(blocks)

out = {"names": names}
if cfg["model"] == "logistic":
    y = np.array(col[cfg["target"]])
    multi_class = "multinomial" if len(set(y)) > 2 else "auto"
    m = LogisticRegression(
        C=1.0 / cfg["l2"], tol=cfg["tol"], max_iter=cfg["max_iter"], multi_class=multi_class, solver=cfg.get("solver", "lbfgs")
    )
    start = time.perf_counter()
    m.fit(X, y)
    out["seconds"] = time.perf_counter() - start
    out["classes"] = [str(c) for c in m.classes_]
    out["proba"] = m.predict_proba(X).tolist()
    p = np.clip(out["proba"], 1e-15, 1)
    idx = np.searchsorted(m.classes_, y)
    out["log_loss"] = float(-np.mean(np.log(p[np.arange(len(y)), idx])))
else:
    y = np.array([float(s) for s in col[cfg["target"]]])
    m = Ridge(alpha=cfg["l2"], tol=cfg["tol"], solver="cholesky")
    start = time.perf_counter()
    m.fit(X, y)
    out["seconds"] = time.perf_counter() - start
    out["pred"] = m.predict(X).tolist()
out["coef"] = np.atleast_2d(m.coef_).tolist()
out["intercept"] = np.atleast_1d(m.intercept_).tolist()
json.dump(out, sys.stdout)
