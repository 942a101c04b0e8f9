"""The Ray engine against the local one on the same cores: pages/s, 1 node vs 2, memory per node, same rows.

    python benchmarks/ray_bench.py /tmp/fd-bench --repeat 3                 # speed, interleaved A/B runs
    python benchmarks/ray_bench.py /tmp/fd-bench --memory 2000 --repeat 0   # memory per node over 2,000 pages

FOLDER is a set of pages (``scan_bench.py --out FOLDER`` makes one). Every run
is ``formdigits scan`` in a subprocess over the same file list, as a user runs
it: the local engine with 1 and 2 worker processes, and ``--engine ray`` on a
Ray cluster of this machine started here (``ray.cluster_utils.Cluster``: a head
node with one CPU, then a second node with one CPU added: "1 node" and "2
nodes"; each node's processes are its own raylet and workers, so memory is
sampled per node). Runs are interleaved (local 2, ray 2 nodes, local 1, ray
1 node; repeated), each with the load average beside it, since the machine is
shared. The Ray runs' merged CSV is compared byte for byte with the local CSV.
``--memory N`` feeds the file list round and round until N pages, on 2 nodes,
sampling each node's resident memory once a second. ``--stages N`` times, in this
process on one core, the Ray engine's three stages over N pages: the CPU task's
(fetch, decode, deskew, boxes, cut: ``analyse_page``), the actor's
(``read_analysed``: both readers and the orientation check, batches of 8 pages)
and the driver's (rows unpickled, collected, CSV shard bytes), plus the bytes a
page costs in transit (pickled analysed page) and in the output: the per-core
figures behind the projection in BENCHMARKS.md. Prints one JSON object.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_bench import _tree_rss_mb  # noqa: E402

from formdigits.pages import count_pages  # noqa: E402
from formdigits.pipeline import expand_paths  # noqa: E402


def load():
    return round(os.getloadavg()[0], 2)


def cpu_model():
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid):
    """A process and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


def _cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def node_pids(cluster):
    """Every process a node of the cluster started (raylet, GCS, monitors), its workers under the raylet."""
    nodes = [cluster.head_node, *cluster.worker_nodes]
    return [info.process.pid for n in nodes for infos in n.all_processes.values() for info in infos]


def raylet_pids(cluster):
    nodes = [cluster.head_node, *cluster.worker_nodes]
    return [n.all_processes["raylet"][0].process.pid for n in nodes]


def run(cmd, nodes=(), cpu_roots=()):
    """``(seconds, samples, cpu)``: the command's wall time; per second, the RSS (MB) of the command's process
    tree and of each node (its raylet and everything under it); the CPU seconds (user + system) that the
    command's processes and the nodes' spent while it ran (each process sampled 4 times a second: one that ends
    between two samples loses at most its last quarter second)."""
    import resource

    samples, t = [], time.perf_counter()
    cpu_roots = cpu_roots or nodes
    start = {p: _cpu_seconds(p) or 0.0 for n in cpu_roots for p in _tree(n)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    last: dict = {}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def sample():
        k = 0
        while proc.poll() is None:
            for p in {q for root in cpu_roots for q in _tree(root)}:
                c = _cpu_seconds(p)
                if c is not None:
                    last[p] = c
            if k % 4 == 0:
                samples.append([round(time.perf_counter() - t, 1), round(_tree_rss_mb(proc.pid))]
                               + [round(_tree_rss_mb(pid)) for pid in nodes])  # fmt: skip
            k += 1
            time.sleep(0.25)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    err = proc.communicate()[1]
    seconds = time.perf_counter() - t
    th.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and the children it waited for
    cpu = sum(c - start.get(p, 0.0) for p, c in last.items())
    cpu += after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, samples, round(cpu, 1)


def stage_times(files, n):
    """Per page, one core: ms in each of the Ray engine's stages, and the bytes moved."""
    import pickle

    import cv2

    from formdigits.distributed import PAGES_PER_BATCH, Collector
    from formdigits.pipeline import analyse_page, plan_pages, read_analysed, reuse_memory
    from formdigits.shards import csv_bytes
    from formdigits.batch import load_readers

    cv2.setNumThreads(1)
    reuse_memory()
    clf, strips, _, _ = load_readers(device="cpu", workers=1)  # one ONNX Runtime thread
    tasks = list(plan_pages(files, strip_params=strips.params))[:n]
    t = time.process_time()
    analysed = [analyse_page(task) for task in tasks]
    cpu_stage = time.process_time() - t
    transit = [len(pickle.dumps(w, protocol=5)) for w in analysed]
    crops = sum(len(w.crops or []) for w in analysed)
    files_bytes = sum(os.path.getsize(f) for f in {task.file for task in tasks})
    t = time.process_time()
    done = []
    for i in range(0, len(analysed), PAGES_PER_BATCH):
        done += list(read_analysed(analysed[i:i + PAGES_PER_BATCH], clf, strips, 0.9))
    actor_stage = time.process_time() - t
    blobs = [pickle.dumps(w.rows, protocol=5) for w in done]
    t = time.process_time()
    collector = Collector({0: len(blobs)})
    for seq, blob in enumerate(blobs):
        collector.add(0, seq, 1, 1, pickle.loads(blob))
    out = csv_bytes(collector.pop(0))
    driver = time.process_time() - t
    k = len(tasks)
    return {"pages": k, "ms_per_page": {"cpu_task": round(1000 * cpu_stage / k, 1),
                                        "actor": round(1000 * actor_stage / k, 1),
                                        "driver": round(1000 * driver / k, 2)},
            "kb_per_page": {"input_file": round(files_bytes / k / 1024, 1),
                            "analysed_page_pickled": round(sum(transit) / k / 1024, 1),
                            "rows_pickled": round(sum(map(len, blobs)) / k / 1024, 2),
                            "csv_out": round(len(out) / k / 1024, 2)},
            "crops_per_page": round(crops / k, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of interleaved speed runs")
    ap.add_argument("--memory", type=int, default=0, help="also a run of this many pages on 2 nodes, memory sampled")
    ap.add_argument("--stages", type=int, default=0, help="time the three stages in this process over N pages")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder [default: a temporary one]")
    args = ap.parse_args()

    if args.stages:
        files = expand_paths([str(args.folder)], recursive=True)
        print(json.dumps({"load_before": load(), **stage_times(files, args.stages), "load_after": load()}, indent=1))
        return
    import ray
    from ray.cluster_utils import Cluster

    work = Path(args.work or tempfile.mkdtemp(prefix="fd-raybench-"))
    work.mkdir(parents=True, exist_ok=True)
    files = expand_paths([str(args.folder)], recursive=True)
    pages = sum(count_pages(f) for f in files)
    listing = work / "files.txt"
    listing.write_text("".join(f + "\n" for f in files))
    scan = [sys.executable, "-m", "formdigits", "scan", "--files-from", str(listing), "-q"]
    merge = [sys.executable, "-m", "formdigits", "merge"]
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(), "nproc": os.cpu_count(),
           "cpu": cpu_model(), "ray": ray.__version__, "files": len(files), "pages": pages, "runs": []}  # fmt: skip

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = None
    try:
        def ray_run(tag, n):
            folder = work / f"ray-{tag}"
            subprocess.run(["rm", "-rf", str(folder)], check=True)
            before = load()
            seconds, samples, cpu = run(scan + ["--engine", "ray", "--ray-address", cluster.address, "-o", str(folder),
                                                "--shard-size", "20"], raylet_pids(cluster), node_pids(cluster))  # fmt: skip
            subprocess.run(merge + [str(folder), "-o", str(work / f"{tag}.csv")], check=True, capture_output=True)
            same = (work / f"{tag}.csv").read_bytes() == (work / "local-2.csv").read_bytes()
            return {"engine": "ray", "nodes": n, "seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 2),
                    "cpu_s": cpu, "cpu_ms_per_page": round(1000 * cpu / pages, 1),
                    "load_before": before, "load_after": load(), "same_bytes_as_local": same,
                    "peak_driver_mb": max((s[1] for s in samples), default=0),
                    "peak_node_mb": [max((s[2 + i] for s in samples), default=0) for i in range(n)]}  # fmt: skip

        def local_run(jobs):
            before = load()
            seconds, samples, cpu = run(scan + ["-j", str(jobs), "-o", str(work / f"local-{jobs}.csv")])
            return {"engine": "local", "jobs": jobs, "seconds": round(seconds, 2), "cpu_s": cpu,
                    "cpu_ms_per_page": round(1000 * cpu / pages, 1),
                    "pages_per_s": round(pages / seconds, 2), "load_before": before, "load_after": load(),
                    "peak_mb": max((s[1] for s in samples), default=0)}  # fmt: skip

        for r in range(args.repeat):
            out["runs"].append(local_run(2))
            if second is None:
                second = cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
            out["runs"].append(ray_run("2nodes", 2))
            out["runs"].append(local_run(1))
            cluster.remove_node(second)
            second = None
            cluster.wait_for_nodes()
            out["runs"].append(ray_run("1node", 1))
            print(json.dumps(out["runs"][-4:]), file=sys.stderr, flush=True)
        if args.memory:
            if second is None:
                second = cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
            rounds = -(-args.memory // pages)
            big = work / "files-big.txt"
            big.write_text("".join(f + "\n" for _ in range(rounds) for f in files))
            folder = work / "ray-memory"
            subprocess.run(["rm", "-rf", str(folder)], check=True)
            cmd = [sys.executable, "-m", "formdigits", "scan", "--files-from", str(big), "-q", "--engine", "ray",
                   "--ray-address", cluster.address, "-o", str(folder), "--shard-size", "50"]  # fmt: skip
            before = load()
            seconds, samples, cpu = run(cmd, raylet_pids(cluster), node_pids(cluster))
            n = len(samples)
            marks = {f"{p}%": samples[min(n - 1, n * p // 100)] for p in (10, 25, 50, 75, 90, 100)} if n else {}
            out["memory"] = {"pages": pages * rounds, "seconds": round(seconds, 1), "cpu_s": cpu,
                             "pages_per_s": round(pages * rounds / seconds, 2), "load_before": before,
                             "load_after": load(), "columns": "[seconds, driver MB, head node MB, second node MB]",
                             "samples_at": marks}  # fmt: skip
    finally:
        cluster.shutdown()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
