"""The review page: one HTML file of plain HTML, CSS and JavaScript (``static/``), no framework, no build step.

The page gets its data as one JSON document in a ``<script type="application/json">``
element (every ``<``, ``>`` and ``&`` escaped, so no text from the CSV can end it),
and puts every text into the page as text. Its own script and style carry a
nonce, and a Content-Security-Policy lets nothing else run: no inline script a
file name could smuggle in, no request to anywhere but this server.
"""

import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from .queue import Item, State

APPLY_HINT = "formdigits review {csv} --apply {reviewed} -o final.csv"


def _static(name: str) -> str:
    return (files("formdigits.review") / "static" / name).read_text(encoding="utf-8")


def csp(nonce: str, static: bool) -> str:
    """The page's Content-Security-Policy."""
    connect = "'none'" if static else "'self'"
    return (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src data: blob:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'" + ("" if static else "; frame-ancestors 'none'"))


def item_json(it: Item) -> dict[str, Any]:
    """What the page knows of an item before its images come."""
    return {"row": it.row, "file": it.file, "page": it.page, "field": it.field, "form": it.form, "value": it.value,
            "confidence": it.confidence, "digits": it.digit_confidences, "status": it.status, "reason": it.reason,
            "kind": it.kind, "box": list(it.box)}  # fmt: skip


def _script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``), lone surrogates escaped."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(config: dict[str, Any], nonce: str, static: bool) -> str:
    """The page with ``config`` (see :func:`server_config`, :func:`static_config`) in it."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{csp(nonce, True)}">' if static else ""
    html = _static("review.html")
    parts = {"__CSP_META__": meta, "__CSS__": _static("review.css"), "__JS__": _static("review.js"),
             "__NONCE__": nonce, "__CONFIG__": _script_json(config)}  # fmt: skip
    for key in ("__CSP_META__", "__NONCE__", "__CSS__", "__JS__", "__CONFIG__"):  # the config last: its text is data
        html = html.replace(key, parts[key])
    return html


def _source(state: State) -> str:
    return f"{state.table.path.name} · {len(state.table.rows)} rows · reviewed file {state.path.name}"


def base_config(state: State, queue: Sequence[Item], shown_csv: str) -> dict[str, Any]:
    return {"items": [item_json(it) for it in queue], "source": _source(state), "reviewedName": state.path.name,
            "applyHint": APPLY_HINT.format(csv=shown_csv, reviewed=state.path.name),
            "reviews": {str(it.row): [state.reviews[it.row].value, state.reviews[it.row].status] for it in queue
                        if state.reviews[it.row].status}}  # fmt: skip


def server_config(state: State, queue: Sequence[Item], csrf: str) -> dict[str, Any]:
    """The served page's data: the queue and its reviews (saved by the server; the images come one by one)."""
    return {**base_config(state, queue, str(state.table.path)), "mode": "server", "csrf": csrf}


def static_config(state: State, queue: Sequence[Item], payloads: dict[int, dict],
                  hrefs: dict[int, str]) -> dict[str, Any]:  # fmt: skip
    """The self-contained page's data: the rows (to export the reviewed file), images, links to the pages.

    Its state is kept in the browser's storage under a key made of the CSV's contents, so two queues never mix.
    """
    config = base_config(state, queue, str(state.table.path))
    digest = hashlib.sha256(state.table.path.read_bytes()).hexdigest()[:16]
    for entry in config["items"]:
        entry["pageHref"] = hrefs[entry["row"]]
    return {**config, "mode": "static", "reviews": {}, "initial": {str(i): [r.value, r.status] for i, r in enumerate(state.reviews) if r.status},
            "storageKey": f"formdigits-review:{digest}", "columns": state.table.columns, "rows": state.table.rows,
            "payloads": {str(k): v for k, v in payloads.items()}}  # fmt: skip


def write_static(path: str | os.PathLike, config: dict[str, Any]) -> None:
    """Write the self-contained page to ``path`` (atomically)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(render(config, secrets.token_urlsafe(16), True), encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)
