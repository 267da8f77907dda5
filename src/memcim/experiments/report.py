"""``memcim report DIR``: a Markdown and an HTML summary of a run or a sweep.

A run folder (``results.json``) gives its metrics — or, where the experiment recorded one, its
``summary_table`` (header and rows of text) — and figures. A sweep folder (``sweep.jsonl``)
gives one row per grid point with mean ± std over seeds (sample std, n − 1; "±0" with one seed),
the failed points with the last line of their traceback, and one figure per metric.
"""

from __future__ import annotations

import html
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from memcim._errors import ConfigError
from memcim.experiments.sweep import SWEEP_FILE, read_sweep

_MAX_METRIC_FIGURES = 8


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _sweep_table(records: list[dict]) -> tuple[list[str], list[list[str]], dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("status") == "ok":
            groups[json.dumps(r["params"], sort_keys=True)].append(r)
    metric_names = sorted({m for r in records if r.get("status") == "ok" for m in r["metrics"]})
    param_names = sorted({p for r in records for p in r["params"]})
    header = [*param_names, "seeds", *metric_names]
    rows, stats = [], {}
    for key, members in groups.items():
        params = json.loads(key)
        row = [params.get(p, "") for p in param_names] + [str(len(members))]
        for m in metric_names:
            values = [r["metrics"][m] for r in members if m in r["metrics"]]
            mean, std = _mean_std(values) if values else (math.nan, math.nan)
            stats[(key, m)] = (mean, std)
            row.append(f"{_fmt(mean)} ± {_fmt(std)}")
        rows.append(row)
    return header, rows, {"groups": list(groups), "metrics": metric_names, "stats": stats}


def _metric_figures(out: Path, info: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    labels = [", ".join(f"{k}={v}" for k, v in json.loads(g).items()) or "default"
              for g in info["groups"]]  # fmt: skip
    for metric in info["metrics"][:_MAX_METRIC_FIGURES]:
        means = [info["stats"][(g, metric)][0] for g in info["groups"]]
        stds = [info["stats"][(g, metric)][1] for g in info["groups"]]
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 2), 3.2))
        ax.errorbar(range(len(labels)), means, yerr=stds, fmt="o", capsize=4)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        name = f"report_{metric}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        paths.append(name)
    return paths


def _markdown(title: str, header: list[str], rows: list[list[str]], figures: list[str],
              notes: list[str]) -> str:  # fmt: skip
    lines = [f"# {title}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [""] + notes + [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def _html(title: str, header: list[str], rows: list[list[str]], figures: list[str],
          notes: list[str]) -> str:  # fmt: skip
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>\n" for row in rows
    )
    notes_html = "".join(f"<p>{esc(n)}</p>\n" for n in notes)
    figs = "".join(
        f'<figure><img src="{esc(f)}" alt="{esc(f)}"><figcaption>{esc(f)}</figcaption></figure>\n'
        for f in figures
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px 8px;"
        "text-align:right}img{max-width:100%}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}"
        f"</tbody>\n</table>\n{notes_html}{figs}</body>\n</html>\n"
    )


def write_report(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` in ``out_dir``; return their paths."""
    out = Path(out_dir)
    if (out / SWEEP_FILE).exists():
        records = read_sweep(out)
        name = next((r["dir"] for r in records), "")
        first = out / name / "results.json" if name else None
        experiment = json.loads(first.read_text())["experiment"] if first and first.exists() \
            else "sweep"  # fmt: skip
        header, rows, info = _sweep_table(records)
        failed = [r for r in records if r.get("status") != "ok"]
        notes = [f"{len(records)} points, {len(failed)} failed; mean ± sample std over seeds."]
        notes += [f"failed: {json.dumps(r['params'])} seed {r['seed']}: "
                  f"{r.get('error', '').strip().splitlines()[-1:]}" for r in failed]  # fmt: skip
        figures = _metric_figures(out, info)
        title = f"Sweep of {experiment}"
    elif (out / "results.json").exists():
        result = json.loads((out / "results.json").read_text())
        figures = [a for a in result.get("artifacts", []) if a.endswith(".png")]
        notes = [f"seed {result['seed']}, {result['wall_s']:.1f} s, versions "
                 + ", ".join(f"{k} {v}" for k, v in result["versions"].items())]  # fmt: skip
        table = result.get("summary_table")
        if table:  # the experiment's own short table; every metric stays in results.json
            header, rows = table["header"], table["rows"]
            notes.append(f"All {len(result['metrics'])} metrics are in results.json.")
        else:
            header = ["metric", "value"]
            rows = [[k, _fmt(v)] for k, v in result["metrics"].items()]
        title = f"Run of {result['experiment']}"
    else:
        raise ConfigError(f"{out} holds neither {SWEEP_FILE} nor results.json: nothing to report")
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(_markdown(title, header, rows, figures, notes))
    html_path.write_text(_html(title, header, rows, figures, notes))
    return md_path, html_path
