#!/usr/bin/env python3
"""Summarises tools/online/floor.sh: the packed fleet's $/h at each sampled
moment (final_fleet_usd_per_hour of a --snapshot run) against the LP bound's
$/h there, integrated over time (each sample holds until the next).
  python3 tools/online/floor.py DIR [UNTIL_HOUR]
With UNTIL_HOUR only the moments before it count, the last held until it
(e.g. 2700: the trace's quiet months)."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]
until = int(sys.argv[2]) if len(sys.argv) > 2 else None
rows = []
for f in glob.glob(os.path.join(out, "*.json")):
    r = json.load(open(f))
    r = r["results"][0] if "results" in r else r
    hours = r["simulated_hours"] or 2 / 60
    rows.append((int(os.path.basename(f)[:-5]), r["final_fleet_usd_per_hour"], r["lower_bound_usd"] / hours))
if not rows:
    sys.exit("no snapshot reports in " + out)
rows.sort()
if until is not None:
    rows = [r for r in rows if r[0] < until]
packed = lp = 0.0
ratios = []
for i, (h, p, l) in enumerate(rows):
    end = until if until is not None else h + 1
    dt = (rows[i + 1][0] if i + 1 < len(rows) else end) - h
    packed += p * dt
    lp += l * dt
    if l > 0:
        ratios.append(p / l)
print(f"samples {len(rows)} from {rows[0][0]}h to {rows[-1][0]}h")
print(f"packed floor ${packed:,.2f}  LP ${lp:,.2f}  floor/LP {packed / lp:.3f}")
print(f"per-moment floor/LP: median {statistics.median(ratios):.3f}, max {max(ratios):.3f}")
