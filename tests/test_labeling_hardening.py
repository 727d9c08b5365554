"""The labeling project against hostile and clumsy use (issue 28): stale undos, races, bad requests and files.

Most tests use a project over small generated images whose queries are
recorded directly (``benchmarks/probe_labeling_server.py``'s
``make_project``): no features, no model. The predict tests train the head on
a few answers over two sample images (features computed once per module).
HTTP tests talk to a server on 127.0.0.1 with raw sockets, each request
bounded by a client timeout, and count on an answer to every one.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from skal_seg.cli import main as cli_main
from skal_seg.data import sample_dataset_dir
from skal_seg.labeling import ImportValidationError, LabelingProject
from skal_seg.labeling import server as server_module
from skal_seg.labeling.server import MAX_BODY, LabelingServer
from skal_seg.labeling.store import SCHEMA, RecordConflictError, UnknownRecordError

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("probe_labeling_server",
                                               ROOT / "benchmarks" / "probe_labeling_server.py")
probe = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(probe)

CLIENT_TIMEOUT = 5.0  # seconds a test waits for any one response


@pytest.fixture
def small(tmp_path):
    """A project over four 64 x 64 images (photos/im0.png ...) with 12 pending queries; classes sky, road, car, tree."""
    return probe.make_project(tmp_path, 12)


@pytest.fixture
def served(small):
    server = LabelingServer(small, read_timeout=1.0).start()
    yield server
    server.stop()


def db(project, sql, params=()):
    con = sqlite3.connect(project.store.path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- 1. ids never reused, undo names its query


def test_answer_ids_are_never_reused_and_a_stale_undo_deletes_nothing(small):
    q1, q2 = small.queries()[:2]
    a1 = small.answer(q1["id"], "sky")
    assert small.undo(a1, query_id=q1["id"]) == q1["id"]
    a2 = small.answer(q2["id"], "road")
    assert a2 != a1  # SQLite without AUTOINCREMENT gave a2 the id a1 had
    with pytest.raises(UnknownRecordError, match=f"no answer with id {a1}"):
        small.undo(a1, query_id=q1["id"])  # the same undo again: a retry, a second tab
    with pytest.raises(RecordConflictError, match=f"answer {a2} answers query {q2['id']}, not query {q1['id']}"):
        small.undo(a2, query_id=q1["id"])
    with pytest.raises(TypeError):
        small.undo(a2)  # the query must be named
    with pytest.raises(TypeError, match="must be an integer"):
        small.undo(True, query_id=q2["id"])
    assert [(a["id"], a["query_id"], a["label"]) for a in small.answers()] == [(a2, q2["id"], "road")]
    small.import_answers(_csv(small.folder.parent / "x.csv", "im0.png,0,0,car"))  # an extra pixel
    extra = small.answers()[-1]
    with pytest.raises(RecordConflictError, match="answers an extra pixel, not query"):
        small.undo(extra["id"], query_id=q1["id"])
    assert small.undo(extra["id"], query_id=None) is None


def _old_schema_copy(project: LabelingProject, folder: Path) -> LabelingProject:
    """The project's rows in a database made with the schema before AUTOINCREMENT."""
    folder.mkdir()
    con = sqlite3.connect(folder / "project.sqlite")
    con.executescript(SCHEMA.replace(" AUTOINCREMENT", ""))
    con.execute("ATTACH DATABASE ? AS src", (str(project.store.path),))
    for table in ("settings", "images", "classes", "rounds", "queries", "answers"):
        con.execute(f"INSERT INTO {table} SELECT * FROM src.{table}")
    con.commit()
    con.close()
    return LabelingProject(folder)


def test_a_project_made_before_autoincrement_is_upgraded_in_place_and_keeps_its_rows(small, tmp_path):
    queries = small.queries()
    given = [small.answer(q["id"], label) for q, label in zip(queries[:3], ("sky", "road", "car"))]
    old = _old_schema_copy(small, tmp_path / "old")
    assert "AUTOINCREMENT" not in db(old, "SELECT sql FROM sqlite_master WHERE name = 'answers'")[0][0]
    rows_before = {t: db(old, f"SELECT * FROM {t} ORDER BY id") for t in ("queries", "answers")}
    with pytest.raises(UnknownRecordError):
        old.answer(10**6, "sky")  # a transaction that fails: its upgrade is rolled back with it, and retried
    assert "AUTOINCREMENT" not in db(old, "SELECT sql FROM sqlite_master WHERE name = 'answers'")[0][0]

    old.undo(given[2], query_id=queries[2]["id"])  # the first change upgrades the tables, then undoes
    again = old.answer(queries[3]["id"], "tree")
    assert again == given[2] + 1  # the old schema handed out given[2] again
    for table in ("queries", "answers"):
        assert "AUTOINCREMENT" in db(old, "SELECT sql FROM sqlite_master WHERE name = ?", (table,))[0][0]
    assert db(old, "SELECT * FROM queries ORDER BY id") == rows_before["queries"]
    assert db(old, "SELECT * FROM answers ORDER BY id")[:2] == rows_before["answers"][:2]
    assert db(old, "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'answers_query'")
    assert db(old, "PRAGMA foreign_key_check") == [] and db(old, "PRAGMA integrity_check") == [("ok",)]
    reopened = LabelingProject(old.folder)  # a later session: nothing left to upgrade, ids go on
    assert reopened.answer(queries[4]["id"], "sky") == again + 1
    assert [a["label"] for a in reopened.answers()] == ["sky", "road", "tree", "sky"]


def _http(server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"{server.url.split('?')[0].rstrip('/')}{path}?token={server.token}",
                                 data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=CLIENT_TIMEOUT) as r:
            return r.status, json.loads(r.read()) if r.headers["Content-Type"] == "application/json" else {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _post(server, path: str, obj) -> tuple[int, dict]:
    return _http(server, "POST", path, obj.encode() if isinstance(obj, str) else json.dumps(obj).encode())


def test_the_page_server_refuses_a_stale_undo(served):
    project = served.project
    q1, q2 = project.queries()[:2]
    status, reply = _post(served, "/api/answer", {"query_id": q1["id"], "label": "sky"})
    assert status == 200
    a1 = reply["answer_id"]
    assert _post(served, "/api/undo", {"answer_id": a1, "query_id": q1["id"]}) == (200, {"query_id": q1["id"]})
    status, reply = _post(served, "/api/answer", {"query_id": q2["id"], "label": "road"})
    assert status == 200 and reply["answer_id"] != a1
    assert _post(served, "/api/undo", {"answer_id": a1, "query_id": q1["id"]})[0] == 404  # sent twice
    assert _post(served, "/api/undo", {"answer_id": reply["answer_id"], "query_id": q1["id"]})[0] == 409
    assert _post(served, "/api/undo", {"answer_id": reply["answer_id"]})[0] == 400  # the query unnamed
    assert [(a["query_id"], a["label"]) for a in project.answers()] == [(q2["id"], "road")]


def test_concurrent_answers_undos_and_stale_undos_lose_nothing(small):
    """The probe of benchmarks/probe_labeling_server.py, small: 4 threads x 25 requests."""
    server = LabelingServer(small).start()
    try:
        result = probe.probe(server, threads=4, requests=25, timeout=30.0)
    finally:
        server.stop()
    assert probe.check(small, result) == []
    assert sum(result["statuses"]["answer"].values()) > 20 and result["undone"]
    assert {"stale undo (gone)", "stale undo (other query)"} <= set(result["statuses"])  # both kinds were sent


# --------------------------------------------------------------------------- 2. an import racing the page


def _csv(path: Path, *rows: str) -> Path:
    path.write_text("image,y,x,label\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.mark.parametrize("page_label, conflict", [("sky", True), ("road", False)])
def test_an_answer_given_while_an_import_is_checked_is_seen_by_the_import(small, tmp_path, monkeypatch,
                                                                          page_label, conflict):
    q, other = small.queries()[:2]
    path = _csv(tmp_path / "answers.csv", f"{q['path']},{q['y']},{q['x']},road",
                f"{other['path']},{other['y']},{other['x']},car")
    page = LabelingProject(small.folder)  # the web server's own store and connections
    real = small.store.transaction
    raced = []

    def page_answers_first():  # the page's answer lands just before the import's write transaction begins
        if not raced:
            raced.append(page.answer(q["id"], page_label, source="web"))
        return real()

    monkeypatch.setattr(small.store, "transaction", page_answers_first)
    if conflict:
        with pytest.raises(ImportValidationError, match=r"line 2: .* already has a different stored answer"):
            small.import_answers(path)
        assert [(a["id"], a["label"]) for a in small.answers()] == [(raced[0], "sky")]  # nothing imported
    else:
        report = small.import_answers(path)
        assert report.added == 1 and report.already_known == 1
        assert sorted(a["label"] for a in small.answers()) == ["car", "road"]


# --------------------------------------------------------------------------- 3. predict never destroys a file

SETTINGS = dict(candidates_per_image=48, local_budget=4, n_draws=2, featurizer={"model": "embedded", "timesteps": [50]},
                classifier={"min_steps": 20, "max_epochs": 3})
SAMPLE = ["0001TP_007140", "0006R0_f01320"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project over two sample images with a few answers, its features cached in its folder."""
    root = tmp_path_factory.mktemp("predict")
    (root / "photos").mkdir()
    for name in SAMPLE:
        shutil.copy(sample_dataset_dir() / "train" / f"{name}.png", root / "photos" / f"{name}.png")
    project = LabelingProject.init(root / "project", root / "photos", ["sky", "road", "car"], settings=SETTINGS)
    project.import_answers(_csv(root / "a.csv", f"{SAMPLE[0]}.png,5,60,sky", f"{SAMPLE[0]}.png,120,60,road",
                                f"{SAMPLE[1]}.png,3,3,sky", f"{SAMPLE[1]}.png,125,100,road"))
    project.model()  # computes and caches the features
    return root


@pytest.fixture
def predicting(trained, tmp_path):
    """A copy of ``trained`` (images too; the copy's images folder is its own)."""
    shutil.copytree(trained, tmp_path / "t")
    con = sqlite3.connect(tmp_path / "t" / "project" / "project.sqlite")
    con.execute("UPDATE settings SET value = ? WHERE key = 'images_root'", (json.dumps(str(tmp_path / "t" / "photos")),))
    con.commit()
    con.close()
    return LabelingProject(tmp_path / "t" / "project"), tmp_path / "t" / "photos"


def _digests(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_predict_refuses_an_output_folder_holding_images(predicting, capsys):
    project, photos = predicting
    before = _digests(photos)
    for images, out in ((None, photos), (photos, photos), (None, photos.parent), (photos / f"{SAMPLE[0]}.png", photos)):
        with pytest.raises(ValueError, match="holds images"):
            project.predict(images, out, overwrite=True)  # never an image, even with overwrite
    with pytest.raises(SystemExit, match=r"^skal-seg: the output folder .* holds images"):
        cli_main(["predict", str(project.folder), "--out", str(photos), "--overwrite", "--quiet"])
    assert _digests(photos) == before


def test_predict_reports_two_images_that_would_write_one_mask(predicting, tmp_path):
    project, photos = predicting
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(photos / f"{SAMPLE[0]}.png", new / "x.png")
    Image.open(photos / f"{SAMPLE[1]}.png").convert("RGB").save(new / "x.jpg")
    shutil.copy(photos / f"{SAMPLE[1]}.png", new / "x_overlay.png")  # its mask is x.png's overlay
    with pytest.raises(ValueError, match=r"name clash.*x\.jpg and .*x\.png would both write .*x\.png") as err:
        project.predict(new, tmp_path / "masks")
    assert "x_overlay.png would both write" in str(err.value)
    assert not (tmp_path / "masks").exists()  # nothing written
    written = project.predict(new, tmp_path / "masks", exclude=["*.jpg", "x_overlay.png"])
    assert [p.name for p in written] == ["x.png"]


def test_predict_replaces_earlier_masks_only_when_asked(predicting, tmp_path, capsys):
    project, photos = predicting
    out = tmp_path / "masks"
    (mask,) = project.predict(photos / f"{SAMPLE[0]}.png", out)
    mask.write_bytes(b"an earlier mask")
    with pytest.raises(ValueError, match=r"2 file\(s\) to write exist already .*overwrite"):
        project.predict(photos / f"{SAMPLE[0]}.png", out)
    with pytest.raises(SystemExit, match="exist already"):
        cli_main(["predict", str(project.folder), "--images", str(photos / f"{SAMPLE[0]}.png"), "--out", str(out),
                  "--quiet"])
    assert mask.read_bytes() == b"an earlier mask"
    assert cli_main(["predict", str(project.folder), "--images", str(photos / f"{SAMPLE[0]}.png"), "--out", str(out),
                     "--overwrite", "--quiet"]) == 0
    assert Image.open(mask).mode == "P"


# --------------------------------------------------------------------------- 4. every request gets an answer


def _raw(server, request: bytes, keep_open: bool = True) -> int | None:
    """Status of a request sent as raw bytes; None when no response came within CLIENT_TIMEOUT."""
    host, port = server.httpd.server_address[:2]
    with socket.create_connection((host, port), timeout=CLIENT_TIMEOUT) as s:
        s.sendall(request)
        if not keep_open:
            s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return int(data.split()[1]) if data.startswith(b"HTTP/") else None


def _raw_post(server, body: bytes, length=None, path="/api/answer") -> int | None:
    head = (f"POST {path}?token={server.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + ("" if length is False else f"Content-Length: {len(body) if length is None else length}\r\n") + "\r\n")
    return _raw(server, head.encode() + body)


def test_malformed_ids_get_400_unknown_ids_404_and_nothing_is_answered(served):
    q = served.project.queries()[1]  # its id is 2: '2.7' or 'true' must not answer query 2 (or 1)
    assert q["id"] == 2
    for body, expected in [
        ('{"query_id": 1e30, "label": "sky"}', 400), ('{"query_id": 100000000000000000000, "label": "sky"}', 404),
        ('{"query_id": Infinity, "label": "sky"}', 400), ('{"query_id": NaN, "label": "sky"}', 400),
        ('{"query_id": 2.7, "label": "sky"}', 400), ('{"query_id": 2.0, "label": "sky"}', 400),
        ('{"query_id": true, "label": "sky"}', 400), ('{"query_id": "2", "label": "sky"}', 400),
        ('{"query_id": 2, "label": 5}', 400), ('{"query_id": 2, "label": "lava"}', 400),
        ('{"query_id": 999999, "label": "sky"}', 404), ('{"label": "sky"}', 400), ("[2]", 400), ("2", 400),
        ("not json", 400), ('{"query_id": 2, "label": "sky"', 400), ("[" * 10_000, 400),
    ]:
        assert _raw_post(served, body.encode()) == expected, body
    assert _raw_post(served, b"\xff\xfe{}") == 400
    for body, expected in [('{"answer_id": 100000000000000000000, "query_id": 2}', 404),
                           ('{"answer_id": -1, "query_id": 2}', 404), ('{"answer_id": 1.5, "query_id": 2}', 400),
                           ('{"answer_id": true, "query_id": 1}', 400), ('{"answer_id": 1, "query_id": "x"}', 400)]:
        assert _raw_post(served, body.encode(), path="/api/undo") == expected, body
    assert served.project.answers() == []
    assert _post(served, "/api/answer", {"query_id": 2, "label": "sky"})[0] == 200  # still serving


def test_image_ids_are_ascii_integers(served):
    image_id = served.project.images()[0]["id"]

    def get(tail: bytes):
        return _raw(served, b"GET /api/image/" + tail + f"?token={served.token} HTTP/1.1\r\n\r\n".encode())

    assert get(str(image_id).encode()) == 200
    assert get(b"\xb2") == 400  # '\u00b2' (superscript two) passes str.isdigit, not int()
    assert get("\u0663".encode()) == 400  # Arabic-Indic three, as UTF-8
    assert get(b"1" * 5000) == 404  # more digits than int() reads (and than any id)
    assert get(b"99999") == 404 and get(b"abc") == 400 and get(b"") == 400 and get(b"-1") == 400


def test_request_bodies_are_bounded_in_size_and_in_time(served):
    ok = b'{"query_id": 1, "label": "sky"}'
    assert _raw_post(served, ok, length=10**15) == 413
    assert _raw_post(served, ok, length=5_000_000_000) == 413
    assert _raw_post(served, ok, length=-1) == 400
    assert _raw_post(served, ok, length="5e9") == 400
    assert _raw_post(served, ok, length=False) == 411
    big = json.dumps({"query_id": 1, "label": "x" * MAX_BODY}).encode()
    assert _raw_post(served, big) == 413
    t0 = time.monotonic()
    assert _raw_post(served, ok, length=100) == 408  # announces 100 bytes, sends 31, keeps the connection open
    assert time.monotonic() - t0 < CLIENT_TIMEOUT
    deadline = time.monotonic() + CLIENT_TIMEOUT  # no handler thread is left waiting
    while any("process_request" in t.name for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any("process_request" in t.name for t in threading.enumerate())
    assert served.project.answers() == []
    assert _raw_post(served, ok) == 200


def test_a_host_other_than_loopback_prints_a_warning(small, monkeypatch, capsys):
    def interrupted(self, *args, **kwargs):  # serve_forever returns at once, as after Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(server_module.ThreadingHTTPServer, "serve_forever", interrupted)
    assert cli_main(["label", str(small.folder), "--no-browser"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert cli_main(["label", str(small.folder), "--host", "0.0.0.0", "--no-browser"]) == 0
    err = capsys.readouterr().err
    assert "skal-seg: warning: serving on 0.0.0.0" in err and "token" in err and "plain HTTP" in err
    assert server_module.exposure_warning("::1") is None and server_module.exposure_warning("10.1.2.3")


# --------------------------------------------------------------------------- 5. malformed import files


def _task(**overrides):
    task = {"data": {"image": "im0.png"}, "annotations": [{"result": [
        {"type": "keypointlabels", "value": {"x": 10.0, "y": 20.0, "keypointlabels": ["sky"]}}]}]}
    task.update(overrides)
    return task


def _value(value):
    return _task(annotations=[{"result": [{"type": "keypointlabels", "value": value}]}])


@pytest.mark.parametrize("content, where, what", [
    ([_task(annotations=5)], "task 1", "annotations must be a list"),
    ([_task(annotations=[5])], "task 1, annotation 1", "expected an object with a result list"),
    ([_task(annotations=[{"result": "x"}])], "task 1, annotation 1", "expected an object with a result list"),
    ([_task(annotations=[{"result": [7]}])], "task 1, result 1", "a result must be an object"),
    ([_value("x")], "task 1, result 1", "value must be an object"),
    ([_value({"x": 1, "y": 1, "keypointlabels": [3]})], "task 1, result 1", "the label must be text"),
    ([_value({"x": 1, "y": 1, "keypointlabels": "sky"})], "task 1, result 1", "expected one label per point"),
    ([_value({"x": True, "y": 1, "keypointlabels": ["sky"]})], "task 1, result 1", "x must be a number"),
    ([_value({"x": 10**400, "y": 1, "keypointlabels": ["sky"]})], "task 1, result 1", "malformed keypoint"),
    ([_task(data="img.png")], "task 1", "no data.image"),
    ([_task(data={"image": 5})], "task 1", "no data.image"),
    ([7, _task()], "task 1", "a task must be an object"),
])
def test_a_malformed_label_studio_export_names_the_file_and_the_task(small, tmp_path, content, where, what):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SystemExit) as err:
        cli_main(["import", str(small.folder), str(path)])
    message = str(err.value)
    assert message.startswith(f"skal-seg: {path}: ") and f"{where}: " in message and what in message
    assert small.answers() == []


@pytest.mark.parametrize("kind", ["huge field", "NUL byte", "folder", "latin-1 csv", "latin-1 json", "deep json"])
def test_an_unreadable_answers_file_is_one_message_naming_it(small, tmp_path, kind):
    path = tmp_path / ("answers.json" if "json" in kind else "answers.csv")
    expected = {"huge field": "line 3: field larger than field limit", "NUL byte": "line 2: unknown class",
                "folder": "is a folder", "latin-1 csv": "line 3, column 3: not UTF-8 text (byte 0xe9)",
                "latin-1 json": "line 2, column 14: not UTF-8 text (byte 0xe9)",
                "deep json": "nested too deeply"}[kind]
    if kind == "huge field":
        path.write_text("image,y,x,label\nim0.png,1,1,sky\nim1.png,2,2," + "x" * 140_000 + "\n")
    elif kind == "NUL byte":
        path.write_bytes(b"image,y,x,label\nim0.png,1,1,s\x00ky\n")
    elif kind == "folder":
        path = tmp_path
    elif kind == "latin-1 csv":
        path.write_bytes("image,y,x,label\nim0.png,1,1,sky\nim\u00e9.png,2,2,sky\n".encode("latin-1"))
    elif kind == "latin-1 json":
        path.write_bytes('[{"data": {\n "image": "im\u00e9.png"}}]'.encode("latin-1"))
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError) as err:
        small.import_answers(path)
    assert str(path) in str(err.value) and expected in str(err.value)
    with pytest.raises(SystemExit, match=f"^skal-seg: {path}"):
        cli_main(["import", str(small.folder), str(path)])
    assert small.answers() == []


# --------------------------------------------------------------------------- 6. Label Studio's upload names


def test_label_studio_upload_names_match_the_project_images(small, tmp_path):
    q = small.queries()[0]
    point = {"x": 100 * (q["x"] + 0.5) / q["width"], "y": 100 * (q["y"] + 0.5) / q["height"], "keypointlabels": ["car"]}
    export = [_task(data={"image": f"/data/upload/3/8f3a2b1c-{q['path']}"},
                    annotations=[{"result": [{"type": "keypointlabels", "value": point}]}])]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert small.import_answers(tmp_path / "export.json").added == 1
    assert small.queries()[0]["label"] == "car"
    for unknown in ("/data/upload/3/8f3a2b1c-nothere.png", "8f3a2b1c-im1.png", "/data/upload/3/im1.png-8f3a2b1c"):
        (tmp_path / "bad.json").write_text(json.dumps([_task(data={"image": unknown})]))
        with pytest.raises(ImportValidationError, match="unknown image"):
            small.import_answers(tmp_path / "bad.json")
    assert len(small.answers()) == 1


# --------------------------------------------------------------------------- 7. the page at 1,100 px


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


LONG_CLASSES = ["sky", "building-facade-with-balconies-and-windows", "road surface with lane markings and crossings",
                "Fahrbahnbegrenzungspfostenreflektoren", "pavement", "tree", "sign/symbol", "fence",
                "car-van-truck-bus-or-other-motor-vehicle", "pedestrian", "bicyclist", "traffic light housing and pole"]


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium and chromium-driver are not installed")
def test_long_class_names_keep_every_button_on_screen_at_1100_px(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project = probe.make_project(tmp_path, 3, n_images=1, size=480, classes=LONG_CLASSES)
    browser, driver_path = _chromium()
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900",
                "--disable-gpu", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    server = LabelingServer(project).start()
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.get(server.url)
        WebDriverWait(driver, 30).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#classes button")) == len(LONG_CLASSES) + 1)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return Object.values(images).length > 0 && Object.values(images).every(i => i.complete && i.naturalWidth)"))
        page = driver.execute_script("""return {
            width: window.innerWidth, height: window.innerHeight,
            scrollWidth: document.documentElement.scrollWidth,
            buttons: [...document.querySelectorAll('#classes button')].map(b => {
                const r = b.getBoundingClientRect(), n = b.querySelector('.name');
                return {label: b.dataset.label, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                        clipped: n.scrollWidth > n.clientWidth + 1};
            })};""")
        driver.save_screenshot(str(tmp_path / "labeling-1100px.png"))
    finally:
        driver.quit()
        server.stop()
    assert page["width"] == 1100
    assert page["scrollWidth"] <= page["width"]  # no sideways scrolling
    for b in page["buttons"]:
        assert 0 <= b["left"] and b["right"] <= page["width"], b
        assert 0 <= b["top"] and b["bottom"] <= page["height"], b
        assert not b["clipped"], b  # the whole name shows, wrapped
