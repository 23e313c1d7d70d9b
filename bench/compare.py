#!/usr/bin/env python3
"""Runs `makemore bench`, `bench --kernels`, bench/reference.py and `makemore train` on streamed
files in one go, and prints the markdown tables of BENCHMARKS.md: every stage side by side,
then each goal's measured ratio, its bound, and met or missed.

    cargo build --release
    python3 bench/compare.py --python /path/to/venv/bin/python > /tmp/report.md
    python3 bench/compare.py --quick        # a few minutes less: smaller data, fewer runs

Without a Python that imports torch, the PyTorch and numpy columns print "-" and the goals
against them "no reference". The raw JSON lines of every run are kept in --raw (a directory);
the streamed files are written to a temporary directory and deleted afterwards.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def run(cmd, raw_dir, name):
    print(f"running: {' '.join(cmd)}", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    with open(os.path.join(raw_dir, name), "w") as f:
        f.write(out)
    return json_lines(out)


def wall(cmd, reps):
    """Median wall time of a whole process, start to exit, the runs' times, and its JSON."""
    print(f"running {reps}x: {' '.join(cmd)}", file=sys.stderr, flush=True)
    seconds, out = [], ""
    for _ in range(reps):
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), seconds, json_lines(out)


def ms(x):
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def ratio(a, b):
    return None if a is None or b is None else a / b


def has_torch(python):
    ok = subprocess.run([python, "-c", "import torch, numpy"], capture_output=True)
    return ok.returncode == 0


def parse_args():
    parser = argparse.ArgumentParser(description="Benchmarks makemore against its goals.")
    parser.add_argument("--makemore", default="target/release/makemore")
    parser.add_argument("--python", default=sys.executable, help="a Python with torch and numpy")
    parser.add_argument("--data", default="names,10m", help="makemore bench --data")
    parser.add_argument("--pairs", default="10000000", help="reference.py --pairs")
    parser.add_argument("--reps", default="5", help="repetitions of bench, reference, --kernels")
    parser.add_argument("--e2e-reps", type=int, default=3,
                        help="runs of `train` and the lecture end to end (0 leaves them out)")
    parser.add_argument("--k3-reps", default="2",
                        help="repetitions of the context-3 counts path (1000 steps on the names)")
    parser.add_argument("--stream-mib", type=int, default=150,
                        help="the streamed file timed on both devices, MiB (0 leaves it out)")
    parser.add_argument("--big-mib", type=int, default=1024,
                        help="the streamed file timed on the GPU for MB/s, MiB (0 leaves it out)")
    parser.add_argument("--stream-reps", type=int, default=3, help="runs on the --stream-mib file")
    parser.add_argument("--stream-steps", default="10", help="train --steps on the streamed files")
    parser.add_argument("--no-reference", action="store_true", help="skip bench/reference.py")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: --data names,1m --pairs 1000000 --reps 2 --k3-reps 1 "
                             "--e2e-reps 0 --stream-mib 16 --big-mib 64 --stream-reps 1")
    parser.add_argument("--raw", default="/tmp/makemore-bench")
    args = parser.parse_args()
    if args.quick:
        args.data, args.pairs, args.reps, args.k3_reps = "names,1m", "1000000", "2", "1"
        args.e2e_reps, args.stream_mib, args.big_mib, args.stream_reps = 0, 16, 64, 1
    return args


def streamed(args, tmp):
    """`train` on files written by make_corpus.py: the --stream-mib file on both devices, the
    --big-mib one on the GPU. Per (file, device): (MiB, bytes, median seconds, the device
    `train` reported)."""
    times = {}
    for role, mib, devices, reps in [("small", args.stream_mib, ["gpu", "cpu"], args.stream_reps),
                                     ("big", args.big_mib, ["gpu"], 1)]:
        if mib <= 0:
            continue
        path = os.path.join(tmp, f"corpus{mib}.txt")
        subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), path,
                        "--mib", str(mib)], check=True, capture_output=True)
        size = os.path.getsize(path)
        for device in devices:
            cmd = [args.makemore, "train", "--device", device, "--input", path, "--steps",
                   args.stream_steps, "--samples", "1", "--json",
                   "--work-dir", os.path.join(tmp, f"work_{device}")]
            median, runs, out = wall(cmd, reps)
            adapter = next((t["device"] for t in out if t.get("event") == "device"), "")
            print(f"  {', '.join(f'{s:.2f}' for s in runs)} s on {adapter}", file=sys.stderr)
            times[(role, device)] = (mib, size, median, adapter)
        os.remove(path)
    return times


def stage_table(ours, theirs, e2e):
    """Every stage of `makemore bench` next to the reference's, medians in ms."""
    def our(stage, data, device):
        return next((t for t in ours if t["stage"] == stage and t["data"] == data
                     and t["device"] == device), None)

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
        torch_t = median(theirs(stage, data, "torch"))
        numpy_t = median(theirs(stage, data, "numpy"))
        lecture_t = median(theirs(stage, data, "lecture"))
        if stage == "sample":
            # Same number of names for ours, torch and numpy; the lecture loop draws fewer.
            lt = theirs("sample", data, "lecture")
            if lt:
                lecture_t = lt["median_ms"] * next(
                    t["items"] for t in ours if t["stage"] == "sample") / lt["items"]
        print(f"| {stage} | {data} | {ms(gpu)} | {ms(cpu)} | {ms(torch_t)} | {ms(numpy_t)} | "
              f"{ms(lecture_t)} |")
    if e2e:
        ours_e2e, ref_e2e = e2e
        print(f"| train end to end (process) | names | {ms(1e3 * ours_e2e)} | | | | "
              f"{ms(1e3 * ref_e2e) if ref_e2e else '-'} |")


def verdict(x, bound, missing, stretch=None):
    """met or missed for x <= bound (x >= -bound for a negative bound), or why not measured."""
    if x is None:
        return missing
    met = x >= -bound if bound < 0 else x <= bound
    text = "met" if met else "missed"
    if met and stretch is not None:
        text += ", stretch " + ("met" if x <= stretch else "missed")
    return text


def goals(ours, theirs, kernels, streams, big):
    """The goals' rows: goal, measured figures, ratio, bound, verdict; and the kernels over
    1 MB with their fractions."""
    def our(stage, data, device):
        t = next((t for t in ours if t["stage"] == stage and t["data"] == data
                  and t["device"] == device), None)
        return None if t is None else t["median_ms"]

    def ref(stage, data, impl):
        t = theirs(stage, data, impl)
        return None if t is None else t["median_ms"]

    def why(*pairs):
        """What is missing: the first of (value, reason) whose value is None."""
        return next((reason for value, reason in pairs if value is None), "-")

    rows = []
    gpu, cpu, torch = (our("step_examples", "names", "gpu"), our("step_examples", "names", "cpu"),
                       ref("step_examples", "names", "torch"))
    missing = why((torch, "no reference"), (gpu, "no GPU"))
    rows.append(("per-example full-batch step, names: GPU / PyTorch's fastest",
                 f"GPU {ms(gpu)} ms, PyTorch {ms(torch)} ms", ratio(gpu, torch),
                 "<= 1.0 (stretch 0.7)", verdict(ratio(gpu, torch), 1.0, missing, 0.7)))
    gpu, cpu3 = (our("steps_counts_1000_k3", "names", "gpu"),
                 our("steps_counts_1000_k3", "names", "cpu"))
    rows.append(("1,000 counts-path steps at context 3: GPU / CPU",
                 f"GPU {ms(gpu)} ms, CPU {ms(cpu3)} ms", ratio(gpu, cpu3), "<= 0.8",
                 verdict(ratio(gpu, cpu3), 0.8, why((cpu3, "no CPU run"), (gpu, "no GPU")))))
    gpu, cpu_nll = our("nll", big, "gpu"), our("nll", big, "cpu")
    rows.append((f"NLL over {big}: GPU / CPU", f"GPU {ms(gpu)} ms, CPU {ms(cpu_nll)} ms",
                 ratio(gpu, cpu_nll), "<= 2",
                 verdict(ratio(gpu, cpu_nll), 2.0, why((cpu_nll, "no CPU run"), (gpu, "no GPU")))))
    gpu, numpy = our("count", big, "gpu"), ref("count", big, "numpy")
    rows.append((f"counting {big}: GPU / numpy's bincount",
                 f"GPU {ms(gpu)} ms, numpy {ms(numpy)} ms", ratio(gpu, numpy), "<= 1",
                 verdict(ratio(gpu, numpy), 1.0, why((numpy, "no reference"), (gpu, "no GPU")))))
    rows += streamed_rows(streams)
    over = [k for k in kernels if k.get("fraction_of_ceiling") is not None
            and k["bytes_read"] + k["bytes_written"] > 1e6]
    worst = min((k["fraction_of_ceiling"] for k in over), default=None)
    at = sum(k["fraction_of_ceiling"] >= 0.5 for k in over)
    rows.append(("every kernel moving > 1 MB at >= 50% of its ceiling (the lowest fraction)",
                 f"{at} of {len(over)} kernels at >= 50%", worst, ">= 0.5",
                 verdict(worst, -0.5, "no timestamps" if kernels else "no GPU")))
    rows.append(("the CPU path's per-example step / PyTorch's fastest",
                 f"CPU {ms(cpu)} ms, PyTorch {ms(torch)} ms", ratio(cpu, torch), "<= 0.5",
                 verdict(ratio(cpu, torch), 0.5, why((torch, "no reference")))))
    return rows, over


def streamed_rows(streams):
    """The streamed files' goals: GPU / CPU time on the smaller file, MB/s on the larger. A
    GPU run that fell back to the CPU counts as none."""
    def gpu_seconds(role):
        t = streams.get((role, "gpu"))
        return None if t is None or "CPU reference" in t[3] else t[2]

    rows = []
    if ("small", "cpu") in streams:
        mib, _, cpu, _ = streams[("small", "cpu")]
        g = gpu_seconds("small")
        rows.append((f"a {mib} MiB file through the default streamed path: GPU / CPU time",
                     f"GPU {'-' if g is None else f'{g:.2f}'} s, CPU {cpu:.2f} s", ratio(g, cpu), "<= 3",
                     verdict(ratio(g, cpu), 3.0, "no GPU")))
    if ("big", "gpu") in streams:
        mib, size, seconds, _ = streams[("big", "gpu")]
        g = gpu_seconds("big")
        rate = None if g is None else size / 1e6 / g
        rows.append((f"a {mib} MiB file on the GPU: MB/s", f"{size / 1e6:,.0f} MB in "
                     f"{seconds:.1f} s", rate, ">= 100", verdict(rate, -100.0, "no GPU")))
    return rows


def main():
    args = parse_args()
    os.makedirs(args.raw, exist_ok=True)
    load_before = os.getloadavg()
    ours = run([args.makemore, "bench", "--json", "--data", args.data, "--reps", args.reps],
               args.raw, "makemore.jsonl")
    peak = next((t["peak_memory_mib"] for t in ours if "peak_memory_mib" in t), None)
    ours = [t for t in ours if "stage" in t]
    k3 = run([args.makemore, "bench", "--json", "--data", "names", "--stages",
              "steps_counts_1000_k3", "--reps", args.k3_reps], args.raw, "makemore_k3.jsonl")
    ours += [t for t in k3 if "stage" in t]
    big = next((t["data"] for t in ours if t["data"] != "names"), None)
    try:
        kernels = run([args.makemore, "bench", "--kernels", "--json", "--reps", args.reps],
                      args.raw, "kernels.jsonl")
    except subprocess.CalledProcessError as e:
        print(f"bench --kernels failed: {e.stderr.strip()}", file=sys.stderr)
        kernels = [{}]
    kernel_head, kernels = kernels[0], [k for k in kernels[1:] if "kernel" in k]
    ref = []
    if args.no_reference or not has_torch(args.python):
        print(f"no reference: {args.python} cannot import torch and numpy (or --no-reference)",
              file=sys.stderr)
    else:
        ref = run([args.python, os.path.join(HERE, "reference.py"), "--input", "data/names.txt",
                   "--pairs", args.pairs, "--reps", args.reps], args.raw, "reference.jsonl")
    e2e = None
    if args.e2e_reps > 0:
        ours_e2e = wall([args.makemore, "train", "--samples", "20"], args.e2e_reps)[0]
        ref_e2e = None
        if ref:
            ref_e2e = wall([args.python, os.path.join(HERE, "reference.py"),
                            "--lecture-train", "data/names.txt"], args.e2e_reps)[0]
        e2e = (ours_e2e, ref_e2e)
    tmp = tempfile.mkdtemp(prefix="makemore-compare-")
    try:
        streams = streamed(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    def theirs(stage, data, impl):
        return next((t for t in ref if t.get("stage") == stage and t.get("data") == data
                     and t.get("impl") == impl), None)

    adapter = next((t["adapter"] for t in ours if t.get("device") == "gpu"), "none")
    versions = ref[0] if ref and "torch" in ref[0] else {}
    print(f"GPU adapter: {adapter}; PyTorch {versions.get('torch', '-')} "
          f"({versions.get('threads', '-')} threads), numpy {versions.get('numpy', '-')}")
    load = lambda avg: ", ".join(f"{x:.2f}" for x in avg)
    print(f"load average (1, 5, 15 min): before {load(load_before)}; after {load(load_after)}\n")
    stage_table(ours, theirs, e2e)
    rows, over = goals(ours, theirs, kernels, streams, big)
    print("\n| goal | measured | ratio | bound | verdict |")
    print("|---|---|---|---|---|")
    for goal, measured, x, bound, text in rows:
        print(f"| {goal} | {measured} | {'-' if x is None else f'{x:.3g}'} | {bound} | {text} |")
    if over:
        ceil = kernel_head.get("ceilings", {})
        print(f"\nKernels moving more than 1 MB (`bench --kernels`; ceilings: copy "
              f"{ceil.get('gb_per_s', 0):.2f} GB/s, exp {ceil.get('ns_per_exp', 0):.3f} ns, "
              f"dispatch {ceil.get('us_per_dispatch', 0):.1f} us):\n")
        print("| kernel | operation | MB moved | GPU ms | model ms | of ceiling | bound |")
        print("|---|---|---|---|---|---|---|")
        for k in over:
            print(f"| {k['kernel']} | {k['operation']} | "
                  f"{(k['bytes_read'] + k['bytes_written']) / 1e6:.1f} | {ms(k['gpu_ms'])} | "
                  f"{ms(k['model_ms'])} | {100 * k['fraction_of_ceiling']:.1f}% | {k['bound']} |")
    if peak is not None:
        print(f"\nmakemore bench peak memory: {peak:.0f} MiB")
    with open(os.path.join(args.raw, "goals.json"), "w") as f:
        json.dump([dict(zip(["goal", "measured", "ratio", "bound", "verdict"], r)) for r in rows],
                  f, indent=1)


if __name__ == "__main__":
    main()
