"""The review page's local web server: the standard library's ``http.server``, small on purpose.

Safety, in the order a request meets it:

* it listens on 127.0.0.1 only, on a free port; a request whose ``Host`` is not
  that address (DNS rebinding) is refused;
* every request carries the random token of the URL the command prints (403 without it);
* a write (POST) carries the page's CSRF token in a header, JSON, and no foreign ``Origin`` (403 otherwise);
* it serves the page, the images of the queue's fields, and the page images the CSV
  names, looked up by their exact ``(file, page)``: no other path is ever opened (404);
* the page puts all text in as text, under a Content-Security-Policy that runs only its own script.
"""

import hmac
import json
import secrets
import sys
import threading
from collections import defaultdict
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import DataError
from ..output import unquote
from .page import csp, render, server_config
from .queue import Item, State, record
from .views import Views, page_jpeg

MAX_BODY = 4096
PREFETCH = 6  # items after the one asked for whose pages are read ahead


class ReviewApp:
    """What the server serves: the state (reviewed file), the queue, the field images."""

    def __init__(self, state: State, queue: Sequence[Item], views: Views) -> None:
        self.state, self.queue, self.views = state, list(queue), views
        self.token = secrets.token_urlsafe(24)
        self.csrf = secrets.token_urlsafe(24)
        self.position = {it.row: n for n, it in enumerate(self.queue)}
        at = state.table.columns.index
        self.boxes: dict[tuple[str, int], list[tuple]] = defaultdict(list)
        self.pages: set[tuple[str, int]] = set()  # every page the CSV names (the only files ever opened)
        for cells in state.table.rows:
            if cells[at("status")] == "error":
                continue
            try:
                key = (unquote(cells[at("file")]), int(cells[at("page")]))
                self.boxes[key].append(tuple(int(cells[at(c)]) for c in ("x", "y", "w", "h")))
            except ValueError:
                continue
            self.pages.add(key)

    def warm(self) -> None:
        """Start reading the pages of the first items not checked (where the page opens), not waiting."""
        todo = [it for it in self.queue if not self.state.reviews[it.row].status]
        self.views.prefetch(todo[:PREFETCH], self.boxes)

    def item(self, row: int) -> dict:
        it = self.queue[self.position[row]]
        here = self.position[row]
        self.views.prefetch(self.queue[here + 1 : here + 1 + PREFETCH], self.boxes)
        return self.views.payload(it, self.boxes[(it.file, it.page)])


class Handler(BaseHTTPRequestHandler):
    """One request (see the module's docstring)."""

    server: "ReviewServer"
    protocol_version = "HTTP/1.1"
    server_version = "formdigits-review"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet: no line per request)
        pass

    def _send(self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": kind, "Content-Length": str(len(body)), "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                   "Cross-Origin-Resource-Policy": "same-origin", **(extra or {})}  # fmt: skip
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, message: str) -> None:
        self._send(status, message.encode("utf-8", "replace"), "text/plain; charset=utf-8")

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _allowed(self) -> dict[str, list[str]] | None:
        """The query, when the request is ours (right host and token); None after answering 403."""
        port = self.server.server_address[1]
        if self.headers.get("Host", "") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            self._text(HTTPStatus.FORBIDDEN, "forbidden: this server answers requests to 127.0.0.1 only")
            return None
        query = parse_qs(urlsplit(self.path).query)
        token = (query.get("token") or [""])[0]
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.server.app.token.encode()):
            self._text(HTTPStatus.FORBIDDEN, "forbidden: open the URL that `formdigits review` printed (with its token)")
            return None
        return query

    def do_GET(self) -> None:  # noqa: N802
        query = self._allowed()
        if query is None:
            return
        app, path = self.server.app, urlsplit(self.path).path
        if path == "/":
            nonce = secrets.token_urlsafe(16)
            html = render(server_config(app.state, app.queue, app.csrf), nonce, static=False)
            self._send(200, html.encode("utf-8"), "text/html; charset=utf-8", {"Content-Security-Policy": csp(nonce, False)})
        elif path == "/api/item":
            row = _int((query.get("row") or [""])[0])
            if row not in app.position:
                return self._text(HTTPStatus.NOT_FOUND, "no such item")
            self._json(app.item(row))
        elif path == "/page":
            self._page(query)
        else:
            self._text(HTTPStatus.NOT_FOUND, "not found")

    def _page(self, query: dict[str, list[str]]) -> None:
        """A whole page image, only of a (file, page) the CSV names, looked up exactly."""
        app = self.server.app
        file = (query.get("file") or [""])[0]
        page = _int((query.get("page") or [""])[0])
        key = (file, page)
        if page is None or key not in app.pages:
            return self._text(HTTPStatus.NOT_FOUND, "no such page in the CSV")
        box = tuple(_int(v) for v in (query.get("box") or [""])[0].split(",")) if "box" in query else None
        if box is not None and (len(box) != 4 or None in box):
            return self._text(HTTPStatus.BAD_REQUEST, "box: x,y,w,h")
        try:
            body = page_jpeg(file, page, app.views.base, app.views.pdf_dpi, box)
        except Exception as e:  # noqa: BLE001  (a moved or damaged file: say so)
            return self._text(HTTPStatus.NOT_FOUND, f"{file}: page {page}: cannot be read: {e}")
        self._send(200, body, "image/jpeg")

    def do_POST(self) -> None:  # noqa: N802
        query = self._allowed()
        if query is None:
            return
        app = self.server.app
        port = self.server.server_address[1]
        origin = self.headers.get("Origin")
        csrf = self.headers.get("X-CSRF-Token", "")
        if (origin not in (None, f"http://127.0.0.1:{port}", f"http://localhost:{port}")
                or not hmac.compare_digest(csrf.encode("utf-8", "replace"), app.csrf.encode())):  # fmt: skip
            return self._text(HTTPStatus.FORBIDDEN, "forbidden: missing or wrong CSRF token")
        if urlsplit(self.path).path != "/api/review":
            return self._text(HTTPStatus.NOT_FOUND, "not found")
        if self.headers.get_content_type() != "application/json":
            return self._text(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "JSON only")
        length = _int(self.headers.get("Content-Length", ""))
        if length is None or not 0 < length <= MAX_BODY:
            return self._text(HTTPStatus.BAD_REQUEST, "a JSON body of at most 4 KiB")
        try:
            body = json.loads(self.rfile.read(length))
            row, action, value = body["row"], body["action"], body.get("value", "")
            if type(row) is not int or row not in app.position or not isinstance(value, str):
                raise ValueError("no such item")
            review = record(app.state, app.queue[app.position[row]], action, value)
        except (ValueError, KeyError, TypeError) as e:
            return self._text(HTTPStatus.BAD_REQUEST, f"bad review: {e}")
        except DataError as e:
            return self._text(HTTPStatus.INTERNAL_SERVER_ERROR, str(e))
        self._json({"value": review.value, "status": review.status,
                    "counts": app.state.counts(app.position)})  # fmt: skip


def _int(text: str) -> int | None:
    try:
        return int(text) if text.isascii() and text.isdigit() else None
    except ValueError:
        return None


class ReviewServer(ThreadingHTTPServer):
    """The server on 127.0.0.1 (never another address), port 0: a free one."""

    daemon_threads = True

    def __init__(self, app: ReviewApp, port: int = 0) -> None:
        self.app = app
        super().__init__(("127.0.0.1", port), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that went away mid-answer (a reload) is no error; the rest are reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/?token={self.app.token}"


def start(app: ReviewApp, port: int = 0) -> tuple[ReviewServer, threading.Thread]:
    """The server, serving in a background thread (``server.shutdown()`` to stop)."""
    server = ReviewServer(app, port)
    thread = threading.Thread(target=server.serve_forever, name="formdigits-review-server", daemon=True)
    thread.start()
    return server, thread


def serve(app: ReviewApp, port: int = 0, open_browser: bool = True, say: Any = None) -> None:
    """Serve until Ctrl-C; print the URL (with its token), open the browser."""
    try:
        server = ReviewServer(app, port)
    except OSError as e:
        raise DataError(f"127.0.0.1:{port}: cannot listen there: {e.strerror or e} (--port 0: a free port)") from None
    say = say or (lambda text: print(text, file=sys.stderr))
    say(f"formdigits: reviewing {len(app.queue)} fields; corrections are saved to {app.state.path}")
    say(f"formdigits: open {server.url}   (Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, (server.url,)).start()
    try:
        app.warm()  # after the lines: a page being decoded points stderr elsewhere for the while (damage.py)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.views.close(wait=True)  # no page being decoded (and stderr pointed elsewhere) while we say so
        say(f"formdigits: stopped; {sum(app.state.counts(app.position).values())} of {len(app.queue)} checked, "
            f"in {app.state.path}")  # fmt: skip
