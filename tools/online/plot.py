#!/usr/bin/env python3
"""Reads the JSON reports of tools/online/sweep.sh and prints the sweep table
(markdown) and writes an SVG chart of cost vs GPU-pod evictions, each
relative to stock Karpenter on the same window (stock = (1, 1)).

usage: plot.py DIR OUT.svg
"""
import glob
import json
import os
import sys

LABELS = {
    "be100": "break-even 100 %",
    "be300": "break-even 300 %",
    "be1000": "break-even 1000 %",
    "be3000": "break-even 3000 %",
    "always": "protect-all (old default)",
    "binpack": "break-even 1000 % + bin-packing",
    "binpack100": "break-even 100 % + bin-packing",
    "balanced": "break-even 1000 % + Balanced",
    "repackbp": "break-even 1000 % + repack + bin-packing",
    "repack": "break-even 1000 % + repack",
    "attrition": "break-even 1000 % + drain by attrition",
    "never": "no protection",
}


def load(d):
    rows = []
    for path in sorted(glob.glob(os.path.join(d, "W*.json"))):
        name = os.path.basename(path)[:-5]
        window, setting = name[1:].split("-", 1)
        with open(path) as f:
            c = json.load(f)
        gpu, stock = c["results"]
        rows.append(dict(window=window, setting=setting, gpu=gpu, stock=stock))
    return rows


def ratio(a, b):
    return a / b if b else float("nan")


def main():
    d, out = sys.argv[1], sys.argv[2]
    rows = load(d)
    print("| window | setting | karpenter-gpu $ | stock $ | cost ratio | cost / bound (kgpu, stock) | GPU-pod evictions (kgpu / stock) | lost GPU-h (kgpu / stock) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        g, s = r["gpu"], r["stock"]
        print("| {} | {} | {:.2f} | {:.2f} | {:.3f} | {:.3f}, {:.3f} | {} / {} | {:.2f} / {:.2f} |".format(
            r["window"], LABELS.get(r["setting"], r["setting"]), g["cost_usd"], s["cost_usd"],
            ratio(g["cost_usd"], s["cost_usd"]), g["cost_over_lower_bound"], s["cost_over_lower_bound"],
            g["gpu_pod_evictions"], s["gpu_pod_evictions"], g.get("lost_gpu_hours", 0), s.get("lost_gpu_hours", 0)))
    # SVG: x = evictions / stock's, y = cost / stock's.
    W, H, L, R, T, B = 760, 460, 70, 230, 30, 50
    pts = [(ratio(r["gpu"]["gpu_pod_evictions"], r["stock"]["gpu_pod_evictions"]),
            ratio(r["gpu"]["cost_usd"], r["stock"]["cost_usd"]), r) for r in rows]
    xmax = max([1.05] + [p[0] for p in pts])
    ymin = min([0.94] + [p[1] for p in pts]) - 0.01
    ymax = max([1.06] + [p[1] for p in pts]) + 0.01
    x = lambda v: L + (W - L - R) * v / xmax
    y = lambda v: T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
    settings = sorted({r["setting"] for r in rows})
    shapes = {w: i for i, w in enumerate(sorted({r["window"] for r in rows}))}
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="14">Cost vs GPU-pod evictions, each relative to stock Karpenter on the same 24 h window</text>' % L]
    for v in [i / 10 for i in range(0, int(xmax * 10) + 1)]:
        svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/><text x="%.1f" y="%d" text-anchor="middle">%.1f</text>' % (x(v), T, x(v), H - B, x(v), H - B + 16, v))
    v = round(ymin, 2)
    while v <= ymax:
        svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (L, y(v), W - R, y(v), L - 6, y(v) + 4, v))
        v = round(v + 0.02, 2)
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999" stroke-dasharray="4 3"/>' % (L, y(0.95), W - R, y(0.95)))
    svg.append('<text x="%d" y="%.1f" fill="#999">target 0.95</text>' % (L + 4, y(0.95) - 4))
    svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="4 3"/>' % (x(0.1), T, x(0.1), H - B))
    svg.append('<text x="%d" y="%d" text-anchor="middle">GPU-pod evictions ÷ stock\'s</text>' % ((L + W - R) / 2, H - 12))
    svg.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">cost ÷ stock\'s</text>' % ((T + H - B) / 2, (T + H - B) / 2))
    svg.append('<circle cx="%.1f" cy="%.1f" r="7" fill="black"/><text x="%.1f" y="%.1f">stock</text>' % (x(1), y(1), x(1) + 9, y(1) + 4))
    for ex, cy, r in pts:
        c = colors[settings.index(r["setting"]) % len(colors)]
        k = shapes[r["window"]]
        if k == 0:
            svg.append('<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/>' % (x(ex), y(cy), c))
        elif k == 1:
            svg.append('<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s"/>' % (x(ex) - 5, y(cy) - 5, c))
        else:
            svg.append('<path d="M %.1f %.1f l 6 10 l -12 0 z" fill="%s"/>' % (x(ex), y(cy) - 6, c))
    ly = T + 10
    for i, s in enumerate(settings):
        svg.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>' % (W - R + 12, ly, colors[i % len(colors)], W - R + 28, ly + 9, LABELS.get(s, s)))
        ly += 18
    ly += 8
    for w, k in sorted(shapes.items(), key=lambda kv: kv[1]):
        sym = ["●", "■", "▲"][k % 3]
        svg.append('<text x="%d" y="%d">%s window %s + 24h</text>' % (W - R + 12, ly + 9, sym, w))
        ly += 18
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
