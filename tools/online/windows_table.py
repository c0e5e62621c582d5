#!/usr/bin/env python3
"""Table of tools/online/windows-cadence.sh: per window, each setting's cost,
its ratio to stock's cost on the window, GPU-pod evictions and their share
of stock's, and GPU-hours of work lost.

usage: windows_table.py DIR"""
import glob
import os
import sys

from cadence_table import load, lost


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = {}
    for p in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
        window, setting = os.path.basename(p)[:-5].split("-", 1)
        d = load(p)
        runs.setdefault(window, {})[setting] = (d["cost_usd"], d["gpu_pod_evictions"], lost(d))
    if not runs:
        sys.exit(f"{sys.argv[1]}: no reports")
    print("| window | setting | cost | / stock | GPU-pod evictions (/ stock's) | GPU-h lost |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for window, settings in runs.items():
        stock = settings.get("stock")
        for setting, (cost, ev, lost_h) in sorted(settings.items(), key=lambda kv: kv[0] != "stock"):
            ratio = f"{cost / stock[0]:.3f}" if stock else "-"
            share = f" ({ev / stock[1]:.0%})" if stock and stock[1] and setting != "stock" else ""
            print(f"| {window} | {setting} | ${cost:,.2f} | {ratio} | {ev}{share} | {lost_h:.1f} |")


if __name__ == "__main__":
    main()
