#!/usr/bin/env python3
"""The stages of `makemore bench`, in PyTorch and numpy: the lecture's way and the fastest way.

Prints one JSON object per timing (stage, impl, data, median_ms, min_ms, max_ms, reps, items),
with the same stage names as `makemore bench --json`, so that bench/compare.py can put the two
side by side. Every stage runs once as a warm-up, then up to --reps times (fewer once the runs
add up to --budget seconds, but at least two); the slow lecture loops run once.

    python3 bench/reference.py --input data/names.txt --pairs 10000000
    python3 bench/reference.py --lecture-train data/names.txt   # the lecture end to end, timed from outside
    python3 bench/reference.py --cuda                            # and the fastest step on a CUDA GPU

Needs torch and numpy (`pip install torch numpy`).
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

V = 27


def timed(fn, reps, budget, warmup=True):
    if warmup:
        fn()
    seconds = []
    while len(seconds) < reps:
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
        if len(seconds) >= 2 and sum(seconds) > budget:
            break
    return seconds


def report(stage, impl, data, seconds, items):
    median = statistics.median(seconds)
    print(json.dumps({
        "stage": stage, "impl": impl, "data": data, "median_ms": 1e3 * median,
        "min_ms": 1e3 * min(seconds), "max_ms": 1e3 * max(seconds), "reps": len(seconds),
        "items": items, "items_per_second": items / median,
    }), flush=True)


def read_words(path):
    with open(path, encoding="utf-8") as f:
        return [w.strip() for w in f.read().splitlines() if w.strip()]


def encode_lecture(words):
    """The lecture's loop: xs, ys lists over `.word.`, then tensors."""
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    xs, ys = [], []
    for w in words:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:]):
            xs.append(stoi[ch1])
            ys.append(stoi[ch2])
    return torch.tensor(xs), torch.tensor(ys)


def count_lecture(xs, ys):
    N = torch.zeros((V, V), dtype=torch.int32)
    for ix1, ix2 in zip(xs.tolist(), ys.tolist()):
        N[ix1, ix2] += 1
    return N


def step_lecture(W, xs, ys):
    """One step as the lecture writes it: one-hot @ W, exp, normalize, NLL, backward, update."""
    xenc = F.one_hot(xs, num_classes=V).float()
    logits = xenc @ W
    counts = logits.exp()
    probs = counts / counts.sum(1, keepdims=True)
    loss = -probs[torch.arange(len(xs)), ys].log().mean() + 0.01 * (W**2).mean()
    W.grad = None
    loss.backward()
    W.data += -50 * W.grad
    return loss.item()


def step_fastest(W, xs, ys):
    """One step the fastest way PyTorch offers: a row gather and the fused cross entropy."""
    loss = F.cross_entropy(W[xs], ys) + 0.01 * (W**2).mean()
    W.grad = None
    loss.backward()
    W.data += -50 * W.grad
    return loss.item()


def sample_lecture(P, count, g):
    names = []
    for _ in range(count):
        out, ix = [], 0
        while True:
            ix = torch.multinomial(P[ix], num_samples=1, replacement=True, generator=g).item()
            if ix == 0:
                break
            out.append(ix)
        names.append(out)
    return names


def sample_torch(P, count, g):
    """Vectorized inverse-CDF sampling: all names advance one character per iteration."""
    cdf = P.cumsum(1)
    cdf[:, -1] = 1.0
    ctx = torch.zeros(count, dtype=torch.long)
    alive = torch.arange(count)
    symbols = []  # symbols[t][i]: character t of the names alive at step t
    while len(alive) > 0:
        u = torch.rand(len(alive), generator=g)
        nxt = torch.searchsorted(cdf[ctx[alive]], u[:, None], right=True).squeeze(1)
        nxt = nxt.clamp(max=V - 1)
        symbols.append((alive, nxt))
        ctx[alive] = nxt
        alive = alive[nxt != 0]
    return symbols


def sample_numpy(P, count, rng):
    cdf = np.cumsum(P, axis=1)
    cdf[:, -1] = 1.0
    ctx = np.zeros(count, dtype=np.int64)
    alive = np.arange(count)
    symbols = []  # symbols[t]: (which names, their character t)
    while len(alive) > 0:
        u = rng.random(len(alive))
        rows = cdf[ctx[alive]]
        nxt = np.minimum((rows <= u[:, None]).sum(1), V - 1)
        symbols.append((alive, nxt))
        ctx[alive] = nxt
        alive = alive[nxt != 0]
    return symbols


def bench(data, xs, ys, args, words=None):
    n = len(xs)
    reps, budget = args.reps, args.budget
    xs_np, ys_np = xs.numpy(), ys.numpy()
    if words is not None:
        report("encode", "lecture", data, timed(lambda: encode_lecture(words), reps, budget), n)
        if not args.skip_loops:
            report("count", "lecture", data, timed(lambda: count_lecture(xs, ys), 1, 0, False), n)
    report("count", "torch", data,
           timed(lambda: torch.bincount(xs * V + ys, minlength=V * V).view(V, V), reps, budget), n)
    report("count", "numpy", data,
           timed(lambda: np.bincount(xs_np * V + ys_np, minlength=V * V).reshape(V, V), reps, budget), n)
    N = torch.bincount(xs * V + ys, minlength=V * V).view(V, V)
    N_np = N.numpy()

    def normalize_torch():
        P = (N + 1).float()
        P /= P.sum(1, keepdim=True)
        return P

    def normalize_numpy():
        P = (N_np + 1).astype(np.float32)
        return P / P.sum(1, keepdims=True)

    report("normalize", "torch", data, timed(normalize_torch, reps, budget), V * V)
    report("normalize", "numpy", data, timed(normalize_numpy, reps, budget), V * V)
    P, P_np = normalize_torch(), normalize_numpy()
    report("nll", "torch", data, timed(lambda: -P[xs, ys].log().mean().item(), reps, budget), n)
    report("nll", "numpy", data,
           timed(lambda: -np.log(P_np[xs_np, ys_np]).mean(), reps, budget), n)

    g = torch.Generator().manual_seed(2147483647)
    W = torch.randn((V, V), generator=g, requires_grad=True)
    if words is not None:
        report("step_examples", "lecture", data,
               timed(lambda: step_lecture(W, xs, ys), reps, budget), n)
    report("step_examples", "torch", data, timed(lambda: step_fastest(W, xs, ys), reps, budget), n)
    if args.cuda:
        # The same step on the GPU; loss.item() waits for it.
        Wc = W.detach().cuda().requires_grad_()
        xc, yc = xs.cuda(), ys.cuda()
        report("step_examples", "torch_cuda", data,
               timed(lambda: step_fastest(Wc, xc, yc), reps, budget), n)

    if words is not None:
        count = args.names
        if not args.skip_loops:
            lecture_names = max(count // 100, 100)
            report("sample", "lecture", data,
                   timed(lambda: sample_lecture(P, lecture_names, g), 1, 0, False), lecture_names)
        report("sample", "torch", data, timed(lambda: sample_torch(P, count, g), reps, budget), count)
        rng = np.random.default_rng(1)
        P64 = P_np.astype(np.float64)
        report("sample", "numpy", data, timed(lambda: sample_numpy(P64, count, rng), reps, budget),
               count)


def lecture_train(path):
    """The lecture's code for what `makemore train --samples 20` does: count with the loop,
    the count model's NLL, 100 steps the lecture's way, 20 names from each model."""
    words = read_words(path)
    xs, ys = encode_lecture(words)
    N = count_lecture(xs, ys)
    P = (N + 1).float()
    P /= P.sum(1, keepdim=True)
    nll = -P[xs, ys].log().mean().item()
    g = torch.Generator().manual_seed(2147483647)
    W = torch.randn((V, V), generator=g, requires_grad=True)
    for _ in range(100):
        loss = step_lecture(W, xs, ys)
    sample_lecture(P, 20, g)
    sample_lecture(F.softmax(W.detach(), dim=1), 20, g)
    print(json.dumps({"count_nll": nll, "final_loss": loss}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", default="data/names.txt")
    parser.add_argument("--pairs", type=int, default=10_000_000,
                        help="random (previous, next) pairs of the large data set; 0 skips it")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--skip-loops", action="store_true",
                        help="leave out the lecture's Python loops (count, sampling)")
    parser.add_argument("--lecture-train", metavar="FILE",
                        help="run the lecture end to end on FILE and exit")
    parser.add_argument("--cuda", action="store_true",
                        help="also time the fastest step on a CUDA GPU (impl torch_cuda)")
    args = parser.parse_args()
    if args.cuda and not torch.cuda.is_available():
        parser.error("--cuda: torch sees no CUDA GPU")
    if args.lecture_train:
        lecture_train(args.lecture_train)
        return
    print(json.dumps({"torch": torch.__version__, "numpy": np.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    words = read_words(args.input)
    xs, ys = encode_lecture(words)
    bench("names", xs, ys, args, words)
    if args.pairs > 0:
        label = f"{args.pairs // 1_000_000}M pairs" if args.pairs % 1_000_000 == 0 else f"{args.pairs} pairs"
        rng = torch.Generator().manual_seed(1)
        xs = torch.randint(0, V, (args.pairs,), generator=rng)
        ys = torch.randint(0, V, (args.pairs,), generator=rng)
        bench(label, xs, ys, args)


if __name__ == "__main__":
    main()
