#!/usr/bin/env python3
"""Joins the CSVs of benches/kernels.rs (ours) and scripts/bench_mamba.py (mamba_ssm) into the
Markdown table of docs/benchmarks.md.

usage: bench_table.py OURS.csv MAMBA.csv > table.md
"""
import csv
import sys


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    ours, mamba = load(sys.argv[1]), load(sys.argv[2])
    key = lambda r: (r["dtype"], int(r["B"]), int(r["D"]), int(r["L"]))
    m_scan = {key(r): float(r["us"]) for r in mamba if r["variant"] == "selective_scan_fn"}
    m_upd = {key(r): float(r["us"]) for r in mamba if r["variant"] == "selective_state_update"}
    auto = [r for r in ours if r["variant"] == "auto"]
    print("| dtype | B | D | L | ours µs | ours GB/s | mamba_ssm µs | speed-up | exp limit µs | ours / exp limit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in auto:
        k = key(r)
        us = float(r["us"])
        ref = m_upd.get(k) if k[3] == 1 else m_scan.get(k)
        ref_txt = "n/a" if ref is None else f"{ref:.1f}"
        if k[3] == 1 and k in m_scan:
            ref_txt += f" (scan {m_scan[k]:.1f})"
        ratio = "n/a" if ref is None else f"{ref / us:.2f}×"
        lim = float(r["exp_limit_us"])
        print(
            f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {us:.1f} | {float(r['gbps']):.0f} | "
            f"{ref_txt} | {ratio} | {lim:.1f} | {us / lim:.2f} |"
        )


if __name__ == "__main__":
    main()
