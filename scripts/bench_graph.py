"""CUDA-graph timing shared by bench_mamba.py and bench_mamba2.py, the same method as
benches/common (Rust): a graph of REPS back-to-back calls, replayed WARMUP times, then TIMED
replays timed with events; the median replay over REPS, in µs."""
import statistics

import torch

REPS, WARMUP, TIMED = 20, 3, 15


def time_graph(fn):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):  # warm-up outside the graph (Triton compiles and autotunes here)
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(REPS):
            fn()
    for _ in range(WARMUP):
        g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(TIMED):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        g.replay()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1) * 1000.0 / REPS)
    return statistics.median(times)
