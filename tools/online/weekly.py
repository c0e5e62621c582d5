#!/usr/bin/env python3
"""Where over the trace the money goes: each report's fleet cost per week
(integrated from its time series, fleet $/h held until the next sample)
beside the fluid LP bound's, and the ratio.

usage: weekly.py [--floor DIR] REPORT.json [REPORT.json ...]   (reports of
one input; the first one's bound is used; e.g. bin/whole-cadence/*.json).
--floor DIR adds the discrete repacking floor of tools/online/floor.sh
(its snapshot reports in DIR, each held until the next) as a column."""
import json
import os
import sys

WEEK = 168.0


def integrate(steps, edges):
    out = [0.0] * (len(edges) - 1)
    for i, (h, v) in enumerate(steps):
        h2 = steps[i + 1][0] if i + 1 < len(steps) else edges[-1]
        for k in range(len(edges) - 1):
            lo, hi = max(h, edges[k]), min(h2, edges[k + 1])
            if hi > lo:
                out[k] += v * (hi - lo)
    return out


def floor_steps(out):
    """(hour, packed fleet $/h) of each snapshot report floor.sh wrote."""
    steps = []
    for name in os.listdir(out):
        if name.endswith(".json") and name[:-5].isdigit():
            with open(os.path.join(out, name)) as f:
                r = json.load(f)
            r = r["results"][0] if "results" in r else r
            steps.append((float(name[:-5]), r["final_fleet_usd_per_hour"]))
    if not steps:
        sys.exit(f"{out}: no snapshot reports (tools/online/floor.sh writes them)")
    return sorted(steps)


def main():
    args = sys.argv[1:]
    floor = None
    if args[:1] == ["--floor"]:
        if len(args) < 2:
            sys.exit(__doc__)
        floor, args = floor_steps(args[1]), args[2:]
    if not args:
        sys.exit(__doc__)
    reports = []
    for p in args:
        with open(p) as f:
            d = json.load(f)
        ts = d.get("time_series") or {}
        if not ts.get("fleet_usd_per_hour") or not ts.get("lower_bound_usd_per_hour"):
            sys.exit(f"{p}: no time series (fleet_usd_per_hour, lower_bound_usd_per_hour)")
        reports.append((os.path.basename(p)[:-5], d))
    hours = max(d["simulated_hours"] for _, d in reports)
    edges = [k * WEEK for k in range(int(hours // WEEK) + 1)] + ([hours] if hours % WEEK else [])
    bound = integrate(reports[0][1]["time_series"]["lower_bound_usd_per_hour"], edges)
    cols = {n: integrate(d["time_series"]["fleet_usd_per_hour"], edges) for n, d in reports}
    if floor:
        cols = {"floor": integrate(floor, edges), **cols}
        reports = [("floor", None)] + reports
    print("| from hour | LP bound | " + " | ".join(n for n, _ in reports) + " |")
    print("| ---: | ---: | " + " | ".join("---:" for _ in reports) + " |")
    for k in range(len(edges) - 1):
        cells = [f"${cols[n][k]:,.0f} ({cols[n][k] / bound[k]:.3f})" if bound[k] else f"${cols[n][k]:,.0f}" for n, _ in reports]
        print(f"| {edges[k]:.0f} | ${bound[k]:,.0f} | " + " | ".join(cells) + " |")
    print(f"| total | ${sum(bound):,.0f} | " + " | ".join(f"${sum(cols[n]):,.0f} ({sum(cols[n]) / sum(bound):.3f})" for n, _ in reports) + " |")


if __name__ == "__main__":
    main()
