#!/usr/bin/env python3
"""Rows of the whole-trace sweep at Karpenter's cadence
(tools/online/whole-cadence.sh): one TSV row per JSON report in DIR, in the
columns of tools/online/whole-trace.tsv (label, profile, cost_usd,
gpu_pod_evictions, lost_gpu_hours, commit, command) plus the ratios to the
stock report of the same kube-scheduler profile, idle GPU-hours over paid
and the evictions by cause.

usage: cadence_table.py DIR [COMMIT] [STOCK_DEFAULT.json]
STOCK_DEFAULT.json: stock's report under the default profile when DIR has
none (the simulator's defaults replayed with --policy stock --no-cache).
"""
import glob
import json
import os
import sys


def load(path):
    with open(path) as f:
        d = json.load(f)
    for k in ("cost_usd", "gpu_pod_evictions", "lost_gpu_hours", "settings"):
        if k not in d:
            sys.exit(f"{path}: no {k}: not a simulator report")
    if not d["cost_usd"] > 0:
        sys.exit(f"{path}: cost_usd {d['cost_usd']}: not a run")
    return d


def profile(name):
    # the report does not echo the kube-scheduler profile; the sweep's
    # setting names do (whole-cadence.sh: "binpack" = --scheduler-profile bin-packing)
    return "bin-packing" if "binpack" in name else "default"


def lost(d):
    v = d["lost_gpu_hours"]
    return sum(v.values()) if isinstance(v, dict) else v


# What each setting of whole-cadence.sh is, for the chart's legend.
LABELS = {
    "stock-default": "stock Karpenter",
    "stock-binpack": "stock Karpenter",
    "kg-ecpp0": "karpenter-gpu, $0 per pod (the defaults before this round)",
    "kg-binpack": "karpenter-gpu, $0 per pod (the defaults before this round)",
    "kg-always": "karpenter-gpu protect-all (the old default)",
    "kg-never": "karpenter-gpu, no GPU-work protection, $0 per pod",
    "kg-norepack": "karpenter-gpu, no repack, $0 per pod",
    "kg-attrition": "karpenter-gpu + drain by attrition, $0 per pod",
    "kg-balanced": "karpenter-gpu, core Balanced, $0 per pod",
    "kg-defaults": "karpenter-gpu, the defaults",
}


def label(name):
    if name in LABELS:
        return LABELS[name]
    parts = []
    for tok in name.split("-")[1:]:
        if tok.startswith("be"):
            parts.append(f"break-even {tok[2:]} %")
        elif tok.startswith("ecpp"):
            parts.append(f"${tok[4:]} per pod")
    if not any(p.startswith("$") for p in parts):
        parts.append("$0 per pod")
    return "karpenter-gpu, " + ", ".join(parts)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = sys.argv[1]
    commit = sys.argv[2] if len(sys.argv) > 2 else "?"
    reports = {}
    for p in sorted(glob.glob(os.path.join(src, "*.json"))):
        reports[os.path.basename(p)[:-5]] = load(p)
    if len(sys.argv) > 3:
        reports.setdefault("stock-default", load(sys.argv[3]))
    if not reports:
        sys.exit(f"{src}: no reports")
    stock = {profile(n): d for n, d in reports.items() if d["policy"] == "stock"}
    print("label\tprofile\tcost_usd\tgpu_pod_evictions\tlost_gpu_hours\tcommit\tcommand\tcost_over_stock\tevictions_over_stock\tlost_over_stock\tidle_over_paid\tcost_over_bound\tevictions_by_cause")
    for name, d in reports.items():
        s = stock.get(profile(name))
        ratio = lambda a, b: f"{a / b:.3f}" if s and b else "-"
        print("\t".join([
            label(name), profile(name), f"{d['cost_usd']:.2f}", str(d["gpu_pod_evictions"]), f"{lost(d):.1f}", commit,
            f"tools/online/whole-cadence.sh {name}",  # the setting's flags are in the script
            ratio(d["cost_usd"], s["cost_usd"] if s else 0),
            ratio(d["gpu_pod_evictions"], s["gpu_pod_evictions"] if s else 0),
            ratio(lost(d), lost(s) if s else 0),
            f"{d['idle_gpu_hours'] / d['gpu_hours_paid']:.4f}",
            f"{d['cost_usd'] / d['lower_bound_usd']:.3f}" if d.get("lower_bound_usd") else "-",
            json.dumps(d.get("gpu_pod_evictions_by_cause") or {}, sort_keys=True),
        ]))


if __name__ == "__main__":
    main()
