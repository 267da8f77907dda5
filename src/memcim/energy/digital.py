"""Digital processor baselines: the energy a CPU, GPU or MCU spends on the same network.

Energy per inference at batch size B:

    E = MACs · E_MAC  +  weight_bits · E_weight_bit / B  +  activation_bits · E_sram_bit

The weights are fetched from their memory once per batch and reused by every input of it (the
amortisation that makes large batches efficient on a digital processor); the activations (each
layer's inputs and outputs) pass once through on-chip SRAM per inference; every multiply-
accumulate is a multiply plus an add in the processor's data type. Latency of a batch: fetching
the weights at the memory bandwidth, then B · MACs at the processor's throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from memcim._errors import require
from memcim.energy.tables import DDR, HBM, HOROWITZ_45NM, OperationEnergies, _check_non_negative

DType = Literal["int8", "int32", "fp32"]
_BITS = {"int8": 8, "int32": 32, "fp32": 32}


@dataclass(frozen=True, kw_only=True)
class DigitalProcessor:
    """A digital processor running a network layer by layer.

    Attributes:
        name: label for reports.
        dtype: arithmetic and storage type of weights and activations.
        e_weight_bit_pj: energy to fetch one weight bit from where the weights live (pJ).
        macs_per_s: sustained multiply-accumulate throughput (MAC/s).
        weight_bandwidth_bits_per_s: bandwidth of the weight memory (bit/s).
        ops: operation and SRAM energies (default Horowitz 45 nm [1]).
    """

    name: str
    dtype: DType
    e_weight_bit_pj: float
    macs_per_s: float
    weight_bandwidth_bits_per_s: float
    ops: OperationEnergies = field(default_factory=lambda: HOROWITZ_45NM)

    def __post_init__(self) -> None:
        _check_non_negative(self)
        require(self.dtype in _BITS, "DigitalProcessor.dtype", self.dtype,
                f"must be one of {sorted(_BITS)}")  # fmt: skip
        for name in ("macs_per_s", "weight_bandwidth_bits_per_s"):
            require(getattr(self, name) > 0, f"DigitalProcessor.{name}", getattr(self, name),
                    "must be > 0")  # fmt: skip

    @property
    def bits(self) -> int:
        """Bits of one weight or activation in ``dtype``."""
        return _BITS[self.dtype]

    @property
    def e_mac_pj(self) -> float:
        """Energy of one multiply-accumulate in ``dtype`` (pJ)."""
        return self.ops.mac_pj(self.dtype)

    def cost(self, *, macs: float, weights: float, activations: float,
             batch: int = 1) -> DigitalCost:  # fmt: skip
        """Energy per inference and latency of a batch.

        Args:
            macs: multiply-accumulates of one inference.
            weights: parameters fetched once per batch.
            activations: values read or written once per inference (layer inputs and outputs).
            batch: inferences sharing one fetch of the weights (>= 1).
        """
        for name, value in (("macs", macs), ("weights", weights), ("activations", activations)):
            require(math.isfinite(value) and value >= 0, name, value, "must be finite and >= 0")
        require(isinstance(batch, int) and batch >= 1, "batch", batch, "must be an int >= 1")
        weight_bits = weights * self.bits
        energy = {
            "compute": macs * self.e_mac_pj,
            "weights": weight_bits * self.e_weight_bit_pj / batch,
            "activations": activations * self.bits * self.ops.sram_bit_pj,
        }
        batch_latency = (
            weight_bits / self.weight_bandwidth_bits_per_s + batch * macs / self.macs_per_s
        )
        return DigitalCost(energy_pj=energy, batch_latency_s=batch_latency, macs=macs, batch=batch)


@dataclass
class DigitalCost:
    """Energy per inference (pJ, by component) and the latency of its batch (s)."""

    energy_pj: dict[str, float]
    batch_latency_s: float
    macs: float
    batch: int

    @property
    def total_pj(self) -> float:
        """Energy per inference, every component (pJ)."""
        return sum(self.energy_pj.values())

    @property
    def inference_pj(self) -> float:
        """Energy per inference (pJ): every component (the name :class:`CIMCost` uses)."""
        return self.total_pj

    @property
    def latency_s(self) -> float:
        """The batch's latency shared by its inferences (s)."""
        return self.batch_latency_s / self.batch

    @property
    def tops_per_w(self) -> float:
        """2 · MACs per pJ (1 op/pJ = 1 TOPS/W); ``nan`` at zero energy."""
        return 2 * self.macs / self.total_pj if self.total_pj > 0 else math.nan

    def as_dict(self) -> dict[str, float]:
        """Every figure as a flat dict (energies suffixed ``_pj``)."""
        out = {f"{k}_pj": v for k, v in self.energy_pj.items()}
        out.update(total_pj=self.total_pj, batch_latency_s=self.batch_latency_s,
                   tops_per_w=self.tops_per_w, batch=float(self.batch))  # fmt: skip
        return out


# Presets. Energies per operation and per bit are cited (Horowitz [1]; HBM/DDR per bit from
# docs/references.md); throughputs and bandwidths are order-of-magnitude assumptions (unverified).
#: An edge CPU: fp32 arithmetic, weights in DRAM (Horowitz: 640 pJ per 32-bit read = 20 pJ/bit),
#: 10 GMAC/s, 100 Gbit/s of DRAM bandwidth.
EDGE_CPU = DigitalProcessor(
    name="edge CPU (fp32, DRAM)",
    dtype="fp32",
    e_weight_bit_pj=HOROWITZ_45NM.dram_bit_pj,
    macs_per_s=1e10,
    weight_bandwidth_bits_per_s=1e11,
)
#: A GPU: fp32 arithmetic, weights in HBM (~4 pJ/bit), 10 TMAC/s, 8 Tbit/s.
GPU = DigitalProcessor(
    name="GPU (fp32, HBM)",
    dtype="fp32",
    e_weight_bit_pj=HBM.e_pj_per_bit,
    macs_per_s=1e13,
    weight_bandwidth_bits_per_s=HBM.bandwidth_bits_per_s,
)
#: A microcontroller: int8 arithmetic, weights in on-chip SRAM (5 pJ per 32-bit read),
#: 100 MMAC/s, 32 bit per 10 ns.
MCU = DigitalProcessor(
    name="MCU (int8, SRAM)",
    dtype="int8",
    e_weight_bit_pj=HOROWITZ_45NM.sram_bit_pj,
    macs_per_s=1e8,
    weight_bandwidth_bits_per_s=3.2e9,
)

#: An edge NPU at a recent node: int8 arithmetic and SRAM at Horowitz's 45 nm energies × 1/8,
#: weights in DDR (17.5 pJ/bit, references), 1 TMAC/s, 100 Gbit/s. The 1/8 stands for
#: scaling 45 nm logic to a 7 nm-class node and is our assumption (unverified): it is the
#: digital processor that Horowitz's own 45 nm table leaves out, and the one a CIM macro
#: competes with today.
EDGE_NPU = DigitalProcessor(
    name="edge NPU (int8, DDR, logic x1/8)",
    dtype="int8",
    e_weight_bit_pj=DDR.e_pj_per_bit,
    macs_per_s=1e12,
    weight_bandwidth_bits_per_s=DDR.bandwidth_bits_per_s,
    ops=HOROWITZ_45NM.scaled(1 / 8),
)

PROCESSORS: dict[str, DigitalProcessor] = {
    "edge_cpu": EDGE_CPU,
    "gpu": GPU,
    "mcu": MCU,
    "edge_npu": EDGE_NPU,
}
