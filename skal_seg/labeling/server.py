"""The labeling web page (``skal-seg label``): a small standard-library HTTP server.

It serves the page's static files (shipped in the package: it works without
internet) and a JSON API over a :class:`~skal_seg.labeling.project.LabelingProject`;
every answer is written to the project database the moment it is given.
It listens on 127.0.0.1 by default, and every request must carry the random
per-session token that is part of the printed address (others get 403).
The token travels in plain HTTP: on another address than loopback anyone on
the network path can read it (:func:`serve` prints a warning).

API (all with ``?token=...``)::

    GET  /                      the page
    GET  /static/<file>         its script and style sheet
    GET  /api/state             classes, queries (with answers), progress
    GET  /api/image/<image id>  the image as PNG (any input format, 16-bit included)
    POST /api/answer            {"query_id": int, "label": class name or "void"} -> {"answer_id"}
    POST /api/undo              {"answer_id": int, "query_id": int or null} -> {"query_id"}

Every request gets an answer: errors are ``{"error": text}`` with status 400
(malformed: not JSON, a missing field, an id that is no integer, such as
``2.7``, ``true`` or ``"2"``, an unknown class), 403 (token), 404 (no such
query, answer or image), 409 (a query answered already; an undo whose answer
does not answer the query it names), 411 (no Content-Length), 413 (a body
over :data:`MAX_BODY` bytes), 408 (a body that does not arrive within the
read timeout) or 500 (anything else, also printed on stderr).
"""

from __future__ import annotations

import contextlib
import hmac
import io
import ipaddress
import json
import re
import secrets
import sys
import threading
import traceback
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlparse

from PIL import Image

from skal_seg.image_io import read_image
from skal_seg.labeling.project import LabelingProject
from skal_seg.labeling.store import VOID, RecordConflictError, UnknownRecordError

#: Largest request body accepted, in bytes (an answer is a few dozen; larger gets 413).
MAX_BODY = 16 * 1024

#: Seconds a connection may stay silent while a request (its headers or body) is read.
READ_TIMEOUT = 10.0

#: An image's address; ASCII digits only (str.isdigit() passes a superscript two, which int() refuses).
_IMAGE_PATH = re.compile(r"/api/image/([0-9]+)")

_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}


def _static_files() -> dict[str, bytes]:
    folder = resources.files("skal_seg.labeling") / "static"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.name.rsplit(".", 1)[-1] in ("html", "js", "css")}


class _Refused(Exception):
    """A request answered with an error status (raised inside a handler)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def exposure_warning(address: str) -> str | None:
    """The warning for serving on ``address`` (an IP the socket is bound to), None for loopback."""
    try:
        if ipaddress.ip_address(address).is_loopback:
            return None
    except ValueError:
        pass
    return (f"warning: serving on {address}, not this machine only: the page, the answers and the token in its "
            f"address travel in plain HTTP, readable by anyone on the network path (use the default "
            f"127.0.0.1 and an SSH tunnel to label from another machine)")


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
    read_timeout : float, default=READ_TIMEOUT
        Seconds a connection may stay silent while its request is read
        (then 408, or the connection is closed): a client that announces
        more bytes than it sends holds no thread for ever.

    Attributes
    ----------
    url : str
        Address of the page, token included.
    warning : str or None
        Set when the address is not loopback: the token travels in plain HTTP.
    """

    def __init__(self, project: LabelingProject, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 read_timeout: float = READ_TIMEOUT):
        self.project = project
        self.token = token or secrets.token_urlsafe(16)
        self.read_timeout = read_timeout
        self._static = _static_files()
        self._png: dict[int, bytes] = {}
        self._png_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        h, p = self.httpd.server_address[:2]
        self.url = f"http://{h}:{p}/?token={self.token}"
        self.warning = exposure_warning(h)
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
            timeout = server.read_timeout  # socket timeout for the request line, headers and body

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

            def _answer_errors(self, route) -> None:
                """Run ``route()``; whatever goes wrong, the client gets a status and a reason."""
                try:
                    route()
                except _Refused as err:
                    self._json(err.status, {"error": str(err)})
                except UnknownRecordError as err:
                    self._json(HTTPStatus.NOT_FOUND, {"error": str(err)})
                except RecordConflictError as err:
                    self._json(HTTPStatus.CONFLICT, {"error": str(err)})
                except (ValueError, TypeError) as err:  # an unknown class, an id that is no integer
                    self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client left: nobody to answer
                except Exception as err:  # a bug or a broken image file: still an answer, and a trace here
                    traceback.print_exc(file=sys.stderr)
                    self.close_connection = True
                    with contextlib.suppress(OSError):  # unless the connection itself failed
                        self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})

            def _body(self) -> dict:
                """The JSON object sent, read within the limits (or _Refused)."""
                length = self.headers.get("Content-Length")
                if length is None:
                    raise _Refused(HTTPStatus.LENGTH_REQUIRED, "send the body's Content-Length")
                length = length.strip()
                if not (length.isascii() and length.isdigit()):
                    self.close_connection = True  # the body's end is unknown: the connection cannot be reused
                    raise _Refused(HTTPStatus.BAD_REQUEST, f"Content-Length must be a byte count, got {length!r}")
                if len(length) > 9 or int(length) > MAX_BODY:
                    self.close_connection = True
                    raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                   f"request body over {MAX_BODY} bytes (Content-Length {length})")
                try:
                    raw = self.rfile.read(int(length))
                except TimeoutError:
                    self.close_connection = True
                    raise _Refused(HTTPStatus.REQUEST_TIMEOUT,
                                   f"the body did not arrive within {server.read_timeout:g} s") from None
                if len(raw) != int(length):
                    self.close_connection = True
                    raise _Refused(HTTPStatus.BAD_REQUEST, f"body shorter than its Content-Length {length}")
                try:
                    body = json.loads(raw)
                except (ValueError, RecursionError):  # not UTF-8 / not JSON / nested beyond the parser
                    raise _Refused(HTTPStatus.BAD_REQUEST, "the body must be a JSON object") from None
                if not isinstance(body, dict):
                    raise _Refused(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
                return body

            def do_GET(self):
                url = urlparse(self.path)
                if self._authorised(url):
                    self._answer_errors(lambda: self._get(url.path))

            def _get(self, path: str) -> None:
                if path in ("/", "/index.html"):
                    return self._send(200, server._static["index.html"], _STATIC_TYPES[".html"])
                if path.startswith("/static/"):
                    name = path[len("/static/"):]
                    if name in server._static:  # only the shipped files: no path traversal
                        return self._send(200, server._static[name], _STATIC_TYPES["." + name.rsplit(".", 1)[-1]])
                if path == "/api/state":
                    return self._json(200, server.state())
                if path.startswith("/api/image/"):
                    found = _IMAGE_PATH.fullmatch(path)
                    if found is None:
                        raise _Refused(HTTPStatus.BAD_REQUEST, "an image id is a decimal integer")
                    digits = found.group(1)
                    # more digits than any id: no image (and int() refuses over 4,300 digits)
                    png = server.image_png(int(digits)) if len(digits) <= 19 else None
                    if png is None:
                        raise UnknownRecordError(f"no image with id {digits}")
                    return self._send(200, png, "image/png")
                self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path}"})

            def do_POST(self):
                url = urlparse(self.path)
                if self._authorised(url):
                    self._answer_errors(lambda: self._post(url.path))

            def _post(self, path: str) -> None:
                if path not in ("/api/answer", "/api/undo"):
                    self.close_connection = True  # its body is left unread
                    return self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path}"})
                body = self._body()
                needed = ("query_id", "label") if path == "/api/answer" else ("answer_id", "query_id")
                missing = [k for k in needed if k not in body]
                if missing:
                    raise _Refused(HTTPStatus.BAD_REQUEST, f"missing field(s) {missing}; send {list(needed)}")
                if path == "/api/answer":
                    answer_id = server.project.answer(body["query_id"], body["label"], source="web")
                    return self._json(200, {"answer_id": answer_id})
                query_id = server.project.undo(body["answer_id"], query_id=body["query_id"])
                self._json(200, {"query_id": query_id})

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
    if server.warning:
        print(f"skal-seg: {server.warning}", file=sys.stderr)
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
