"""Output for big runs: a folder of shards, one per block of input files, and its ``manifest.json``.

A shard holds the rows of one block of input files (``shard_files`` of them, the
last block fewer), in input order, as CSV (the same writer, so the same bytes,
as a local scan's CSV) or Parquet. Each shard is written whole, at once: on a
local disk to a temporary name and renamed, on object stores (``s3://``,
``gs://``, any fsspec URL) in one upload, which the store makes visible only
when it is complete. A shard that is there is complete; writing it again (a
retried block, a rerun) replaces it and never adds rows twice.

``manifest.json`` is written when the run starts (``complete: false``, with a
digest of the input list and the options that fix the shards) and again when it
ends, listing every shard. ``--resume`` checks that digest and skips the shards
already there. :func:`merge` joins the shards of a complete run into one CSV,
in input order.
"""

import csv
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .errors import DataError, UsageError
from .output import COLUMNS, STATUSES, Row, RowWriter, unquote

MANIFEST = "manifest.json"
SHARD_FORMATS = ("csv", "parquet")
DEFAULT_SHARD_FILES = 100  # input files per shard


def is_url(path: str) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: a path for fsspec rather than the OS."""
    return "://" in str(path)


def filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec filesystem, path on it)`` for a URL or a local path; UsageError when its protocol's package is
    not installed (s3fs for s3://, gcsfs for gs://)."""
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(str(url))
    except (ImportError, ValueError) as e:
        raise UsageError(f"{url}: cannot open this kind of URL: {e}") from None


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def put_atomically(fs, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a local file via a temporary name and a rename, an object
    in one upload (stores show an object only once its upload is complete)."""
    try:
        if _is_local(fs):
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            fs.pipe_file(path, data)
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e.strerror or e}") from None


def shard_name(index: int, fmt: str) -> str:
    return f"part-{index:06d}.{fmt}"


def columns(names: Sequence[str] | None) -> tuple[str, ...]:
    """The columns of the shards (those of a local CSV scan: ``form`` added with templates)."""
    return (*COLUMNS, "form") if names else COLUMNS


def csv_bytes(pages: Iterable[Sequence[Row]], names: Sequence[str] | None = None) -> bytes:
    """Pages' rows as the CSV a local scan writes (header, same writer, same bytes)."""
    out = io.StringIO(newline="")
    writer = RowWriter(out, "csv", names=names)
    for rows in pages:
        writer.write_page(rows)
    return out.getvalue().encode("utf-8", "surrogateescape")


def _arrow_schema(names):
    import pyarrow as pa

    types = {"page": pa.int64(), "x": pa.int64(), "y": pa.int64(), "w": pa.int64(), "h": pa.int64(),
             "confidence": pa.float64(), "digit_confidences": pa.list_(pa.float64())}  # fmt: skip
    return pa.schema([(c, types.get(c, pa.string())) for c in columns(names)])


def _text(value: str) -> str:
    """Text Arrow can hold: a file name that is not UTF-8 (surrogate escapes) gets its bytes escaped."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def parquet_bytes(pages: Iterable[Sequence[Row]], names: Sequence[str] | None = None) -> bytes:
    """Pages' rows as one Parquet file: a column per CSV column, numbers typed, ``field`` as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema(names)
    data: dict[str, list] = {c: [] for c in schema.names}
    for rows in pages:
        for r in rows:
            for c in schema.names:
                value = getattr(r, c)
                data[c].append(_text(str(value)) if schema.field(c).type == pa.string() else value)
    out = io.BytesIO()
    pq.write_table(pa.table(data, schema=schema), out)
    return out.getvalue()


def rows_of_parquet(data: bytes) -> list[Row]:
    """The rows of a Parquet shard, as :class:`Row` (its CSV cells the same as the row's that was written)."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    return [Row(**{k: v for k, v in d.items()}) for d in table.to_pylist()]


@dataclass
class ShardStats:
    """What a shard holds: pages (runs of rows of one page), rows, and the error messages among them."""

    pages: int = 0
    rows: int = 0
    failed: list = field(default_factory=list)


def stats_of(pages: Sequence[Sequence[Row]]) -> ShardStats:
    return ShardStats(len(pages), sum(len(p) for p in pages), [r.error for p in pages for r in p if r.status == "error"])


def read_stats(data: bytes, fmt: str, where: str) -> ShardStats:
    """The :class:`ShardStats` of a shard written before (``--resume``)."""
    rows: list[tuple[Any, ...]]
    if fmt == "parquet":
        rows = [(r.file, r.page, r.status, r.error) for r in rows_of_parquet(data)]
    else:
        reader = csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline=""))
        header = next(reader, [])
        try:
            at = [header.index(c) for c in ("file", "page", "status", "error")]
        except ValueError:
            raise DataError(f"{where}: not a formdigits shard (its header is {header!r})") from None
        rows = [tuple(unquote(cells[i]) for i in at) for cells in reader]
    stats, last = ShardStats(), None
    for file, page, status, error in rows:
        if status not in STATUSES:
            raise DataError(f"{where}: not a formdigits shard (a row's status is {status!r})")
        stats.pages += (file, page) != last
        stats.rows += 1
        last = (file, page)
        if status == "error":
            stats.failed.append(error)
    return stats


def input_digest(files: Sequence[str]) -> str:
    """A digest of the input list: ``--resume`` goes on only over the same files in the same order."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


class ShardFolder:
    """The output folder (a local path or a URL) of a run with shards."""

    def __init__(self, url: str, fmt: str = "csv", names: Sequence[str] | None = None) -> None:
        if fmt not in SHARD_FORMATS:
            raise UsageError(f"shards are written as {' or '.join(SHARD_FORMATS)}, not {fmt}")
        self.url, self.fmt, self.names = str(url), fmt, list(names or [])
        self.fs, self.root = filesystem(self.url)

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def manifest(self) -> dict | None:
        """The folder's manifest, None if it has none."""
        try:
            return json.loads(self.fs.cat_file(self.path(MANIFEST)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise DataError(f"{self.url}: cannot read its {MANIFEST}: {e}") from None

    def start(self, files: Sequence[str], shard_files: int, resume: bool) -> dict[int, ShardStats]:
        """Check the folder for a run over ``files`` (made if missing); the shards already complete (``resume``)
        and their stats. A folder that holds another run is refused unless resumed, and a resumed one must be of
        the same input list and options."""
        header = {"formdigits": __version__, "format": self.fmt, "columns": list(columns(self.names)),
                  "inputs": len(files), "input_digest": input_digest(files), "shard_files": shard_files}  # fmt: skip
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise DataError(f"{self.url}: cannot make the folder: {e.strerror or e}") from None
        old = self.manifest()
        kept: dict[int, ShardStats] = {}
        if old is not None and not resume:
            raise UsageError(f"{self.url} holds a scan already ({MANIFEST}): give --resume to go on with it, "
                             "or another -o")  # fmt: skip
        if old is not None:
            differs = [k for k, v in header.items() if k != "formdigits" and old.get(k) != v]
            if differs:
                raise DataError(f"{self.url}: its scan was of other inputs or options ({', '.join(differs)} differ): "
                                "cannot resume it; give another -o")  # fmt: skip
            present = set(self._names())
            for index in range(n_shards(len(files), shard_files)):
                name = shard_name(index, self.fmt)
                if name in present:
                    kept[index] = read_stats(self.fs.cat_file(self.path(name)), self.fmt, self.path(name))
        self.header = header
        return kept

    def begin(self) -> None:
        """The manifest of a run under way (after :meth:`start`, once the cluster is there): ``complete: false``,
        the input digest and options, so that ``--resume`` can go on with it."""
        put_atomically(self.fs, self.path(MANIFEST), _json({**self.header, "complete": False, "shards": []}))

    def _names(self) -> list[str]:
        return [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]

    def write(self, index: int, pages: Sequence[Sequence[Row]]) -> str:
        """Write shard ``index`` whole; returns its path."""
        data = parquet_bytes(pages, self.names) if self.fmt == "parquet" else csv_bytes(pages, self.names)
        path = self.path(shard_name(index, self.fmt))
        put_atomically(self.fs, path, data)
        return path

    def finish(self, files: Sequence[str], shard_files: int, stats: dict[int, ShardStats]) -> None:
        """The manifest of the complete run: every shard, its input files, pages, rows and errors."""
        shards = []
        for index in range(n_shards(len(files), shard_files)):
            s = stats[index]
            first = index * shard_files
            shards.append({"name": shard_name(index, self.fmt), "first_input": first,
                           "inputs": min(shard_files, len(files) - first), "pages": s.pages, "rows": s.rows,
                           "errors": len(s.failed)})  # fmt: skip
        put_atomically(self.fs, self.path(MANIFEST), _json({**self.header, "complete": True, "shards": shards}))


def n_shards(n_files: int, shard_files: int) -> int:
    return -(-n_files // shard_files)


def _json(d: dict) -> bytes:
    return (json.dumps(d, indent=1, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape")


def merged_chunks(url: str) -> Iterable[bytes]:
    """The CSV of a complete run's shards, in input order, in pieces: the header once, then every shard's rows.
    DataError for a run that is not complete or a shard that is missing."""
    folder = ShardFolder(url)
    manifest = folder.manifest()
    if manifest is None:
        raise DataError(f"{url}: no {MANIFEST}: not a folder of shards from `formdigits scan --engine ray`")
    if not manifest.get("complete"):
        raise DataError(f"{url}: its scan is not complete: run it again with --resume first")
    names = [c for c in manifest["columns"] if c == "form"]
    head = csv_bytes([], names or None)
    yield head
    for shard in manifest["shards"]:
        path = folder.path(shard["name"])
        try:
            data = folder.fs.cat_file(path)
        except (FileNotFoundError, OSError) as e:
            raise DataError(f"{path}: cannot read this shard: {e}") from None
        if manifest["format"] == "parquet":
            rows = rows_of_parquet(data)
            yield csv_bytes([rows], names or None)[len(head):] if rows else b""
        else:
            if not data.startswith(head):
                raise DataError(f"{path}: its header is not the manifest's columns")
            yield data[len(head):]


def merge(url: str, output: str) -> int:
    """Join the shards of ``url`` into the one CSV ``output`` (``-``: stdout; a local file is written as
    ``OUTPUT.partial`` and renamed; a URL in one upload); returns the bytes written."""
    import sys

    chunks = merged_chunks(url)
    if output == "-":
        total = 0
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            total += len(chunk)
        sys.stdout.buffer.flush()
        return total
    if is_url(output):
        data = b"".join(chunks)
        fs, path = filesystem(output)
        put_atomically(fs, path, data)
        return len(data)
    partial, total = f"{output}.partial", 0
    try:
        with open(partial, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                total += len(chunk)
        os.replace(partial, output)
    except OSError as e:
        raise DataError(f"{output}: cannot write: {e.strerror or e}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return total
