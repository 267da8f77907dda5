"""The sampling schemes of Bayesian CIM: where each weight's devices sit so that their
randomness draws samples of N(μ, σ²).

Each scheme places a weight's devices on crossbar tiles (:mod:`memcim.crossbar`) and draws the
samples with the device models — programming, drift/relaxation to the read time ``t_s`` and read
noise — never by drawing the Gaussian in software (references, "Bayesian CIM"). This module holds
the mapping arithmetic of every scheme: the tile mapping it uses, the conductance targets of each
weight's devices and the σ they realise; :class:`memcim.bayes.SampledMatrix` programs and reads
those tiles. ``k_us`` is the conductance (µS) of a weight's summed bit-line contribution that one
weight unit maps to; it is chosen per layer from the largest |μ| (and σ).

* ``CYCLE_TO_CYCLE`` [7, 8]: one device per weight at g_mid + kμ, minus a fixed (noise-free)
  reference at g_mid on the bit line (offset mapping); every sample re-programs (RESET+SET) the
  same cells: K programmings, K × cells pulses. The median follows μ and the spread is the
  device's own σ(median): μ and σ are coupled (device-aware training makes the posterior obey
  that coupling).
* ``DEVICE_POPULATION`` [8]: K copies of the array of differential pairs, programmed once under
  identical conditions (2K cells per weight); sample s reads copy s mod K. Programming
  conditions are solved per weight so that the pair's spread matches σ (as in ``DIFFERENTIAL``).
* ``READ_NOISE`` [9]: three devices per weight read as currents I₁..I₃; with Lin et al.'s device
  (:class:`~memcim.devices.LaplaceRRAM`, the default for this scheme) w = (ΣI − 7.2)/10.5 (µA,
  0.4–4 µA, scaled to the layer): an offset mapping with three devices per weight and a fixed
  reference of 7.2 µA. The array is programmed once and every read (every input vector of every
  sample) adds fresh Laplace read noise of scale b(I) per device. σ follows μ (coupled). Another
  device reads with its own read noise around its mid-window.
* ``DIFFERENTIAL`` [8, 10]: w ∝ G_a − G_b, both re-programmed for every sample (K programmings
  of one array of pairs). The medians are solved so that m_a − m_b = k|μ| and
  σ(m_a)² + σ(m_b)² = (kσ)², which decouples μ and σ within what the window allows.
* ``SEPARATE_MU_SIGMA`` [11]: μ on one array of differential pairs and σ² on another, each
  programmed once (with the device's noise and drift). Per input vector the μ array is read with
  x and the σ² array with x² (its own DAC conversion), and per sample the digital periphery
  forms y = y_μ + √max(y_σ², 0)·ε with one ε per output from n stochastic STT-MRAM bits,
  ε = (B − n/2)/√(n/4), B the bits that switched at the p = ½ write current. This is the local
  reparameterisation of the layer: for each input the outputs have exactly the distribution
  whole weight samples give. The combination is digital, after the two ADCs: per output and
  sample one square root and one multiply-add (counted) and n random bits.

σ(m) of a device is its programmed-then-read std at ``design_t_s``, tabulated once by
Monte-Carlo on the device model (:class:`memcim.nn.ConductanceNoiseTable`), so every device model
works: for the schemes that re-program the same cells the std of re-programming one cell (its
device-to-device spread is persistent, the same in every sample), for the others that of fresh
cells. A cell's persistent parameters (e.g. RRAM's device-to-device factor on its median) still
shift the mean of a re-programmed weight's samples: that error is fixed per cell, not sampled.

Clipping is counted, never silent: a conductance target outside the device window is programmed
at the window's edge and counted in :attr:`Realisation.clipped`. With the scale chosen here
(largest |μ| inside the window) none are clipped; with a given ``k_us`` every μ beyond what that
scale represents is.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim.crossbar import MappingConfig
from memcim.devices import STTMRAM, Device, DeviceState, FilamentaryRRAM, LaplaceRRAM
from memcim.devices.base import check_time
from memcim.devices.statistics import ConductanceNoiseTable

#: Three devices per weight in Lin et al.'s read-noise sampling [9].
LIN_DEVICES = 3
# A target beyond the window by less than this (relative to the limit) is float32 rounding of
# g_min + k·|μ| at the edge (a few ulps, ~1e-7 relative), not a clip, and is not counted.
_CLIP_RTOL = 1e-5


def _clipped(values: Tensor, low: float, high: float) -> int:
    """How many ``values`` lie outside [low, high] by more than rounding: the ones a clamp moves."""
    tol = _CLIP_RTOL * max(abs(low), abs(high))
    return int(((values < low - tol) | (values > high + tol)).sum())


class SamplingScheme(StrEnum):
    """How device randomness draws the weight samples (see module docstring)."""

    CYCLE_TO_CYCLE = "cycle_to_cycle"
    DEVICE_POPULATION = "device_population"
    READ_NOISE = "read_noise"
    DIFFERENTIAL = "differential"
    SEPARATE_MU_SIGMA = "separate_mu_sigma"


@dataclass(frozen=True, kw_only=True)
class HardwareSampling:
    """Where and how weight samples are drawn.

    Attributes:
        scheme: the sampling scheme.
        device: the memory cell; ``None`` (default): Lin et al.'s
            :class:`~memcim.devices.LaplaceRRAM` for ``READ_NOISE``, filamentary RRAM (whose
            programming noise [7, 8] use) for every other scheme. Resolved at construction.
        t_s: read time after the (last) programming (s): drift and relaxation degrade fidelity.
        design_t_s: read time (s) the programming conditions are chosen for (σ(m) and the
            differential medians come from the device's statistics at this time); ``None``:
            ``t_s``. Programming for one time and reading at a later ``t_s`` measures how drift
            degrades a posterior programmed once (:func:`memcim.bayes.fidelity.versus_time`).
            ``READ_NOISE`` reads the device's read noise at ``t_s``.
        population: K, rows per weight for ``DEVICE_POPULATION``.
        random_bits: n, stochastic bits per ε for ``SEPARATE_MU_SIGMA``.
        rng_device: the MTJ used as random bit source for ``SEPARATE_MU_SIGMA``.
        rng_pulse_s: its write pulse width (s); the current is set for p = ½.
        bisection_steps: iterations of the per-weight solve of the differential medians.
    """

    scheme: SamplingScheme = SamplingScheme.DIFFERENTIAL
    device: Device | None = None
    t_s: float = 0.0
    design_t_s: float | None = None
    population: int = 100
    random_bits: int = 16
    rng_device: STTMRAM = field(default_factory=STTMRAM)
    rng_pulse_s: float = 10e-9
    bisection_steps: int = 40

    def __post_init__(self) -> None:
        require(isinstance(self.scheme, SamplingScheme), "HardwareSampling.scheme", self.scheme,
                f"must be a SamplingScheme ({[s.name for s in SamplingScheme]})")  # fmt: skip
        if self.device is None:
            default = LaplaceRRAM if self.scheme is SamplingScheme.READ_NOISE else FilamentaryRRAM
            object.__setattr__(self, "device", default())
        require(isinstance(self.device, Device), "HardwareSampling.device", self.device,
                "must be a memcim.devices.Device")  # fmt: skip
        check_time(self.t_s, "HardwareSampling.t_s")
        if self.design_t_s is not None:
            check_time(self.design_t_s, "HardwareSampling.design_t_s")
        for name in ("population", "random_bits", "bisection_steps"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"HardwareSampling.{name}", value,
                    "must be an int >= 1")  # fmt: skip


@dataclass
class Realisation:
    """Realised weight samples and what drawing them cost.

    Attributes:
        samples: [S, ...] weights (weight units), as the tiles hold them (read without
            converters).
        feasible: per weight, whether the scheme can realise the target σ at that μ.
        writes: programming pulses applied.
        write_energy_pj: their energy (pJ).
        k_us: µS of a weight's summed bit-line conductance per weight unit (the μ array's for
            ``SEPARATE_MU_SIGMA``).
        clipped: conductance targets clamped into the device window; 0 with the scale chosen
            from μ.
    """

    samples: Tensor
    feasible: Tensor
    writes: int
    write_energy_pj: float
    k_us: float
    clipped: int = 0


def _table(config: HardwareSampling) -> ConductanceNoiseTable:
    """σ(m) of the scheme's draws: re-programming the same cells for the schemes that sample
    that way (their persistent device-to-device spread is no part of the samples' spread),
    fresh cells for the others."""
    design = config.t_s if config.design_t_s is None else config.design_t_s
    return _device_table(config.device, design, config.scheme in _REPROGRAMMED)


#: Schemes whose samples are re-programmings of the same cells.
_REPROGRAMMED = (SamplingScheme.CYCLE_TO_CYCLE, SamplingScheme.DIFFERENTIAL)


@functools.lru_cache(maxsize=8)
def _device_table(device: Device, t_s: float, reprogrammed: bool) -> ConductanceNoiseTable:
    # A fixed characterisation of the (frozen, hashable) device model, reused by every layer
    # and by the bias of each layer instead of being re-tabulated per call.
    # On the CPU, so that every device reads the same characterisation (copied where used).
    gen = torch.Generator(device="cpu").manual_seed(0)
    return ConductanceNoiseTable(device, t_s, generator=gen, reprogrammed=reprogrammed)


def _std_at(table: ConductanceNoiseTable, g_us: Tensor) -> Tensor:
    return table.moments(g_us)[1]


def _scale(mu: Tensor, window_us: float) -> float:
    """µS per weight unit so that the largest |μ| takes ``window_us``."""
    peak = float(mu.abs().max())
    return window_us / peak if peak > 0 else window_us


def _lower_median_range(mu: Tensor, k_us: float, dev: Device) -> tuple[Tensor, Tensor, Tensor]:
    """``(d, lo, hi)`` (µS): the pair's difference k|μ| and the range of its lower median that
    keeps both medians inside the window."""
    d = k_us * mu.abs()
    lo = torch.full_like(d, dev.g_min_us)
    hi = (dev.g_max_us - d).clamp_min(dev.g_min_us)
    return d, lo, hi


def _pair_variance(table: ConductanceNoiseTable, m_low: Tensor, d: Tensor) -> Tensor:
    """Variance (µS²) of G_a − G_b for medians ``m_low + d`` and ``m_low``."""
    return _std_at(table, m_low + d) ** 2 + _std_at(table, m_low) ** 2


def differential_sigma_range(
    mu: Tensor, k_us: float, table: ConductanceNoiseTable
) -> tuple[Tensor, Tensor]:
    """Smallest and largest σ (weight units) a differential pair can give each μ at scale k.

    The ends of the bisection of :func:`differential_medians`: the lower median at g_min and at
    its highest (σ(m) increasing, as that solve assumes). A target σ is flagged feasible there
    exactly when it lies in this interval.
    """
    d, lo, hi = _lower_median_range(mu, k_us, table.device)
    return _pair_variance(table, lo, d).sqrt() / k_us, _pair_variance(table, hi, d).sqrt() / k_us


def differential_medians(
    mu: Tensor, sigma: Tensor, k_us: float, table: ConductanceNoiseTable, steps: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Medians (m_a, m_b) with m_a − m_b = kμ and σ(m_a)² + σ(m_b)² = (kσ)², per weight.

    Solved by bisection on the lower median (σ(m) is increasing for the filamentary RRAM and
    PCM fits over most of the window); targets outside the reachable range are clipped to the
    nearest end and flagged infeasible.

    Returns:
        ``(m_plus, m_minus, feasible)``: the medians for the device carrying +|μ| and the other.
    """
    dev = table.device
    d, lo, hi = _lower_median_range(mu, k_us, dev)
    target = (k_us * sigma) ** 2

    def spread(m_low: Tensor) -> Tensor:
        return _pair_variance(table, m_low, d)

    feasible = (spread(lo) <= target) & (spread(hi) >= target) & (d <= dev.g_span_us)
    a, b = lo.clone(), hi.clone()
    for _ in range(steps):
        mid = (a + b) / 2
        below = spread(mid) < target
        a = torch.where(below, mid, a)
        b = torch.where(below, b, mid)
    m_low = torch.where(spread(lo) > target, lo, torch.where(spread(hi) < target, hi, (a + b) / 2))
    return m_low + d, m_low, feasible


def _best_differential_scale(
    mu: Tensor, sigma: Tensor, table: ConductanceNoiseTable, steps: int
) -> float:
    """µS per weight unit that lets the most weights reach their σ (ties: the largest k).

    A larger k resolves μ better but shrinks the spread in weight units (σ(m)/k with σ(m)
    growing slower than m), so the best k depends on the posterior: a few candidates, each
    mapping the largest |μ| to a fraction 1/c of the window, are tried.
    """
    span = table.device.g_span_us
    best, best_fraction = None, -1.0
    for c in (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0):
        k = _scale(mu, span / c)
        fraction = float(differential_medians(mu, sigma, k, table, 1)[2].float().mean())
        if fraction > best_fraction + 1e-9:
            best, best_fraction = k, fraction
    return best


def scheme_mapping(sampling: HardwareSampling) -> MappingConfig:
    """The tile mapping of ``sampling``'s scheme (analog weights, one slice)."""
    scheme = sampling.scheme
    if scheme is SamplingScheme.CYCLE_TO_CYCLE:
        return MappingConfig(scheme="offset", reference="fixed")
    if scheme is SamplingScheme.READ_NOISE:
        # Lin et al.'s device carries its 7.2 µA / 3 reference; others read around mid-window.
        level = getattr(sampling.device, "reference_us", None)
        return MappingConfig(scheme="offset", devices_per_weight=LIN_DEVICES, reference="fixed",
                             reference_us=level)  # fmt: skip
    return MappingConfig(scheme="differential")


@dataclass
class SchemeTargets:
    """Conductance targets of one weight matrix under a scheme.

    Attributes:
        planes: [P, in, out] (µS), the tile layout (rows = inputs, cols = outputs) in the
            mapping's plane order; for ``SEPARATE_MU_SIGMA`` the μ array's.
        k_us: µS of summed bit-line conductance per weight unit.
        realised_sigma: [out, in], the σ (weight units) the scheme realises at each weight.
        feasible: [out, in], whether that σ is the target's (within 10 % for coupled schemes).
        clipped: targets clamped into the window.
        sigma_planes, sigma_k_us: ``SEPARATE_MU_SIGMA``'s σ² array and its µS per unit of σ².
    """

    planes: Tensor
    k_us: float
    realised_sigma: Tensor
    feasible: Tensor
    clipped: int
    sigma_planes: Tensor | None = None
    sigma_k_us: float | None = None


def _clamped(targets: Tensor, dev: Device) -> tuple[Tensor, int]:
    return targets.clamp(dev.g_min_us, dev.g_max_us), _clipped(targets, dev.g_min_us,
                                                               dev.g_max_us)  # fmt: skip


def _coupled_feasible(realised: Tensor, sigma: Tensor) -> Tensor:
    return (realised - sigma).abs() <= 0.1 * sigma.clamp_min(1e-12)


def _pair_planes(plus: Tensor, minus: Tensor, mu: Tensor) -> Tensor:
    """[2, in, out] of a differential pair: (G⁺, G⁻) with the +|μ| device on G⁺ for μ >= 0."""
    positive = mu >= 0
    return torch.stack([torch.where(positive, plus, minus),
                        torch.where(positive, minus, plus)]).transpose(-1, -2)  # fmt: skip


def scheme_targets(mu: Tensor, sigma: Tensor, sampling: HardwareSampling,
                   k_us: float | None = None) -> SchemeTargets:  # fmt: skip
    """Where the devices of each weight of ``mu``/``sigma`` [out, in] are programmed.

    Args:
        mu, sigma: target means and stds (weight units), [out, in].
        sampling: scheme, device and design time.
        k_us: the scale (µS per weight unit, as :attr:`SchemeTargets.k_us`); ``None``: chosen
            so that nothing clips.
    """
    dev, scheme = sampling.device, sampling.scheme
    if scheme is SamplingScheme.CYCLE_TO_CYCLE:
        k, _, median, realised = _cycle_to_cycle_mapping(mu, sampling, k_us)
        planes, clipped = _clamped(median.transpose(-1, -2).unsqueeze(0), dev)
        return SchemeTargets(planes, k, realised, _coupled_feasible(realised, sigma), clipped)
    if scheme is SamplingScheme.READ_NOISE:
        k, per_device, realised = _read_noise_mapping(mu, sampling, k_us)
        one, clipped = _clamped(per_device.transpose(-1, -2), dev)
        planes = one.unsqueeze(0).expand(LIN_DEVICES, *one.shape).contiguous()
        return SchemeTargets(planes, k, realised, _coupled_feasible(realised, sigma), clipped)
    table = _table(sampling)
    if scheme is SamplingScheme.SEPARATE_MU_SIGMA:
        return _separate_targets(mu, sigma, dev, k_us)
    steps = sampling.bisection_steps
    k = _best_differential_scale(mu, sigma, table, steps) if k_us is None else k_us
    m_plus, m_minus, feasible = differential_medians(mu, sigma, k, table, steps)
    planes, clipped = _clamped(_pair_planes(m_plus, m_minus, mu), dev)
    realised = _pair_variance(table, m_minus, m_plus - m_minus).sqrt() / k
    return SchemeTargets(planes, k, realised, feasible, clipped)


def _separate_targets(mu: Tensor, sigma: Tensor, dev: Device, k_us: float | None
                      ) -> SchemeTargets:  # fmt: skip
    """μ on differential pairs from g_min, σ² on pairs whose G⁻ idles at g_min."""
    k_mu = _scale(mu, dev.g_span_us) if k_us is None else k_us
    variance = sigma.square()
    k_var = _scale(variance, dev.g_span_us)
    g0 = dev.g_min_us
    plus, minus = g0 + k_mu * mu.clamp_min(0), g0 + k_mu * (-mu).clamp_min(0)
    mu_planes, clipped = _clamped(torch.stack([plus, minus]).transpose(-1, -2), dev)
    var_planes = torch.stack([g0 + k_var * variance, torch.full_like(variance, g0)])
    var_planes, var_clipped = _clamped(var_planes.transpose(-1, -2), dev)
    feasible = torch.ones_like(mu, dtype=torch.bool)
    return SchemeTargets(mu_planes, k_mu, sigma, feasible, clipped + var_clipped, var_planes,
                         k_var)  # fmt: skip


def _cycle_to_cycle_mapping(mu: Tensor, config: HardwareSampling, k: float | None = None
                            ) -> tuple[float, float, Tensor, Tensor]:  # fmt: skip
    """``(k, g_mid, median, sigma)``: µS per weight unit (the largest |μ| on half the window
    unless given), the reference and the medians (µS), and the σ (weight units) that the
    device's σ(median) imposes on each μ."""
    dev = config.device
    k = _scale(mu, dev.g_span_us / 2) if k is None else k
    g_mid = dev.g_min_us + dev.g_span_us / 2
    median = g_mid + k * mu
    return k, g_mid, median, _std_at(_table(config), median) / k


def _read_noise_mapping(mu: Tensor, config: HardwareSampling, k: float | None = None
                        ) -> tuple[float, Tensor, Tensor]:  # fmt: skip
    """``(k, per_device, sigma)`` of the read-noise scheme: µS of the three devices' summed
    conductance per weight unit (the largest |μ| at 95 % of the room the reference leaves, as
    Lin et al.'s weights keep inside (ΣI − 7.2)/10.5 ∈ [−0.571, 0.457], unless given), each
    device's target (µS, unclamped) and the σ (weight units) their read noise imposes."""
    dev = config.device
    mapping = scheme_mapping(config)
    g_ref = mapping.reference_level_us(dev.g_min_us, dev.g_max_us)
    if k is None:
        room = LIN_DEVICES * mapping.unit_us(dev.g_min_us, dev.g_max_us)
        k = _scale(mu, 0.95 * room)
    per_device = g_ref + k * mu / LIN_DEVICES
    inside = per_device.clamp(dev.g_min_us, dev.g_max_us)
    std = dev.read_noise_std(DeviceState.fresh(inside), t_s=config.t_s)
    return k, per_device, (LIN_DEVICES**0.5) * std / k


def coupled_sigma(
    mu: Tensor, config: HardwareSampling, *, k_us: float | None = None
) -> tuple[Tensor, float]:
    """The only σ (weight units) a coupled scheme realises at each μ, and its scale.

    Args:
        mu: target means (weight units), any shape.
        config: a ``CYCLE_TO_CYCLE`` or ``READ_NOISE`` sampling.
        k_us: the scale to assume (as returned); ``None``: chosen from the largest |μ| as
            :func:`realise` does.

    Returns:
        ``(sigma, k)``: σ(μ), same shape as ``mu``, and the scale ``realise`` reports as
        ``k_us`` (µS per weight unit).
    """
    mu = mu.detach().float()
    if config.scheme is SamplingScheme.CYCLE_TO_CYCLE:
        k, _, _, sigma = _cycle_to_cycle_mapping(mu, config, k_us)
        return sigma, k
    if config.scheme is SamplingScheme.READ_NOISE:
        k, _, sigma = _read_noise_mapping(mu, config, k_us)
        return sigma, k
    raise ConfigError(f"scheme={config.scheme!r} is invalid: coupled_sigma needs "
                      "CYCLE_TO_CYCLE or READ_NOISE")  # fmt: skip
