"""Probe: the labeling page's server under concurrent answers, undos and stale undos.

Run (from the repository root; about a minute on a 2-core CPU)::

    PYTHONPATH=. .venv/bin/python benchmarks/probe_labeling_server.py
    PYTHONPATH=. .venv/bin/python benchmarks/probe_labeling_server.py --threads 8 --requests 200 --queries 1000

What it does
------------
A project in a temporary folder over small generated images (its queries are
recorded directly with ``record_round``: no features, no model), served by
:class:`~skal_seg.labeling.server.LabelingServer` on 127.0.0.1. Each of
``--threads`` threads sends ``--requests`` POSTs, each one of:

* ``answer`` (half): a random query, answered or not (409 when answered);
* ``undo`` (three in ten): the thread's newest answer still standing, naming its query;
* ``stale`` (one in five, alternating): an undo this thread had acknowledged
  before, sent again (must get 404), or one of its standing answers named
  with another query (must get 409). Neither may delete anything.

Checks (exit 1 when one fails): every request got a response within
``--timeout`` seconds; the ids of all acknowledged answers are distinct
(never reused after an undo); the database holds exactly the acknowledged
answers less the acknowledged undos (id, query and class); no stale undo was
acknowledged. It prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from skal_seg.labeling import LabelingProject
from skal_seg.labeling.server import LabelingServer

CLASSES = ("sky", "road", "car", "tree")


def make_project(folder: Path, n_queries: int, n_images: int = 4, size: int = 64, seed: int = 0,
                 classes=CLASSES) -> LabelingProject:
    """A project in ``folder/project`` over ``n_images`` random square images (``folder/photos/im<i>.png``,
    ``size`` pixels a side) with ``n_queries`` pending queries (one round)."""
    rng = np.random.default_rng(seed)
    photos = folder / "photos"
    photos.mkdir(parents=True)
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(photos / f"im{i}.png")
    project = LabelingProject.init(folder / "project", photos, list(classes))
    pixels = rng.choice(n_images * size * size, n_queries, replace=False)
    ids = [im["id"] for im in project.images()]
    picks = [(ids[p // (size * size)], int(p % (size * size)) // size, int(p % size), None) for p in pixels]
    project.record_round(picks, "probe", n_queries, 0, 0.0)
    return project


def _post(base: str, token: str, path: str, body: dict, timeout: float) -> tuple[int | None, dict]:
    """Status and JSON of one POST; status None when no response came (timeout, reset)."""
    req = urllib.request.Request(f"{base}{path}?token={token}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")
    except OSError as err:  # no response: what the probe is looking for
        return None, {"error": repr(err)}


def probe(server: LabelingServer, threads: int = 8, requests: int = 200, seed: int = 0,
          timeout: float = 30.0) -> dict:
    """Run the threads against a started server; what was sent and acknowledged.

    Returns
    -------
    dict
        ``answers`` (answer id -> (query id, label), acknowledged),
        ``answer_acks`` (every acknowledged answer id, repeats kept),
        ``undone`` (acknowledged undos), ``statuses`` (kind -> status -> count),
        ``no_response`` (list of failures), ``stale_acknowledged`` (stale undos
        that got 200), ``seconds``, ``max_latency_s``.
    """
    base, token = server.url.split("?")[0].rstrip("/"), server.token
    query_ids = [q["id"] for q in server.project.queries()]
    labels = [*CLASSES, "void"]
    lock = threading.Lock()
    out = {"answers": {}, "answer_acks": [], "undone": set(), "statuses": {}, "no_response": [],
           "stale_acknowledged": [], "max_latency_s": 0.0}

    def record(kind: str, status: int | None, latency: float) -> None:
        with lock:
            counts = out["statuses"].setdefault(kind, {})
            counts[str(status)] = counts.get(str(status), 0) + 1
            out["max_latency_s"] = max(out["max_latency_s"], latency)

    def worker(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        live: list[tuple[int, int]] = []  # (answer id, query id) of this thread's standing answers
        gone: list[tuple[int, int]] = []  # undos acknowledged
        for n in range(requests):
            roll = rng.random()
            if roll < 0.2 and (gone or live):
                if n % 2 and gone:
                    kind, body = "stale undo (gone)", dict(zip(("answer_id", "query_id"), rng.choice(gone)))
                elif live:
                    answer_id, query_id = rng.choice(live)
                    other = rng.choice([q for q in query_ids[:50] if q != query_id])
                    kind, body = "stale undo (other query)", {"answer_id": answer_id, "query_id": other}
                else:
                    kind, body = "stale undo (gone)", dict(zip(("answer_id", "query_id"), rng.choice(gone)))
                path = "/api/undo"
            elif roll < 0.5 and live:
                kind, path = "undo", "/api/undo"
                body = dict(zip(("answer_id", "query_id"), live[-1]))
            else:
                kind, path = "answer", "/api/answer"
                body = {"query_id": rng.choice(query_ids), "label": rng.choice(labels)}
            t0 = time.perf_counter()
            status, reply = _post(base, token, path, body, timeout)
            record(kind, status, time.perf_counter() - t0)
            if status is None:
                with lock:
                    out["no_response"].append(f"{kind} {body}: {reply['error']}")
                continue
            if status != 200:
                continue
            with lock:
                if kind == "answer":
                    out["answer_acks"].append(reply["answer_id"])
                    out["answers"][reply["answer_id"]] = (body["query_id"], body["label"])
                    live.append((reply["answer_id"], body["query_id"]))
                elif kind == "undo":
                    out["undone"].add(body["answer_id"])
                    gone.append(live.pop())
                else:
                    out["stale_acknowledged"].append(body)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=timeout * requests)
        if t.is_alive():
            out["no_response"].append("a thread did not finish")
    out["seconds"] = time.perf_counter() - t0
    return out


def check(project: LabelingProject, result: dict) -> list[str]:
    """What went wrong in a :func:`probe` (empty when nothing did)."""
    failures = []
    if result["no_response"]:
        failures.append(f"{len(result['no_response'])} request(s) without a response, e.g. {result['no_response'][0]}")
    acks = result["answer_acks"]
    if len(set(acks)) != len(acks):
        failures.append(f"{len(acks)} acknowledged answers carry {len(set(acks))} distinct ids (an id was reused)")
    expected = {a: v for a, v in result["answers"].items() if a not in result["undone"]}
    stored = {a["id"]: (a["query_id"], a["label"]) for a in project.answers()}
    lost = sorted(set(expected) - set(stored))
    changed = sorted(a for a in set(expected) & set(stored) if expected[a] != stored[a])
    unexpected = sorted(set(stored) - set(expected))
    if lost or changed or unexpected:
        failures.append(f"database differs from the acknowledged requests: {len(lost)} lost, {len(changed)} "
                        f"changed, {len(unexpected)} not acknowledged (e.g. {(lost + changed + unexpected)[:5]})")
    if result["stale_acknowledged"]:
        failures.append(f"{len(result['stale_acknowledged'])} stale undo(s) acknowledged, "
                        f"e.g. {result['stale_acknowledged'][0]}")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="requests per thread")
    parser.add_argument("--queries", type=int, default=1000, help="queries to answer (collisions: 409)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp), args.queries, seed=args.seed)
        server = LabelingServer(project).start()
        try:
            result = probe(server, args.threads, args.requests, args.seed, args.timeout)
        finally:
            server.stop()
        failures = check(project, result)
        acks = result["answer_acks"]
        print(json.dumps({
            "threads": args.threads, "requests": args.threads * args.requests,
            "responses": sum(sum(c.values()) for c in result["statuses"].values()) - len(result["no_response"]),
            "no_response": len(result["no_response"]), "statuses": result["statuses"],
            "acknowledged_answers": len(acks), "distinct_answer_ids": len(set(acks)),
            "acknowledged_undos": len(result["undone"]), "answers_in_database": len(project.answers()),
            "stale_undos_acknowledged": len(result["stale_acknowledged"]),
            "seconds": round(result["seconds"], 2), "max_latency_s": round(result["max_latency_s"], 3),
            "failures": failures,
        }))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
