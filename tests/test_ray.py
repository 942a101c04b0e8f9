"""The Ray engine (issue 21): the same rows as the local scan, shards, resume, S3 URLs, a node lost mid-run.

One small Ray cluster for the module (``ray.cluster_utils.Cluster``: a head node
with one CPU; the node-loss test adds a second node and kills it mid-run), and
an S3 server on the loopback (moto's), both started and stopped here. Without
Ray or moto these tests skip with the reason; under CI (``$CI`` set) they fail.
"""

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.distributed import Collector
from formdigits.output import Row
from formdigits.shards import MANIFEST, csv_bytes, parquet_bytes, rows_of_parquet

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def _unavailable(reason):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """An S3 server (moto's) on 127.0.0.1 with a bucket ``scans``; AWS_* variables point the S3 clients
    (s3fs, here and in Ray's workers, started after this) at it. Yields its URL, or None without moto."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as e:
        yield None, f"no S3 server for the test: {e} (pip install 'moto[server]' s3fs)"
        return
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client("s3").create_bucket(Bucket="scans")
        yield url, ""
    finally:
        server.terminate()
        server.wait(timeout=10)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def cluster(s3):
    """A Ray cluster of one head node (one CPU), this process its driver; what ray.init leaves in this process
    (its SIGTERM handler, two variables) is undone after."""
    try:
        import ray
        import ray.data  # noqa: F401
        from ray.cluster_utils import Cluster
    except ImportError as e:
        _unavailable(f"Ray is not installed ({e}): pip install 'formdigits[ray]'")
    env, sigterm = dict(os.environ), signal.getsignal(signal.SIGTERM)
    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
    except Exception as e:
        _unavailable(f"Ray cannot start here: {type(e).__name__}: {e}")
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        signal.signal(signal.SIGTERM, sigterm)
        for k in set(os.environ) - set(env):
            del os.environ[k]


@pytest.fixture(scope="module")
def pages(tmp_path_factory, mnist_dir):
    """16 synthetic pages in PNG, multi-page TIFF and PDF files, plus a broken file and an empty one."""
    from formdigits.mnist import load_mnist
    from formdigits.synth import DigitSource, generate

    out = tmp_path_factory.mktemp("raypages")
    generate(out, 16, seed=2101, digits=DigitSource(*load_mnist("test", mnist_dir)), style="realistic",
             formats=("png", "tif", "pdf"), pages_per_file=2)  # fmt: skip
    (out / "truth.csv").unlink()
    (out / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (out / "zz-empty.jpg").write_bytes(b"")
    return out


def _cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r


def _local(paths, out):
    r = _cli("scan", *paths, "-o", out, "-q", "-j", "0")
    assert r.exit_code in (0, 1), r.output
    return Path(out).read_bytes()


def test_samples_on_ray_are_byte_identical_to_the_local_scan(cluster, tmp_path):
    local = _local([SAMPLES], tmp_path / "local.csv")
    r = _cli("scan", SAMPLES, "--engine", "ray", "-o", tmp_path / "out", "--shard-size", 2, "-q")
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["complete"] and [s["name"] for s in manifest["shards"]] == [
        "part-000000.csv", "part-000001.csv", "part-000002.csv"]  # fmt: skip
    assert sum(s["pages"] for s in manifest["shards"]) == 7
    r = _cli("merge", tmp_path / "out", "-o", tmp_path / "merged.csv")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "merged.csv").read_bytes() == local


def test_synthetic_pages_with_broken_files_same_rows_in_csv_and_parquet(cluster, pages, tmp_path):
    local = _local([pages], tmp_path / "local.csv")
    assert b"zz-broken.png" in local and b",error," in local
    for fmt in ("csv", "parquet"):
        r = _cli("scan", pages, "--engine", "ray", "--format", fmt, "-o", tmp_path / fmt, "--shard-size", 3, "-q")
        assert r.exit_code == 1, r.output  # the broken files: error rows, exit 1 as locally
        files = [f for f in pages.iterdir() if f.suffix in (".png", ".tif", ".pdf", ".jpg")]
        assert len(list((tmp_path / fmt).glob(f"part-*.{fmt}"))) == -(-len(files) // 3)  # shards of 3 files
        r = _cli("merge", tmp_path / fmt, "-o", tmp_path / f"{fmt}.csv")
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"{fmt}.csv").read_bytes() == local, fmt


def test_resume_skips_complete_shards_and_refuses_other_inputs(cluster, tmp_path):
    out = tmp_path / "out"
    assert _cli("scan", SAMPLES, "--engine", "ray", "-o", out, "--shard-size", 1, "-q").exit_code == 0
    whole = _cli("merge", out, "-o", "-").stdout_bytes
    # an interrupted run: its manifest not complete, one shard not written
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "complete": False, "shards": []}))
    (out / "part-000003.csv").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    r = _cli("merge", out, "-o", tmp_path / "x.csv")
    assert r.exit_code == 1 and "not complete" in r.output
    r = _cli("scan", SAMPLES, "--engine", "ray", "-o", out, "--shard-size", 1)
    assert r.exit_code == 2 and "--resume" in r.output  # a folder holding a scan is not overwritten
    r = _cli("scan", SAMPLES, "--engine", "ray", "-o", out, "--shard-size", 1, "--resume", "-q")
    assert r.exit_code == 0, r.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*") if p.name in kept} == kept
    assert (out / "part-000003.csv").is_file()
    assert _cli("merge", out, "-o", "-").stdout_bytes == whole
    r = _cli("scan", SAMPLES, "--engine", "ray", "-o", out, "--shard-size", 2, "--resume", "-q")
    assert r.exit_code == 1 and "shard_files" in r.output  # other options: refused, named


def test_s3_inputs_and_outputs(cluster, s3, tmp_path):
    url, reason = s3
    if url is None:
        _unavailable(reason)
    import s3fs

    fs = s3fs.S3FileSystem()
    for f in sorted(SAMPLES.iterdir()):
        if f.suffix != ".csv":
            fs.put_file(str(f), f"scans/in/{f.name}")
    local = _local([SAMPLES], tmp_path / "local.csv")
    r = _cli("scan", "s3://scans/in/", "--engine", "ray", "-o", "s3://scans/out/", "--shard-size", 2, "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("scans/out")) == [
        MANIFEST, "part-000000.csv", "part-000001.csv", "part-000002.csv"]  # fmt: skip
    r = _cli("merge", "s3://scans/out/", "-o", "s3://scans/all.csv")
    assert r.exit_code == 0, r.output
    merged = fs.cat_file("scans/all.csv")
    assert merged == local.replace(str(SAMPLES).encode() + b"/", b"s3://scans/in/")
    # a file that is not there: an error row naming the URL, the others read
    r = _cli("scan", "s3://scans/in/census.jpg", "s3://scans/in/nothing.png", "--engine", "ray", "-o",
             "s3://scans/out2/", "-q")  # fmt: skip
    assert r.exit_code == 1, r.output
    rows = _cli("merge", "s3://scans/out2/", "-o", "-").stdout
    assert "s3://scans/in/nothing.png: no such file" in rows and rows.count(",ok,") > 5


def test_a_node_lost_mid_run_loses_no_page_and_writes_none_twice(cluster, pages, tmp_path):
    """A second node (two CPUs) is added; the tasks that land on it hang (fault injection: the node is started
    with HANG_FOR_TESTS set) until the node is killed with them in flight, its actor too if it has it. Ray runs
    them again on the head; every page is in the output once, the same rows as locally."""
    import ray

    from formdigits.distributed import HANG_FOR_TESTS, Settings, run_ray_scan
    from formdigits.raycli import expand_inputs
    from formdigits.sequence import StripReader

    local = _local([pages], tmp_path / "local.csv")
    hung = tmp_path / "hung"
    hung.mkdir()
    os.environ[HANG_FOR_TESTS] = str(hung)
    try:
        node = cluster.add_node(num_cpus=2)  # its raylet and workers get the variable, the head's do not
    finally:
        del os.environ[HANG_FOR_TESTS]
    cluster.wait_for_nodes()
    killed = threading.Event()

    def kill_when_hung():
        for _ in range(1200):
            if any(hung.iterdir()):
                cluster.remove_node(node, allow_graceful=False)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_hung, daemon=True)
    killer.start()
    files = expand_inputs([str(pages)])
    summary = run_ray_scan(files, str(tmp_path / "out"), Settings(strip_params=StripReader().params), shard_files=1)
    killer.join(timeout=1)
    if not killed.is_set():
        cluster.remove_node(node)
        pytest.fail("no task ran on the second node")
    for _ in range(120):  # Ray sees the node gone
        if len([n for n in ray.nodes() if n["Alive"]]) == 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail("Ray never saw the node go")
    assert summary.pages == 18 and not summary.stopped
    assert _cli("merge", tmp_path / "out", "-o", "-").stdout_bytes == local


def test_a_file_that_kills_its_worker_every_time_is_an_error_row_and_the_rest_are_read(cluster, pages, tmp_path):
    """A worker process that dies reading a file (a decoder crash) has its task run again TASK_RETRIES times;
    then that task's files are error rows (exit 1) and every other file is read, as the local scan's
    worker processes do (the run ends: no endless retries)."""
    from formdigits.distributed import TASK_RETRIES, Settings, run_ray_scan
    from formdigits.raycli import expand_inputs

    files = expand_inputs([str(pages)])
    bad = files[1]
    summary = run_ray_scan(files, str(tmp_path / "out"), Settings(readers="cut", crash_on=bad), shard_files=2)
    rows = list(csv.DictReader(io.StringIO(_cli("merge", tmp_path / "out", "-o", "-").stdout)))
    errors = [r for r in rows if r["status"] == "error"]
    crashed = {r["file"] for r in errors if f"the Ray task reading it failed {TASK_RETRIES + 1} times" in r["error"]}
    assert bad in crashed and len(crashed) <= len(files) // 2  # the dead task's files only
    assert {r["file"] for r in errors} - crashed == {f for f in files if "/zz-" in f}  # and the broken files
    read = {r["file"] for r in rows if r["status"] != "error"}
    assert read and read | {r["file"] for r in errors} == set(files)  # every file: read or an error row
    assert summary.exit_code == 1 and not summary.stopped


def test_collector_keeps_a_page_that_comes_twice_once():
    c = Collector({0: 2, 1: 1})
    assert c.add(0, 0, 1, 2, ["a1"]) == (True, False)
    assert c.add(0, 0, 1, 2, ["a1 again"]) == (False, False)  # a retried task's copy
    assert c.add(0, 1, 1, 1, ["b1"]) == (True, False)
    assert c.add(0, 0, 2, 2, ["a2"]) == (True, True)
    assert c.pop(0) == [["a1"], ["a2"], ["b1"]]
    assert c.add(0, 0, 2, 2, ["a2 again"]) == (False, False)  # after its shard was written
    assert c.add(1, 2, 1, 1, []) == (True, True)


def test_parquet_rows_give_back_the_same_csv():
    rows = [Row("a b.png", 1, 1, 1, 2, 3, 4, "0123", 0.98765, [0.9, 0.99999], "ok"),
            Row("=cmd.png", 2, "account", value="", status="error", error="=bad: page 2"),
            Row("x.png", 1, 2, value="7", confidence=0.5, digit_confidences=[0.5], status="review", error="low")]
    assert csv_bytes([rows_of_parquet(parquet_bytes([rows]))]) == csv_bytes([rows])


def test_engine_options_are_checked_up_front(tmp_path):
    r = _cli("scan", SAMPLES, "--format", "parquet", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "--engine ray" in r.output
    r = _cli("scan", SAMPLES, "--engine", "ray")
    assert r.exit_code == 2 and "-o FOLDER" in r.output
    r = _cli("scan", SAMPLES, "--engine", "ray", "--format", "jsonl", "-o", tmp_path / "x")
    assert r.exit_code == 2
    r = _cli("merge", tmp_path)
    assert r.exit_code == 1 and "no manifest.json" in r.output


def test_an_address_where_nothing_listens_fails_at_once_and_leaves_no_manifest(tmp_path):
    from formdigits.distributed import _check_reachable
    from formdigits.errors import DataError
    from formdigits.shards import ShardFolder

    with pytest.raises(DataError, match=f"cannot reach the Ray cluster at 127.0.0.1:{(port := _free_port())}"):
        _check_reachable(f"127.0.0.1:{port}")
    folder = ShardFolder(str(tmp_path / "out"))
    assert folder.start(["a.png"], 1, resume=False) == {}
    assert not (tmp_path / "out" / MANIFEST).exists()  # written by begin(), once the cluster is there
    folder.begin()
    assert not json.loads((tmp_path / "out" / MANIFEST).read_text())["complete"]


def test_the_local_scan_and_the_command_load_no_ray():
    code = ("import sys, formdigits.cli, formdigits.batch, formdigits.pipeline; "
            "heavy = [m for m in ('ray', 'pyarrow', 'fsspec') if m in sys.modules]; assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
