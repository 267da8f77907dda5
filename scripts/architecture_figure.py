"""Draw docs/architecture.png: memcim's layers, from one cell up to the command line.

Run from the repository root: ``python scripts/architecture_figure.py``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

# (row from the bottom, label, what it holds); rows with several boxes are siblings.
LAYERS = [
    [("devices", "one cell: program, read,\ndrift, faults, energy")],
    [("crossbar", "Tile, TiledMatrix: mapping,\nDAC/ADC, counters, IR drop")],
    [
        ("nn", "CIMLinear, CIMConv2d,\nconvert, HWA training"),
        ("bayes", "Bayesian layers, device-\ndrawn samples on tiles"),
    ],
    [("energy", "counters → pJ, s;\ndigital baselines, chiplets")],
    [
        ("learning", "MCMC, hybrid,\nMAML, MESU"),
        ("spiking", "snnTorch LIF on tiles,\nencoders, fusion"),
        ("rl", "storm coast,\nBayesian world model"),
    ],
    [("experiments", "registered runs, sweeps, reports")],
    [("cli", "memcim run / sweep / demo")],
]


def main(path: Path = Path("docs/architecture.png")) -> None:
    fig, ax = plt.subplots(figsize=(8, 6.4))
    height, gap = 0.62, 0.28
    for row, boxes in enumerate(LAYERS):
        width = 6.6 / len(boxes)
        for i, (name, what) in enumerate(boxes):
            x, y = 0.2 + i * (width + 0.1), row * (height + gap)
            ax.add_patch(
                FancyBboxPatch(
                    (x, y),
                    width,
                    height,
                    boxstyle="round,pad=0.02",
                    facecolor="#e8eaf6",
                    edgecolor="#3f51b5",
                )
            )
            ax.text(x + 0.08, y + height / 2, name, weight="bold", va="center", fontsize=10)
            ax.text(x + width - 0.08, y + height / 2, what, va="center", ha="right", fontsize=7)
        if row:
            ax.annotate(
                "",
                xy=(3.6, row * (height + gap)),
                xytext=(3.6, row * (height + gap) - gap),
                arrowprops={"arrowstyle": "<-", "color": "#3f51b5"},
            )
    ax.text(
        7.15,
        0.3,
        "metrics, data, training:\ngeneric tools every layer uses",
        fontsize=7,
        va="bottom",
    )
    ax.set_xlim(0, 9)
    ax.set_ylim(-0.2, len(LAYERS) * (height + gap))
    ax.axis("off")
    ax.set_title("memcim: each layer imports only the layers below it", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
