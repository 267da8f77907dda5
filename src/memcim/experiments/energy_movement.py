"""Experiment ``energy-movement``: moving a word costs more than computing with it.

The seed paper's opening claim: fetching a 32-bit word from off-chip DRAM can cost up to 300×
a 32-bit floating-point multiply [1]. This prints the ratios that the cited table
(:data:`memcim.energy.HOROWITZ_45NM`, or the user's own via ``--set``) gives, with the DDR and
HBM per-bit figures for comparison, and draws the table on a log scale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from memcim._errors import require
from memcim.energy.tables import DDR, HBM, HOROWITZ_45NM, OperationEnergies
from memcim.experiments.registry import Result, register


@dataclass(frozen=True, kw_only=True)
class EnergyMovementConfig:
    """Attributes:
    dram_read_32b_pj, fp32_mult_pj, sram_read_32b_pj: override the Horowitz [1] figures (pJ).
    """

    dram_read_32b_pj: float = HOROWITZ_45NM.dram_read_32b_pj
    fp32_mult_pj: float = HOROWITZ_45NM.fp32_mult_pj
    sram_read_32b_pj: float = HOROWITZ_45NM.sram_read_32b_pj

    def __post_init__(self) -> None:
        for name in ("dram_read_32b_pj", "fp32_mult_pj", "sram_read_32b_pj"):
            require(getattr(self, name) > 0, f"EnergyMovementConfig.{name}", getattr(self, name),
                    "must be > 0 pJ")  # fmt: skip

    def table(self) -> OperationEnergies:
        return OperationEnergies(dram_read_32b_pj=self.dram_read_32b_pj,
                                 fp32_mult_pj=self.fp32_mult_pj,
                                 sram_read_32b_pj=self.sram_read_32b_pj)  # fmt: skip


def plot_operations(ops: OperationEnergies, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [("int8 add", ops.int8_add_pj), ("int8 mult", ops.int8_mult_pj),
             ("int32 add", ops.int32_add_pj), ("fp32 add", ops.fp32_add_pj),
             ("int32 mult", ops.int32_mult_pj), ("fp32 mult", ops.fp32_mult_pj),
             ("32-bit SRAM read (8 KB)", ops.sram_read_32b_pj),
             ("32-bit HBM transfer", 32 * HBM.e_pj_per_bit),
             ("32-bit DDR transfer", 32 * DDR.e_pj_per_bit),
             ("32-bit DRAM read", ops.dram_read_32b_pj)]  # fmt: skip
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = [
        "tab:blue" if "read" not in n and "transfer" not in n else "tab:red" for n, _ in items
    ]
    ax.barh([n for n, _ in items], [v for _, v in items], color=colors)
    ax.set_xscale("log")
    ax.set_xlabel("energy (pJ)")
    ax.set_title("Compute (blue) vs data movement (red), 45 nm [Horowitz 2014]")
    for i, (_, v) in enumerate(items):
        ax.text(v * 1.1, i, f"{v:g}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@register("energy-movement", EnergyMovementConfig,
          "DRAM read vs fp32 multiply and the other Horowitz 45 nm ratios")  # fmt: skip
def run(config: EnergyMovementConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    ops = config.table()
    metrics = {
        "dram_read_32b_pj": ops.dram_read_32b_pj,
        "fp32_mult_pj": ops.fp32_mult_pj,
        "ratio_dram_read_to_fp32_mult": ops.dram_read_32b_pj / ops.fp32_mult_pj,
        "ratio_sram_read_to_fp32_mult": ops.sram_read_32b_pj / ops.fp32_mult_pj,
        "ratio_dram_read_to_int8_mult": ops.dram_read_32b_pj / ops.int8_mult_pj,
        "ratio_ddr_32b_to_fp32_mult": 32 * DDR.e_pj_per_bit / ops.fp32_mult_pj,
        "ratio_hbm_32b_to_fp32_mult": 32 * HBM.e_pj_per_bit / ops.fp32_mult_pj,
    }
    if progress:
        print(f"[energy-movement] 32-bit DRAM read {ops.dram_read_32b_pj:g} pJ / fp32 multiply "
              f"{ops.fp32_mult_pj:g} pJ = {metrics['ratio_dram_read_to_fp32_mult']:.0f}x "
              "(seed paper: up to 300x)", flush=True)  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_operations(ops, out / "operation_energies.png")
    labels = {
        "ratio_dram_read_to_fp32_mult": "32-bit DRAM read / fp32 mult",
        "ratio_ddr_32b_to_fp32_mult": "32-bit DDR (17.5 pJ/bit) / fp32 mult",
        "ratio_hbm_32b_to_fp32_mult": "32-bit HBM (4 pJ/bit) / fp32 mult",
        "ratio_sram_read_to_fp32_mult": "32-bit SRAM read / fp32 mult",
        "ratio_dram_read_to_int8_mult": "32-bit DRAM read / int8 mult",
    }
    rows = [[label, f"{metrics[key]:.3g}x"] for key, label in labels.items()]
    table = {"header": ["ratio", "value"], "rows": rows}
    return Result(metrics=metrics, artifacts=["operation_energies.png"],
                  extra={"summary_table": table})  # fmt: skip
