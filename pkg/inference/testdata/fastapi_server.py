"""A typical FastAPI + uvicorn + scikit-learn model server, the baseline of
BenchmarkVersusFastAPI (pkg/inference/fastapi_bench_test.go).

It serves the Open Inference Protocol's infer endpoint for one model,
POST /v2/models/{name}/infer, with pydantic request and response models, a
scikit-learn Pipeline (StandardScaler on the numeric inputs, OneHotEncoder on
the categorical one, LogisticRegression) fitted at startup on the CSV named by
$TRAIN_CSV, and predict_proba. That is the same model Gyre's builtin/logistic
fits: standardised numeric inputs, one-hot categories, an L2 penalty of 1
(C = 1).

Choices, each the usual one or the faster one for this server:
  - `async def` endpoint: the model call is short and CPU-bound, so it runs on
    the event loop; a plain `def` would hop to a thread pool on every request
    and is slower with one worker.
  - one uvicorn worker (argv[1] may ask for more), access log off (Gyre logs
    no line per request either), uvicorn's "auto" event loop and HTTP parser:
    uvloop and httptools when installed, asyncio and h11 otherwise.

Run: TRAIN_CSV=train.csv python3 fastapi_server.py [WORKERS]
With EXIT_ON_STDIN_EOF set it exits when its stdin closes. It binds 127.0.0.1 on a free port and prints "PORT <n> ..." on its first line
of stdout, then serves; GET /v2/health/ready answers once the model is fitted.
"""

import csv
import os
import socket
import sys
import threading
import uuid
from typing import Any, Dict, List, Optional, Union

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MODEL_NAME = "credit"
MODEL_VERSION = "1"
NUMERIC = ["x0", "x1"]
CATEGORICAL = ["color"]
FEATURES = NUMERIC + CATEGORICAL
TARGET = "y"


class Tensor(BaseModel):
    name: str
    shape: List[int]
    datatype: str
    data: List[Union[float, str]]
    parameters: Optional[Dict[str, Any]] = None


class InferenceRequest(BaseModel):
    id: Optional[str] = None
    inputs: List[Tensor]
    outputs: Optional[List[Dict[str, Any]]] = None
    parameters: Optional[Dict[str, Any]] = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: Dict[str, str]
    outputs: List[Tensor]


def train(path: str) -> Pipeline:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.array(
        [[float(r[c]) for c in NUMERIC] + [r[c] for c in CATEGORICAL] for r in rows],
        dtype=object,
    )
    y = np.array([r[TARGET] for r in rows])
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), list(range(len(NUMERIC)))),
                        (
                            "categorical",
                            OneHotEncoder(handle_unknown="ignore"),
                            list(range(len(NUMERIC), len(FEATURES))),
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(C=1.0, tol=1e-8, max_iter=1000)),
        ]
    )
    pipeline.fit(X, y)
    return pipeline


app = FastAPI()
model: Optional[Pipeline] = None


@app.on_event("startup")
def load_model() -> None:
    global model
    model = train(os.environ["TRAIN_CSV"])


@app.get("/v2/health/ready")
async def ready() -> Dict[str, bool]:
    return {"ready": model is not None}


@app.post(
    "/v2/models/{name}/infer",
    response_model=InferenceResponse,
    response_model_exclude_none=True,
)
async def infer(name: str, request: InferenceRequest) -> InferenceResponse:
    if name != MODEL_NAME:
        raise HTTPException(status_code=404, detail=f"no model {name!r}")
    columns = {t.name: t.data for t in request.inputs}
    missing = [f for f in FEATURES if f not in columns]
    if missing:
        raise HTTPException(status_code=400, detail=f"missing inputs {missing}")
    X = np.array([columns[f] for f in FEATURES], dtype=object).T
    probabilities = model.predict_proba(X)
    labels = model.classes_[probabilities.argmax(axis=1)].tolist()
    n = len(labels)
    return InferenceResponse(
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        id=request.id or str(uuid.uuid4()),
        parameters={"environment": "production", "role": "stable"},
        outputs=[
            Tensor(name="label", datatype="BYTES", shape=[n], data=labels),
            Tensor(
                name="probabilities",
                datatype="FP64",
                shape=[n, probabilities.shape[1]],
                data=probabilities.ravel().tolist(),
            ),
            Tensor(name="value", datatype="FP64", shape=[n], data=probabilities[:, 1].tolist()),
        ],
    )


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    if os.environ.get("EXIT_ON_STDIN_EOF"):
        # The benchmark holds our stdin open: if it dies without stopping
        # us, the pipe closes and we go too.
        threading.Thread(target=_exit_on_eof, daemon=True).start()
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say
    # they are TCP, and without it every keep-alive answer waits ~40 ms
    # (Nagle against delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        "fastapi_server:app",
        workers=workers,
        log_level="warning",
        access_log=False,
    )
    # What uvicorn's "auto" picks: uvloop and httptools when importable.
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    print(f"PORT {sock.getsockname()[1]} workers={workers} loop={loop} http={http}", flush=True)
    server = uvicorn.Server(config)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, target=server.run, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


def _exit_on_eof() -> None:
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
