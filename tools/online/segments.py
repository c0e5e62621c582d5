#!/usr/bin/env python3
"""Cost of simulator reports by period of the replay, side by side.

    python3 tools/online/segments.py REPORT.json [REPORT.json ...]

Each REPORT is a simulator --json file: one run (--policy) or a --compare
report (both of its results are read). The first result is the reference:
every other column gets its ratio to it. Costs integrate each report's
fleet_usd_per_hour time series; the LB column is the first report's
time-integrated LP bound. Periods: the quiet months (hours 0-2700), then
every 100 h (SEGMENTS=h0,h1,... overrides the boundaries).
"""
import json
import os
import sys


def results(path):
    with open(path) as f:
        d = json.load(f)
    rs = d["results"] if "results" in d else [d]
    return [(f"{os.path.basename(path)}:{r['policy']}", r) for r in rs]


def integrate(points, a, b, end):
    total = 0.0
    for i, (t0, v) in enumerate(points):
        t1 = points[i + 1][0] if i + 1 < len(points) else end
        lo, hi = max(t0, a), min(t1, b)
        if hi > lo:
            total += v * (hi - lo)
    return total


def main(paths):
    runs = [r for p in paths for r in results(p)]
    if not runs:
        sys.exit("no reports")
    end = max(r["simulated_hours"] for _, r in runs)
    bounds = [float(x) for x in os.environ.get("SEGMENTS", "").split(",") if x] or \
        [0, 2700] + list(range(2800, int(end) + 100, 100))
    bounds[-1] = max(bounds[-1], end)
    ref_lb = runs[0][1]["time_series"].get("lower_bound_usd_per_hour") or []
    print("hours\t" + "\t".join(n for n, _ in runs) + "\tLB\t" + "\t".join(f"{n} / first" for n, _ in runs[1:]))
    totals = [0.0] * (len(runs) + 1)
    for a, b in zip(bounds, bounds[1:]):
        row = [integrate(r["time_series"]["fleet_usd_per_hour"], a, b, end) for _, r in runs]
        row.append(integrate(ref_lb, a, b, end))
        totals = [t + x for t, x in zip(totals, row)]
        ratios = [f"{x / row[0]:.3f}" if row[0] else "-" for x in row[1:-1]]
        print(f"{a:.0f}-{b:.0f}\t" + "\t".join(f"{x:.2f}" for x in row) + "\t" + "\t".join(ratios))
    ratios = [f"{x / totals[0]:.3f}" for x in totals[1:-1]]
    print("total\t" + "\t".join(f"{x:.2f}" for x in totals) + "\t" + "\t".join(ratios))


if __name__ == "__main__":
    main(sys.argv[1:])
