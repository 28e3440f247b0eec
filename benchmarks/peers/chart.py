"""The chart of a compare.py run: python -m peers.chart RESULTS.json OUT.png (in the peers venv,
which has matplotlib; the project does not depend on it).

One panel per figure, one horizontal bar per library (median), the min-max range of the rounds as
an error bar; conveyor's bars are dark, the peers' light, grouped and coloured by engine. With the
realistic mix (compare.py --mix) a last row of two panels: jobs/s of each mix worker, the ideal
rate as a dashed line.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

PANELS = [  # key, title, log scale
    ("enqueue_one", "enqueue one at a time, jobs/s (higher is better)", False),
    ("enqueue_bulk", "enqueue in bulk, jobs/s (higher is better)", False),
    ("drain_1", "drain, 1 worker process, jobs/s (higher is better)", False),
    ("drain_2", "drain, 2 worker processes, jobs/s (higher is better)", False),
    ("latency_p50", "enqueue-to-start latency p50, ms (lower is better, log scale)", True),
    ("latency_p99", "enqueue-to-start latency p99, ms (lower is better, log scale)", True),
]
COLOURS = {"redis": ("#b2182b", "#f4a582"), "sqlite": ("#2166ac", "#92c5de"), "postgres": ("#1b7837", "#a6dba0")}


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(argv[0]).read_text())
    entries = list(data["libraries"].values())
    labels = [f"{e['name']} ({e['engine']})" for e in entries]
    mixes = list(data.get("mixes", {}).values())
    mix_rows = max((sum(1 for m in mixes if m["stage"] == stage) for stage in ("io", "cpu")), default=0)
    heights = [0.5 + 0.33 * len(entries)] * 3 + ([0.5 + 0.33 * mix_rows] if mix_rows else [])
    fig, axes = plt.subplots(len(heights), 2, figsize=(13, 0.6 + sum(heights)), constrained_layout=True,
                             gridspec_kw={"height_ratios": heights})
    if mix_rows:
        for axis, stage in zip(axes[-1], ("io", "cpu"), strict=True):
            mix_panel(axis, data, [m for m in mixes if m["stage"] == stage], stage)
    for axis, (key, heading, log) in zip(axes.flat, PANELS, strict=False):
        medians, lows, highs, colours = bars(entries, [entry["values"][key] for entry in entries])
        positions = list(range(len(entries)))
        axis.barh(positions, medians, color=colours, xerr=[lows, highs], capsize=2, error_kw={"elinewidth": 0.8})
        axis.set_yticks(positions, labels, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(heading, fontsize=9)
        axis.tick_params(axis="x", labelsize=8)
        if log:
            axis.set_xscale("log")
        for position, median in enumerate(medians):
            text = "no bulk API" if key == "enqueue_bulk" and median == 0 else \
                "n/a" if median == 0 else f"{median:,.0f}" if median >= 100 else f"{median:.2g}"
            if log and median <= 0:
                continue
            axis.annotate(text, (median if median > 0 else 0, position), xytext=(3, 0), textcoords="offset points",
                          va="center", fontsize=7)
    settings = data["settings"]
    fig.suptitle(f"conveyor and its peers: {settings['jobs']:,} no-op jobs per drain, median of "
                 f"{settings['rounds']} round(s), error bars min-max ({data['started'][:10]})", fontsize=10)
    fig.savefig(argv[1], dpi=110)
    return 0


def bars(entries: list[dict[str, Any]],
         rounds: list[list[float | None]]) -> tuple[list[float], list[float], list[float], list[str]]:
    """Per entry: the median of its rounds, the error bar below and above it (to the min and max),
    and its colour (dark for conveyor, light for a peer, by engine). No value draws as 0."""
    medians, lows, highs, colours = [], [], [], []
    for entry, raw in zip(entries, rounds, strict=True):
        values = [v for v in raw if v is not None and v == v]
        median = statistics.median(values) if values else 0.0
        medians.append(median)
        lows.append(median - min(values) if values else 0.0)
        highs.append(max(values) - median if values else 0.0)
        dark, light = COLOURS[entry["engine"]]
        colours.append(dark if entry["name"] == "conveyor" else light)
    return medians, lows, highs, colours


def mix_panel(axis: Any, data: dict[str, Any], entries: list[dict[str, Any]], stage: str) -> None:
    """One stage of the realistic mix: a bar per worker (median, min-max), the ideal as a dashed line."""
    mix = data["mix"]
    ideal = mix["ideal"][stage]
    heading = (f"I/O-bound mix: sleep 10-50 ms, {mix['io_concurrency']} at once, jobs/s" if stage == "io" else
               f"CPU-bound mix: {mix['cpu_s'] * 1000:.1f} ms CPU/job, {mix['cpu_processes']} processes, jobs/s")
    medians, lows, highs, colours = bars(entries, [entry["values"] for entry in entries])
    labels = [f"{entry['name']} ({entry['engine']}, {entry['variant']})" for entry in entries]
    positions = list(range(len(entries)))
    axis.barh(positions, medians, color=colours, xerr=[lows, highs], capsize=2,
              error_kw={"elinewidth": 0.8})
    axis.axvline(ideal, color="black", linestyle="--", linewidth=0.8)
    axis.set_xlim(0, max([ideal, *medians]) * 1.12)  # room for the ideal line and the labels
    axis.set_yticks(positions, labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_title(f"{heading} (dashed: ideal {ideal:,.0f})", fontsize=9)
    axis.tick_params(axis="x", labelsize=8)
    for position, median in enumerate(medians):
        axis.annotate(f"{median:,.0f} ({median / ideal:.0%})", (median, position),
                      xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
