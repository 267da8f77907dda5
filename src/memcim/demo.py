"""The main job, ``memcim demo``: a Bayesian network whose weight samples memristors draw.

The quick version of the ``bayes-ood`` experiment (:mod:`memcim.experiments.bayes_ood`), run on
the spot (nothing cached), in well under a minute on 2 cores:

1. a deterministic MLP is trained on scikit-learn's 8 × 8 digits, and a Bayesian copy of it on
   the ELBO;
2. the Bayesian network's Monte-Carlo weight samples are drawn by simulated filamentary RRAM
   with each sampling scheme (cycle-to-cycle, device population, read noise, differential pair,
   separate μ/σ arrays); the deterministic network is programmed on the same device;
3. both are scored on accuracy, calibration (ECE, NLL), out-of-distribution detection
   (uniform-noise images) and accuracy on the least uncertain half of noisy inputs. Each
   model's OOD score (BNN: epistemic or total entropy; deterministic: max-softmax or softmax
   entropy) is chosen on validation data held out of training and apart from the test
   samples; the table's "OOD score" column and the summary line name it.

It writes ``results.json`` (every metric), the figures and ``report.md`` / ``report.html``
into the output folder and prints the summary table. ``memcim demo --foundation`` runs the
device/crossbar demo of :mod:`memcim.foundation_demo` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from memcim.experiments.bayes_ood import EXPERIMENT, BayesOodConfig
from memcim.experiments.report import write_report
from memcim.experiments.runner import run_config

DEFAULT_OUT = Path("memcim-demo")
DEVICE_NAMES = {"rram": "filamentary RRAM", "pcm": "PCM"}


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        rest = (f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    return "\n".join([line(header), "-" * len(line(header)), *(line(r) for r in rows)])


def _score_name(score: str) -> str:
    """An OOD score's name as printed (``"max_softmax"`` -> ``"max-softmax score"``)."""
    names = {"epistemic": "epistemic entropy", "total": "total entropy",
             "entropy": "softmax entropy"}  # fmt: skip
    return names.get(score, score.replace("_", "-") + " score")


def run(
    out: Path | None = None,
    *,
    seed: int = 0,
    progress: bool | None = None,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run the quick ``bayes-ood`` experiment, write its report, print the summary.

    Args:
        out: output folder (default ``./memcim-demo``), created if needed.
        seed: seed of every stage.
        progress: progress bars; ``None``: only on a terminal.
        echo: where the summary lines go.

    Returns:
        The results.json record (``metrics``, ``summary_table``, ``wall_s``, ...).
    """
    out = DEFAULT_OUT if out is None else Path(out)
    config = BayesOodConfig.quick()
    hidden = "-".join(str(h) for h in config.hidden)
    echo(
        f"memcim demo: a Bayesian 64-{hidden}-10 MLP on scikit-learn's 8x8 digits whose "
        f"{config.samples} Monte-Carlo weight samples are drawn by simulated "
        f"{DEVICE_NAMES.get(config.device, config.device)}, against the deterministic network "
        "on the same devices."
    )
    record = run_config(EXPERIMENT, config, out, seed=seed, progress=progress)
    table = record["summary_table"]
    echo(
        f"\n{record['train_images']} training / {record['validation_images']} validation / "
        f"{record['test_images']} test images; out of distribution: {record['ood_set']}; "
        f"noisy: Gaussian σ = {config.noise_sigma:g}"
    )
    echo(format_table(table["header"], table["rows"]))
    m, scores = record["metrics"], record["ood_scores"]
    gap = m["accuracy_gap_max_points"]
    echo(
        f"\nlargest accuracy gap software -> hardware BNN over the schemes: {gap:.2f} points; "
        f"OOD AUROC (BNN, {record['headline_scheme']}, {_score_name(scores['hw'])}) "
        f"{m['ood_auroc_hw']:.3f} vs {m['ood_auroc_det_hw']:.3f} (deterministic, "
        f"{_score_name(scores['det_hw'])}); each OOD score chosen on the validation images"
    )
    md, html = write_report(out)
    echo(f"figures, results.json and {md.name} / {html.name} written to {out}")
    echo(f"(done in {record['wall_s']:.1f} s; seed {seed})")
    return record
