#!/usr/bin/env python3
"""Train an XGBoost model through Gyre's file contract (docs/training.md).

Reads   $GYRE_INPUT_DIR/train.csv, validation.csv, schema.json
        $GYRE_PARAMS (JSON: n_estimators, max_depth, learning_rate, ... and
        any other xgboost parameter; Gyre-style trees/maxDepth/learningRate too)
Writes  $GYRE_OUTPUT_DIR: model.json (booster.save_model), categories.json
        (codes of categorical inputs, when there are any), gyre-model.json
        (format "xgboost/json", listing both with their sha256)
        $GYRE_METRICS_FILE: validation metrics

Gyre scores the bundle in Go, without Python (pkg/model/xgboost). Needs
numpy and xgboost (Debian: apt-get install python3-xgboost).
"""

import csv
import datetime
import hashlib
import json
import os
import sys

try:
    import numpy as np
    import xgboost as xgb
except ImportError:
    # A python3 first on PATH (pyenv, a venv) may lack Debian's packages.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("train.py needs numpy and xgboost: apt-get install python3-xgboost (or pip install xgboost)")

# Gyre-style names for the usual parameters.
ALIASES = {"trees": "n_estimators", "maxDepth": "max_depth", "learningRate": "learning_rate",
           "earlyStoppingRounds": "early_stopping_rounds"}


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run this through Gyre's file contract (docs/training.md)")
    return value


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        sys.exit(f"{path}: empty, not even a header")
    return rows[0], rows[1:]


def label_text(s, kind):
    """A label as Gyre reads it: numbers in shortest form ("1.0" is "1")."""
    if kind == "categorical":
        return s
    v = float(s)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def main():
    in_dir, out_dir = env("GYRE_INPUT_DIR"), env("GYRE_OUTPUT_DIR")
    with open(os.path.join(in_dir, "schema.json")) as f:
        schema = json.load(f)
    params = {}
    if os.environ.get("GYRE_PARAMS"):
        with open(os.environ["GYRE_PARAMS"]) as f:
            params = {ALIASES.get(k, k): v for k, v in json.load(f).items()}
    target = os.environ.get("GYRE_TARGET") or schema["target"]
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    header, train = read_csv(os.path.join(in_dir, "train.csv"))
    vheader, valid = read_csv(os.path.join(in_dir, "validation.csv"))
    if vheader != header or target not in header:
        sys.exit(f"train.csv and validation.csv must share a header holding the target {target!r}")
    t = header.index(target)
    train = [r for r in train if r[t] != ""]
    valid = [r for r in valid if r[t] != ""]
    if not train:
        sys.exit("no training rows with a target")

    features = [c for c in header if c != target]
    inputs = [{"name": c, "kind": kinds.get(c, "numeric")} for c in features]
    # Categorical inputs become codes (position in the sorted train values);
    # Gyre maps values to the same codes with categories.json. Unknown values
    # are missing, as pandas' category codes -1 are for xgboost.
    categories = {}
    for c in features:
        if kinds.get(c) == "categorical":
            j = header.index(c)
            categories[c] = sorted({r[j] for r in train if r[j] != ""})
    codes = {c: {v: i for i, v in enumerate(vals)} for c, vals in categories.items()}

    def matrix(rows):
        x = np.full((len(rows), len(features)), np.nan, dtype=np.float32)
        for k, c in enumerate(features):
            j = header.index(c)
            for i, r in enumerate(rows):
                v = r[j]
                if v == "":
                    continue
                x[i, k] = codes[c].get(v, np.nan) if c in codes else float(v)
        return x

    labels = sorted({label_text(r[t], kinds.get(target)) for r in train})
    task = params.pop("task", None)
    if task is None:
        if len(labels) == 2:
            task = "binary"
        elif kinds.get(target) == "categorical":
            task = "multiclass"
        else:
            task = "regression"
    if task == "regression":
        classes = []
        ys = lambda rows: np.array([float(r[t]) for r in rows], dtype=np.float32)
    else:
        classes = labels
        index = {c: i for i, c in enumerate(classes)}
        # A validation label unseen in training counts as -1 and is dropped.
        ys = lambda rows: np.array([index.get(label_text(r[t], kinds.get(target)), -1) for r in rows], dtype=np.float32)
    ytrain, yvalid = ys(train), ys(valid)
    if task != "regression":
        valid = [r for r, y in zip(valid, yvalid) if y >= 0]
        yvalid = yvalid[yvalid >= 0]

    feature_types = ["c" if c in codes else "q" for c in features]
    dm = lambda rows, y: xgb.DMatrix(matrix(rows), label=y, feature_names=features,
                                     feature_types=feature_types, enable_categorical=bool(codes))
    dtrain = dm(train, ytrain)
    dvalid = dm(valid, yvalid) if valid else None

    rounds = int(params.pop("n_estimators", 100))
    early = params.pop("early_stopping_rounds", None)
    booster_params = {"tree_method": "hist", "max_depth": 6, "learning_rate": 0.1, "seed": 0}
    booster_params.update(params)
    if task == "binary":
        booster_params.setdefault("objective", "binary:logistic")
        booster_params.setdefault("eval_metric", ["logloss", "auc"])
    elif task == "multiclass":
        booster_params.setdefault("objective", "multi:softprob")
        booster_params["num_class"] = len(classes)
        booster_params.setdefault("eval_metric", ["mlogloss"])
    else:
        booster_params.setdefault("objective", "reg:squarederror")
        booster_params.setdefault("eval_metric", ["rmse"])
    for k in ("max_depth", "seed", "nthread", "max_bin"):
        if k in booster_params:
            booster_params[k] = int(booster_params[k])
    print(f"training {task} xgboost {xgb.__version__}: {len(train)} train rows, {len(valid)} validation rows, "
          f"{len(features)} features, {rounds} rounds, params {json.dumps(booster_params)}", flush=True)
    evals = [(dtrain, "train")] + ([(dvalid, "valid")] if dvalid is not None else [])
    booster = xgb.train(booster_params, dtrain, num_boost_round=rounds, evals=evals,
                        early_stopping_rounds=int(early) if early and dvalid is not None else None,
                        verbose_eval=max(1, rounds // 10))
    if early and dvalid is not None and booster.best_iteration + 1 < booster.num_boosted_rounds():
        # Keep only the best rounds, so the saved model is the one scored.
        booster = booster[: booster.best_iteration + 1]

    metrics = {"trees": float(booster.num_boosted_rounds())}
    if dvalid is not None and len(valid) > 0:
        metrics.update(validation_metrics(task, booster.predict(dvalid), yvalid))
    print("metrics: " + json.dumps(metrics), flush=True)

    os.makedirs(out_dir, exist_ok=True)
    files = {"model.json": os.path.join(out_dir, "model.json")}
    booster.save_model(files["model.json"])
    if categories:
        files["categories.json"] = os.path.join(out_dir, "categories.json")
        with open(files["categories.json"], "w") as f:
            json.dump(categories, f, indent=2)
    manifest = {
        "format": "xgboost/json",
        "task": task,
        "inputs": inputs,
        "target": target,
        "classes": classes,
        "params": dict(booster_params, n_estimators=rounds),
        "metrics": metrics,
        "lineage": {"trainer": "examples/xgboost/train.py", "xgboost": xgb.__version__},
        "files": {name: sha256(path) for name, path in files.items()},
        "createdAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # The manifest last: a directory with one holds the whole bundle.
    with open(os.path.join(out_dir, "gyre-model.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    if os.environ.get("GYRE_METRICS_FILE"):
        with open(os.environ["GYRE_METRICS_FILE"], "w") as f:
            json.dump(metrics, f)


def validation_metrics(task, pred, y):
    if task == "regression":
        return {"valid_rmse": float(np.sqrt(np.mean((pred - y) ** 2)))}
    if task == "binary":
        p = np.clip(pred.astype(np.float64), 1e-15, 1 - 1e-15)
        m = {"valid_log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
             "valid_accuracy": float(np.mean((p >= 0.5) == (y == 1)))}
        auc = roc_auc(y, p)
        if auc is not None:
            m["valid_auc"] = auc
        return m
    p = np.clip(pred.astype(np.float64), 1e-15, 1)
    idx = y.astype(int)
    return {"valid_log_loss": float(-np.mean(np.log(p[np.arange(len(idx)), idx]))),
            "valid_accuracy": float(np.mean(np.argmax(p, axis=1) == idx))}


def roc_auc(y, p):
    """The Mann-Whitney AUC, ties counted half; None with one class only."""
    pos, neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    i = 0
    while i < len(sp):
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((np.sum(ranks[y == 1]) - pos * (pos + 1) / 2) / (pos * neg))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


if __name__ == "__main__":
    main()
