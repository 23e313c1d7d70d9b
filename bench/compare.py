#!/usr/bin/env python3
"""Runs `makemore bench` and bench/reference.py in one go, plus both ends to end, and prints
the markdown tables of BENCHMARKS.md: every stage side by side, and the targets as ratios.

    cargo build --release
    python3 bench/compare.py --python /path/to/venv/bin/python > /tmp/report.md

The raw JSON lines of both runs are kept in --raw (a directory) for inspection.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def run(cmd, raw_dir, name):
    print(f"running: {' '.join(cmd)}", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    with open(os.path.join(raw_dir, name), "w") as f:
        f.write(out)
    return json_lines(out)


def wall(cmd, reps):
    """Median wall time of a whole process, start to exit."""
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), seconds


def ms(x):
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--makemore", default="target/release/makemore")
    parser.add_argument("--python", default=sys.executable, help="a Python with torch and numpy")
    parser.add_argument("--data", default="names,10m", help="makemore bench --data")
    parser.add_argument("--pairs", default="10000000", help="reference.py --pairs")
    parser.add_argument("--reps", default="5")
    parser.add_argument("--e2e-reps", type=int, default=3)
    parser.add_argument("--raw", default="/tmp/makemore-bench")
    parser.add_argument("--k3-reps", default="2",
                        help="repetitions of the context-3 counts path (1000 steps on the names)")
    args = parser.parse_args()
    os.makedirs(args.raw, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))

    ours = run([args.makemore, "bench", "--json", "--data", args.data, "--reps", args.reps],
               args.raw, "makemore.jsonl")
    peak = next((t["peak_memory_mib"] for t in ours if "peak_memory_mib" in t), None)
    ours = [t for t in ours if "stage" in t]
    k3 = run([args.makemore, "bench", "--json", "--data", "names", "--stages",
              "steps_counts_1000_k3", "--reps", args.k3_reps], args.raw, "makemore_k3.jsonl")
    ours += [t for t in k3 if "stage" in t]
    ref = run([args.python, os.path.join(here, "reference.py"), "--input", "data/names.txt",
               "--pairs", args.pairs, "--reps", args.reps], args.raw, "reference.jsonl")
    ours_e2e, ours_runs = wall([args.makemore, "train", "--samples", "20"], args.e2e_reps)
    ref_e2e, ref_runs = wall([args.python, os.path.join(here, "reference.py"),
                              "--lecture-train", "data/names.txt"], args.e2e_reps)

    adapter = next((t["adapter"] for t in ours if t.get("device") == "gpu"), "none")
    versions = ref[0] if ref and "torch" in ref[0] else {}
    print(f"GPU adapter: {adapter}; PyTorch {versions.get('torch')} "
          f"({versions.get('threads')} threads), numpy {versions.get('numpy')}\n")

    def our(stage, data, device):
        for t in ours:
            if t["stage"] == stage and t["data"] == data and t["device"] == device:
                return t
        return None

    def theirs(stage, data, impl):
        for t in ref:
            if t.get("stage") == stage and t.get("data") == data and t.get("impl") == impl:
                return t
        return None

    def median(t):
        return None if t is None else t["median_ms"]

    print("| stage | data | makemore GPU ms | makemore CPU ms | PyTorch ms | numpy ms | lecture ms |")
    print("|---|---|---|---|---|---|---|")
    keys = []
    for t in ours:
        if (t["stage"], t["data"]) not in keys:
            keys.append((t["stage"], t["data"]))
    for stage, data in keys:
        host = our(stage, data, "host")
        gpu = median(our(stage, data, "gpu")) if host is None else median(host)
        cpu = median(our(stage, data, "cpu")) if host is None else median(host)
        ref_stage = "step_examples" if stage.startswith("step") else stage
        torch_t = median(theirs(ref_stage, data, "torch"))
        numpy_t = median(theirs(ref_stage, data, "numpy"))
        lecture_t = median(theirs(ref_stage, data, "lecture"))
        if stage == "sample":
            # Same number of names for ours, torch and numpy; the lecture loop draws fewer.
            lt = theirs("sample", data, "lecture")
            if lt:
                lecture_t = lt["median_ms"] * next(
                    t["items"] for t in ours if t["stage"] == "sample") / lt["items"]
        print(f"| {stage} | {data} | {ms(gpu)} | {ms(cpu)} | {ms(torch_t)} | {ms(numpy_t)} | "
              f"{ms(lecture_t)} |")
    print(f"| train end to end (process) | names | {ms(1e3 * ours_e2e)} | | | | {ms(1e3 * ref_e2e)} |")

    def ratio(a, b):
        return None if a is None or b is None else a / b

    print("\n| target | needed | GPU | CPU | met |")
    print("|---|---|---|---|---|")
    torch_step = median(theirs("step_examples", "names", "torch"))
    rows = []
    g = ratio(median(our("step_examples", "names", "gpu")), torch_step)
    c = ratio(median(our("step_examples", "names", "cpu")), torch_step)
    rows.append(("1. per-example step / PyTorch fastest step", "<= 0.333", g, c, 1 / 3, "le"))
    g = ratio(median(our("steps_counts_1000", "names", "gpu")), torch_step)
    c = ratio(median(our("steps_counts_1000", "names", "cpu")), torch_step)
    rows.append(("2. 1000 counts-path steps / one PyTorch step", "< 1", g, c, 1.0, "lt"))
    big = next((d for s, d in keys if d != "names"), None)
    numpy_count = median(theirs("count", big, "numpy")) if big else None
    g = ratio(median(our("count", big, "gpu")), numpy_count)
    c = ratio(median(our("count", big, "cpu")), numpy_count)
    rows.append((f"3. count {big} / numpy bincount", "GPU <= 1, CPU <= 0.5", g, c, None, "count"))
    numpy_sample = theirs("sample", "names", "numpy")
    ours_sample = our("sample", "names", "host")
    s = None
    if numpy_sample and ours_sample:
        s = ours_sample["items_per_second"] / numpy_sample["items_per_second"]
    rows.append(("4. names per second / numpy vectorized", ">= 10", s, s, 10.0, "ge"))
    e = ref_e2e / ours_e2e
    rows.append(("5. lecture end to end / `train` end to end", ">= 20", e, None, 20.0, "ge"))
    k3_cpu = median(our("steps_counts_1000_k3", "names", "cpu"))
    g = ratio(median(our("steps_counts_1000_k3", "names", "gpu")), k3_cpu)
    rows.append(("1000 counts-path steps at context 3, GPU / CPU", "< 1", g, None, 1.0, "lt"))
    for name, needed, g, c, bound, kind in rows:
        def met(x, bound=bound, kind=kind, which=None):
            if x is None:
                return None
            if kind == "le":
                return x <= bound
            if kind == "lt":
                return x < bound
            if kind == "ge":
                return x >= bound
            return x <= (1.0 if which == "gpu" else 0.5)
        verdicts = [v for v in (met(g, which="gpu"), met(c, which="cpu")) if v is not None]
        verdict = "-" if not verdicts else ("yes" if all(verdicts) else "no")
        fmt = lambda x: "-" if x is None else f"{x:.3g}"
        print(f"| {name} | {needed} | {fmt(g)} | {fmt(c)} | {verdict} |")
    if peak is not None:
        print(f"\nmakemore bench peak memory: {peak:.0f} MiB")
    print(f"\nend to end, seconds per run: makemore {['%.2f' % x for x in ours_runs]}, "
          f"lecture {['%.2f' % x for x in ref_runs]}")


if __name__ == "__main__":
    main()
