#!/usr/bin/env python3
"""plot.py - SVG plots of an rtpmgr-bench report (standard library only).

Usage: docs/perf/plot.py REPORT [OUTDIR]
  REPORT  the JSON written by `rtpmgr-bench ... --out FILE`, or a guest console log of `make bench`
          (build/logs/console-bench.log), whose "@@RTPMGR bench-json" line carries the same JSON
  OUTDIR  where the SVGs go (default: docs/perf)

Writes throughput-vs-batch.svg (delivered packets/s against batch size, log-log, one line per path,
min..max as a bar), latency-cdf.svg (end-to-end latency CDF of the receive paths at the highest rate
all delivered without loss), cpu-vs-rate.svg (end-to-end CPU per packet against the offered rate, the
floors included), scaling.svg (CPU per packet against concurrent streams, kernel-attached vs udpsrc)
and report.json (the report itself, for the docs).
"""
import json
import math
import os
import sys

COLORS = {"ring-batch": "#1f77b4", "ring-slot": "#ff7f0e", "udp": "#2ca02c", "pipe": "#d62728",
          "rtrb": "#9467bd", "ring": "#1f77b4", "ring-thread": "#ff7f0e", "gst": "#2ca02c",
          "kernel": "#d62728", "kernel-lists": "#e377c2", "kernel-rtpmgrsrc": "#8c564b", "ring-lists": "#17becf",
          "rtpmgrsrc": "#bcbd22", "floor-xdp": "#7f7f7f", "floor-sock": "#aaaaaa"}
W, H, L, R, T, B = 640, 400, 80, 150, 40, 50


def load(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    for line in text.splitlines():
        if line.startswith("@@RTPMGR bench-json "):
            return json.loads(line[len("@@RTPMGR bench-json "):])
    return json.loads(text)


def svg(title, xlabel, ylabel, series, xlog, ylog, xticks, yticks):
    """series: [(name, [(x, y, lo, hi)])]; lo/hi may be None."""
    pts = [p for _, s in series for p in s]
    fx = (lambda v: math.log10(v)) if xlog else (lambda v: v)
    fy = (lambda v: math.log10(v)) if ylog else (lambda v: v)
    xs = [fx(t) for t in xticks]
    ys = [fy(t) for t in yticks]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    px = lambda v: L + (fx(v) - x0) / ((x1 - x0) or 1) * (W - L - R)
    py = lambda v: H - B - (fy(v) - y0) / ((y1 - y0) or 1) * (H - T - B)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    for t in xticks:
        o.append(f'<line x1="{px(t):.1f}" y1="{T}" x2="{px(t):.1f}" y2="{H - B}" stroke="#ddd"/>')
        o.append(f'<text x="{px(t):.1f}" y="{H - B + 16}" text-anchor="middle">{fmt(t)}</text>')
    for t in yticks:
        o.append(f'<line x1="{L}" y1="{py(t):.1f}" x2="{W - R}" y2="{py(t):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">{xlabel}</text>')
    o.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">{ylabel}</text>')
    for i, (name, s) in enumerate(series):
        c = COLORS.get(name, "#333")
        s = [p for p in s if p[1] and p[1] > 0 or not ylog]
        if not s:
            continue
        o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                 % (c, " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _, _ in s)))
        for x, y, lo, hi in s:
            if lo and hi:
                o.append(f'<line x1="{px(x):.1f}" y1="{py(lo):.1f}" x2="{px(x):.1f}" y2="{py(hi):.1f}" stroke="{c}"/>')
        ly = T + 10 + i * 18
        o.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 30}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        o.append(f'<text x="{W - R + 35}" y="{ly + 4}">{name}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def decades(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10 ** e for e in range(a, b + 1)]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rep = load(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(out, exist_ok=True)
    where = f" ({rep['meta'].get('arch', '?')}, {rep['meta'].get('backend', '?')} ring, KPTI {rep['meta'].get('kpti', '?')})"

    sweep = rep.get("sweep", [])
    if sweep:
        paths = sorted({r["path"] for r in sweep}, key=lambda p: list(COLORS).index(p) if p in COLORS else 99)
        series = []
        for p in paths:
            rows = sorted((r for r in sweep if r["path"] == p), key=lambda r: r["batch"])
            series.append((p, [(r["batch"], r["pps"]["median"], r["pps"]["min"], r["pps"]["max"]) for r in rows]))
        vals = [v for r in sweep for v in (r["pps"]["min"], r["pps"]["max"]) if v and v > 0]
        batches = sorted({r["batch"] for r in sweep})
        payload = sweep[0]["payload"]
        with open(os.path.join(out, "throughput-vs-batch.svg"), "w") as f:
            f.write(svg(f"Delivered packets/s vs batch size, {payload} B{where}", "batch size (packets per call)",
                        "packets/s", series, True, True, batches, decades(min(vals), max(vals))))

    e2e = [r for r in rep.get("e2e", []) if not r["path"].startswith("floor-")]
    if e2e:
        ok = {}
        for r in e2e:
            if r["lost"] == 0:
                ok.setdefault(r["path"], set()).add(r["rate"])
        paths = sorted({r["path"] for r in e2e})
        common = set.intersection(*ok.values()) if ok and len(ok) == len(paths) else set()
        rate = max(common) if common else min(r["rate"] for r in e2e)
        series = []
        lat = []
        for p in paths:
            row = next((r for r in e2e if r["path"] == p and r["rate"] == rate), None)
            if row:
                cdf = row["lat_cdf_us"]
                series.append((p, [(v, i, None, None) for i, v in enumerate(cdf) if v and v > 0]))
                lat += [v for v in cdf if v and v > 0]
        if lat:
            with open(os.path.join(out, "latency-cdf.svg"), "w") as f:
                f.write(svg(f"Arrival -> appsink latency CDF at {rate} pps{where}", "latency (µs)", "% of packets",
                            series, True, False, decades(min(lat), max(lat)), [0, 25, 50, 75, 90, 99, 100]))
    rows = [r for r in rep.get("e2e", []) if r["cpu_us_per_pkt"]["n"] > 0]
    if rows:
        paths = sorted({r["path"] for r in rows}, key=lambda p: list(COLORS).index(p) if p in COLORS else 99)
        series = []
        for p in paths:
            pr = sorted((r for r in rows if r["path"] == p), key=lambda r: r["rate"])
            series.append((p, [(r["rate"], r["cpu_us_per_pkt"]["median"], r["cpu_us_per_pkt"]["min"],
                                r["cpu_us_per_pkt"]["max"]) for r in pr]))
        vals = [v for r in rows for v in (r["cpu_us_per_pkt"]["min"], r["cpu_us_per_pkt"]["max"]) if v and v > 0]
        rates = sorted({r["rate"] for r in rows})
        with open(os.path.join(out, "cpu-vs-rate.svg"), "w") as f:
            f.write(svg(f"Guest CPU per packet vs offered rate{where}", "offered packets/s", "CPU µs per packet",
                        series, True, True, rates, decades(min(vals), max(vals))))
    scale = [r for r in rep.get("scale", []) if r["cpu_us_per_pkt"] and r["cpu_us_per_pkt"] > 0]
    if scale:
        series = []
        for p in sorted({r["path"] for r in scale}):
            pr = sorted((r for r in scale if r["path"] == p), key=lambda r: r["streams"])
            lost = sum(r["lost"] for r in pr)
            series.append((f"{p} (lost {lost})", [(r["streams"], r["cpu_us_per_pkt"], None, None) for r in pr]))
            COLORS.setdefault(f"{p} (lost {lost})", COLORS.get(p, "#333"))
        vals = [r["cpu_us_per_pkt"] for r in scale]
        top = max(vals) * 1.1
        step = 10 ** math.floor(math.log10(top))
        yt = [i * step for i in range(0, int(top / step) + 2)]
        with open(os.path.join(out, "scaling.svg"), "w") as f:
            f.write(svg(f"CPU per packet vs concurrent streams, {scale[0]['rate_per_stream']} pps each{where}",
                        "streams (one channel each)", "CPU µs per packet", series, False, False,
                        sorted({r["streams"] for r in scale}), yt))
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(rep, f, indent=1)


if __name__ == "__main__":
    main()
