#!/usr/bin/env python3
"""Whole-trace chart: cost vs GPU-pod evictions of every whole default-trace
replay listed in a TSV (tools/online/whole-trace.tsv), each point labelled,
with the stock points for reference.

The TSV's columns: label, profile (default or bin-packing), cost_usd,
gpu_pod_evictions, lost_gpu_hours, commit, command. Each row is one replay's
report (cost_usd, gpu_pod_evictions and the batch and service lost GPU-hours
summed); the command reproduces it at that commit.

usage: plot_whole.py whole-trace.tsv OUT.svg [TITLE]
"""
import csv
import sys

W, H = 760, 470
L, R, T, B = 80, 250, 30, 60


def main():
    global H
    src, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "Whole default trace: fleet cost vs GPU-pod evictions (eviction model on)"
    with open(src) as f:
        rows = [r for r in csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t")]
    if not rows:
        sys.exit(f"{src}: no rows")
    for r in rows:
        for k in ("cost_usd", "gpu_pod_evictions", "lost_gpu_hours"):
            try:
                r[k] = float(r[k])
            except (KeyError, ValueError):
                sys.exit(f"{src}: row {r.get('label')!r}: {k} is not a number")
    H = max(H, T + 50 + 30 * len(rows))  # room for the legend
    xs = [r["gpu_pod_evictions"] for r in rows]
    ys = [r["cost_usd"] for r in rows]
    x0, x1 = 0, max(xs) * 1.1
    y0, y1 = min(ys) * 0.98, max(ys) * 1.02

    def px(x):
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def py(y):
        return H - B - (y - y0) / (y1 - y0) * (H - T - B)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="13">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{(L + W - R) / 2}" y="{H - 20}" text-anchor="middle">GPU-pod evictions over 149 days</text>',
           f'<text x="18" y="{(T + H - B) / 2}" transform="rotate(-90 18 {(T + H - B) / 2})" text-anchor="middle">fleet cost (USD)</text>']
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        svg.append(f'<text x="{px(x):.1f}" y="{H - B + 15}" text-anchor="middle">{x:.0f}</text>')
        y = y0 + (y1 - y0) * i / 5
        svg.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
        svg.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W - R}" y2="{py(y):.1f}" stroke="#eee"/>')
    legend_y = T + 10
    for n, r in enumerate(rows):
        stock = r["label"].startswith("stock")
        color = "#c0392b" if stock else ("#7f8c8d" if "protect-all" in r["label"] else "#2471a3")
        shape = "rect" if r["profile"] == "bin-packing" else "circle"
        x, y = px(r["gpu_pod_evictions"]), py(r["cost_usd"])
        if shape == "rect":
            svg.append(f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{color}"/>')
        else:
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"/>')
        svg.append(f'<text x="{x + 8:.1f}" y="{y - 6:.1f}">{n + 1}</text>')
        svg.append(f'<text x="{W - R + 12}" y="{legend_y}">{n + 1}. {r["label"]} ({r["profile"]})</text>')
        svg.append(f'<text x="{W - R + 24}" y="{legend_y + 13}" fill="#555">${r["cost_usd"]:,.0f}, {r["gpu_pod_evictions"]:.0f} evictions</text>')
        legend_y += 30
    svg.append(f'<text x="{W - R + 12}" y="{legend_y + 6}" fill="#555">circle: default profile; square: bin-packing</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")
    print("| # | setting | profile | cost | GPU-pod evictions | GPU-h lost | commit |")
    print("| ---: | --- | --- | ---: | ---: | ---: | --- |")
    for n, r in enumerate(rows):
        print(f"| {n + 1} | {r['label']} | {r['profile']} | ${r['cost_usd']:,.2f} | {r['gpu_pod_evictions']:.0f} | {r['lost_gpu_hours']:.1f} | {r['commit']} |")


if __name__ == "__main__":
    main()
