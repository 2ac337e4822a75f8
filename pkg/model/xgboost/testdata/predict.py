"""xgboost's own predictions for a Gyre xgboost/json bundle, to compare Go's with.

    predict.py BUNDLE_DIR DATA_CSV OUT_JSON [REPEAT]

Reads the inputs from gyre-model.json and the category codes from
categories.json, as Gyre does, and writes {"pred": [[...] per row]} (the
positive-class probability, the class probabilities or the value). With
REPEAT, also times inplace_predict over the whole matrix REPEAT times and
adds "rows_per_s".
"""
import csv
import json
import os
import sys
import time

import numpy as np
import xgboost as xgb

bundle, data, out = sys.argv[1:4]
repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 0
with open(os.path.join(bundle, "gyre-model.json")) as f:
    manifest = json.load(f)
cats = {}
if "categories.json" in manifest["files"]:
    with open(os.path.join(bundle, "categories.json")) as f:
        cats = {k: {v: i for i, v in enumerate(vs)} for k, vs in json.load(f).items()}
with open(data, newline="") as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]
names = [i["name"] for i in manifest["inputs"]]
x = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
for k, name in enumerate(names):
    j = header.index(name)
    for i, r in enumerate(rows):
        if r[j] != "":
            x[i, k] = cats[name].get(r[j], np.nan) if name in cats else float(r[j])
booster = xgb.Booster()
booster.load_model(os.path.join(bundle, "model.json"))
types = ["c" if n in cats else "q" for n in names]
dm = xgb.DMatrix(x, feature_names=names, feature_types=types, enable_categorical=bool(cats))
pred = booster.predict(dm)
result = {"pred": pred.reshape(len(rows), -1).astype(np.float64).tolist()}
if repeat:
    booster.inplace_predict(x)
    start = time.perf_counter()
    for _ in range(repeat):
        booster.inplace_predict(x)
    result["rows_per_s"] = len(rows) * repeat / (time.perf_counter() - start)
with open(out, "w") as f:
    json.dump(result, f)
