"""The labeling web page (``skal-seg label``): a small standard-library HTTP server.

It serves the page's static files (shipped in the package: it works without
internet) and a JSON API over a :class:`~skal_seg.labeling.project.LabelingProject`;
every answer is written to the project database the moment it is given.
It listens on 127.0.0.1 by default, and every request must carry the random
per-session token that is part of the printed address (others get 403).

API (all with ``?token=...``)::

    GET  /                      the page
    GET  /static/<file>         its script and style sheet
    GET  /api/state             classes, queries (with answers), progress
    GET  /api/image/<image id>  the image as PNG (any input format, 16-bit included)
    POST /api/answer            {"query_id": int, "label": class name or "void"} -> {"answer_id"}
    POST /api/undo              {"answer_id": int} -> {"query_id"}
"""

from __future__ import annotations

import hmac
import io
import json
import secrets
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlparse

from PIL import Image

from skal_seg.image_io import read_image
from skal_seg.labeling.project import LabelingProject
from skal_seg.labeling.store import VOID

_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}


def _static_files() -> dict[str, bytes]:
    folder = resources.files("skal_seg.labeling") / "static"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.name.rsplit(".", 1)[-1] in ("html", "js", "css")}


class LabelingServer:
    """The web page of one project, served from a background thread or the foreground.

    Parameters
    ----------
    project : LabelingProject
    host : str, default="127.0.0.1"
        Address to listen on; the default reaches this machine only.
    port : int, default=0
        0 picks a free port.
    token : str, optional
        Secret required on every request; default: a fresh random one.

    Attributes
    ----------
    url : str
        Address of the page, token included.
    """

    def __init__(self, project: LabelingProject, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.project = project
        self.token = token or secrets.token_urlsafe(16)
        self._static = _static_files()
        self._png: dict[int, bytes] = {}
        self._png_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        h, p = self.httpd.server_address[:2]
        self.url = f"http://{h}:{p}/?token={self.token}"
        self._thread: threading.Thread | None = None

    def start(self) -> "LabelingServer":
        """Serve from a daemon thread (tests, notebooks); returns self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def state(self) -> dict:
        """What the page shows: classes (with keys), every query, progress."""
        classes = self.project.classes()
        for i, c in enumerate(classes):
            c["key"] = str((i + 1) % 10) if i < 10 else None  # keys 1..9 then 0
        queries = self.project.queries()
        answered = sum(q["answer_id"] is not None for q in queries)
        return {"project": self.project.folder.name, "classes": classes, "void": VOID, "queries": queries,
                "answered": answered, "pending": len(queries) - answered}

    def image_png(self, image_id: int) -> bytes | None:
        """PNG bytes of an image at its original size (converted once, then kept)."""
        with self._png_lock:
            if image_id in self._png:
                return self._png[image_id]
        rows = [r for r in self.project.images() if r["id"] == image_id]
        if not rows:
            return None
        buf = io.BytesIO()
        Image.fromarray(read_image(self.project.image_path(rows[0]))).save(buf, format="PNG")
        with self._png_lock:
            self._png[image_id] = buf.getvalue()
        return self._png[image_id]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # keep the terminal for the address and errors
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj) -> None:
                self._send(status, json.dumps(obj).encode(), "application/json")

            def _authorised(self, url) -> bool:
                given = parse_qs(url.query).get("token", [""])[0]
                if hmac.compare_digest(given.encode(), server.token.encode()):
                    return True
                self._json(HTTPStatus.FORBIDDEN, {"error": "missing or wrong token: open the address skal-seg printed"})
                return False

            def do_GET(self):
                url = urlparse(self.path)
                if not self._authorised(url):
                    return
                path = url.path
                if path in ("/", "/index.html"):
                    return self._send(200, server._static["index.html"], _STATIC_TYPES[".html"])
                if path.startswith("/static/"):
                    name = path[len("/static/"):]
                    if name in server._static:  # only the shipped files: no path traversal
                        return self._send(200, server._static[name], _STATIC_TYPES["." + name.rsplit(".", 1)[-1]])
                if path == "/api/state":
                    return self._json(200, server.state())
                if path.startswith("/api/image/") and path[len("/api/image/"):].isdigit():
                    png = server.image_png(int(path[len("/api/image/"):]))
                    if png is not None:
                        return self._send(200, png, "image/png")
                self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path}"})

            def do_POST(self):
                url = urlparse(self.path)
                if not self._authorised(url):
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                    if url.path == "/api/answer":
                        answer_id = server.project.answer(int(body["query_id"]), str(body["label"]), source="web")
                        return self._json(200, {"answer_id": answer_id})
                    if url.path == "/api/undo":
                        return self._json(200, {"query_id": server.project.undo(int(body["answer_id"]))})
                except (KeyError, TypeError, ValueError) as err:
                    return self._json(HTTPStatus.CONFLICT, {"error": str(err)})
                self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {url.path}"})

        return Handler


def serve(project: LabelingProject, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True) -> None:
    """Serve the labeling page until Ctrl-C (what ``skal-seg label`` runs).

    Parameters
    ----------
    project : LabelingProject
    host : str, default="127.0.0.1"
    port : int, default=0
        0 picks a free port.
    open_browser : bool, default=True
        Open the page in the default browser.
    """
    server = LabelingServer(project, host, port)
    print(f"labeling page: {server.url}")
    print("every answer is saved at once; press Ctrl-C here when done")
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    s = project.status()
    print(f"\n{s['answers']} answers, {s['pending']} pending")
