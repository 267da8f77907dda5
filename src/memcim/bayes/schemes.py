"""Weight samples realised by device randomness: the sampling schemes of Bayesian CIM.

Each scheme turns target Gaussians N(μ, σ²) (weight units, any shape) into S realised weight
samples [S, ...] by running the device models — programming, drift/relaxation to the read time
``t_s`` and read noise — never by drawing the Gaussian in software (REFERENCES, "Bayesian CIM").
``k_us`` is the conductance (µS) that one weight unit maps to; it is chosen per layer from the
largest |μ|.

* ``CYCLE_TO_CYCLE`` [7][8]: one device per weight around mid-window, minus a digital reference;
  every sample re-programs (RESET+SET) it, a fresh cycle-to-cycle draw. The median follows μ and
  the spread is the device's own σ(median): μ and σ are coupled (device-aware training makes the
  posterior obey that coupling).
* ``DEVICE_POPULATION`` [8]: K rows of differential pairs programmed once under identical
  conditions per weight; sample s reads row s mod K. Programming conditions are solved per weight
  so that the pair's spread matches σ (as in ``DIFFERENTIAL``).
* ``READ_NOISE`` [9]: three devices per weight read as currents I₁..I₃ (0.4–4 µA);
  w = (ΣI − 7.2)/10.5 (scaled to the layer), with independent Laplace read noise of scale
  b(I) = −0.0058 I² + 0.0324 I + 0.0141 µA per device on every read. σ follows μ (coupled).
* ``DIFFERENTIAL`` [8][10]: w ∝ G_a − G_b, both re-programmed for every sample. The medians are
  solved so that m_a − m_b = k|μ| and σ(m_a)² + σ(m_b)² = (kσ)², which decouples μ and σ within
  what the window allows.
* ``SEPARATE_MU_SIGMA`` [11]: μ and σ stored in two arrays (programmed once, with the device's
  noise and drift) and combined with a random source per sample: ε = (B − n/2)/√(n/4), B the
  number of n stochastic STT-MRAM bits that switched at the p = ½ write current.

σ(m) of a device is its programmed-then-read std at ``t_s``, tabulated once by Monte-Carlo on
the device model (:class:`memcim.nn.ConductanceNoiseTable`), so every device model works.

Clipping is counted, never silent: a conductance target outside the device window is programmed
at the window's edge, and a ``READ_NOISE`` current outside Lin et al.'s 0.4–4 µA is set at the
range's edge; :attr:`Realisation.clipped` counts those targets. With the scale ``realise``
chooses itself (largest |μ| inside the window) none are clipped; with a given ``k_us`` every μ
beyond what that scale represents is.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import Tensor

from memcim._errors import ConfigError, is_real, require
from memcim.devices import STTMRAM, Device, DeviceState, FilamentaryRRAM
from memcim.devices.base import check_time
from memcim.devices.statistics import ConductanceNoiseTable


class SamplingScheme(StrEnum):
    """How device randomness draws the weight samples (see module docstring)."""

    CYCLE_TO_CYCLE = "cycle_to_cycle"
    DEVICE_POPULATION = "device_population"
    READ_NOISE = "read_noise"
    DIFFERENTIAL = "differential"
    SEPARATE_MU_SIGMA = "separate_mu_sigma"


# Lin et al. [9]: w = (ΣI − 7.2)/10.5 over three devices, currents in µA within 0.4–4 µA.
_LIN_OFFSET_UA, _LIN_GAIN_UA = 7.2, 10.5
_LIN_I_MIN_UA, _LIN_I_MAX_UA = 0.4, 4.0
_LIN_DEVICES = 3
# A target beyond the window by less than this (relative to the limit) is float32 rounding of
# g_min + k·|μ| at the edge (a few ulps, ~1e-7 relative), not a clip, and is not counted.
_CLIP_RTOL = 1e-5


def _clipped(values: Tensor, low: float, high: float) -> int:
    """How many ``values`` lie outside [low, high] by more than rounding: the ones a clamp moves."""
    tol = _CLIP_RTOL * max(abs(low), abs(high))
    return int(((values < low - tol) | (values > high + tol)).sum())


def lin_laplace_scale_ua(i_ua: Tensor) -> Tensor:
    """Laplace read-noise scale b(I) = −0.0058 I² + 0.0324 I + 0.0141 (µA) of Lin et al. [9]."""
    return -0.0058 * i_ua * i_ua + 0.0324 * i_ua + 0.0141


def laplace_noise(scale: Tensor, shape: tuple[int, ...], *, generator: torch.Generator) -> Tensor:
    """Laplace(0, scale) draws of ``shape`` by inverse CDF: −b·sign(u)·ln(1 − 2|u|).

    u must lie in the *open* interval (−½, ½): ``torch.rand`` returns multiples of 2⁻²⁴ in
    [0, 1) and can return exactly 0, which would give |u| = ½ and an infinite draw; 0 is moved
    to the next float32 grid point (the largest draw is then b·ln 2²³ ≈ 15.9 b).
    """
    u = torch.rand(shape, generator=generator).clamp_min(2.0**-24) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())


@dataclass(frozen=True, kw_only=True)
class HardwareSampling:
    """Where and how weight samples are drawn.

    Attributes:
        scheme: the sampling scheme.
        device: the memory cell (default filamentary RRAM, whose programming noise [7][8] use).
        t_s: read time after the (last) programming (s): drift and relaxation degrade fidelity.
        design_t_s: read time (s) the programming conditions are chosen for (σ(m) and the
            differential medians come from the device's statistics at this time); ``None``:
            ``t_s``. Programming for one time and reading at a later ``t_s`` measures how drift
            degrades a posterior programmed once (:func:`memcim.bayes.fidelity.versus_time`).
            ``READ_NOISE`` uses Lin et al.'s measured currents, which have no time dependence.
        population: K, rows per weight for ``DEVICE_POPULATION``.
        random_bits: n, stochastic bits per ε for ``SEPARATE_MU_SIGMA``.
        rng_device: the MTJ used as random bit source for ``SEPARATE_MU_SIGMA``.
        rng_pulse_s: its write pulse width (s); the current is set for p = ½.
        bisection_steps: iterations of the per-weight solve of the differential medians.
    """

    scheme: SamplingScheme = SamplingScheme.DIFFERENTIAL
    device: Device = field(default_factory=FilamentaryRRAM)
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
        samples: [S, ...] weights (weight units).
        feasible: per weight, whether the scheme can realise the target σ at that μ.
        writes: programming pulses applied.
        write_energy_pj: their energy (pJ), plus random-bit generation for SEPARATE_MU_SIGMA.
        k_us: conductance per weight unit (µS), or current per weight unit (µA) for READ_NOISE.
        clipped: targets clamped into the device window (conductance medians, µS) or, for
            READ_NOISE, per-weight currents clamped into 0.4–4 µA; 0 with the scale ``realise``
            chooses itself.
    """

    samples: Tensor
    feasible: Tensor
    writes: int
    write_energy_pj: float
    k_us: float
    clipped: int = 0


def _table(config: HardwareSampling) -> ConductanceNoiseTable:
    design = config.t_s if config.design_t_s is None else config.design_t_s
    return _device_table(config.device, design)


@functools.lru_cache(maxsize=8)
def _device_table(device: Device, t_s: float) -> ConductanceNoiseTable:
    # A fixed characterisation of the (frozen, hashable) device model, reused by every layer
    # and by the bias of each layer instead of being re-tabulated per call.
    gen = torch.Generator().manual_seed(0)
    return ConductanceNoiseTable(device, t_s, generator=gen)


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


def _program_read(
    device: Device, targets: Tensor, t_s: float, generator: torch.Generator,
    state: DeviceState | None = None,
) -> tuple[Tensor, DeviceState]:  # fmt: skip
    state = device.program(targets.clamp(device.g_min_us, device.g_max_us), generator=generator,
                           state=state)  # fmt: skip
    return device.read(state, t_s=t_s, generator=generator), state


def _reprogrammed_samples(
    device: Device, targets: Tensor, samples: int, t_s: float, generator: torch.Generator
) -> Tensor:
    """Reads of the same cells re-programmed ``samples`` times: [S, *targets.shape].

    The first programming fixes each cell's persistent parameters (device-to-device spread,
    forming faults); the other S − 1 programmings start from it, all at once along a leading
    sample dimension (a fresh cycle-to-cycle draw each, same cells).
    """
    first, state = _program_read(device, targets, t_s, generator)
    if samples == 1:
        return first.unsqueeze(0)
    rest = state.map(lambda t: t.expand(samples - 1, *t.shape))
    again, _ = _program_read(device, targets.expand(samples - 1, *targets.shape), t_s,
                             generator, rest)  # fmt: skip
    return torch.cat([first.unsqueeze(0), again])


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


def _read_noise_mapping(mu: Tensor, scale: float | None = None
                        ) -> tuple[float, Tensor, Tensor, Tensor, int]:  # fmt: skip
    """``(scale, currents, b, sigma, clipped)`` of Lin et al.'s mapping [9]: weight units per
    unit of (ΣI − 7.2)/10.5 (chosen from the largest |μ| unless given), the per-device currents
    and Laplace scales (µA), the σ (weight units) they impose, and how many weights' currents
    lay outside 0.4–4 µA and were set at the range's edge."""
    if scale is None:
        # Scale so that the largest |μ| sits inside the representable (ΣI − 7.2)/10.5 range.
        w_hi = (_LIN_DEVICES * _LIN_I_MAX_UA - _LIN_OFFSET_UA) / _LIN_GAIN_UA  # 0.457
        w_lo = (_LIN_DEVICES * _LIN_I_MIN_UA - _LIN_OFFSET_UA) / _LIN_GAIN_UA  # −0.571
        peak = float(mu.abs().max())
        scale = peak / (0.95 * min(w_hi, -w_lo)) if peak > 0 else 1.0
    total = (mu / scale) * _LIN_GAIN_UA + _LIN_OFFSET_UA
    wanted = total / _LIN_DEVICES  # equal split
    clipped = _clipped(wanted, _LIN_I_MIN_UA, _LIN_I_MAX_UA)
    currents = wanted.clamp(_LIN_I_MIN_UA, _LIN_I_MAX_UA)
    b = lin_laplace_scale_ua(currents)
    realised_sigma = math.sqrt(2 * _LIN_DEVICES) * b / _LIN_GAIN_UA * scale
    return scale, currents, b, realised_sigma, clipped


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
        ``k_us`` (µS per weight unit; µA per weight unit for ``READ_NOISE``).
    """
    mu = mu.detach().float()
    if config.scheme is SamplingScheme.CYCLE_TO_CYCLE:
        k, _, _, sigma = _cycle_to_cycle_mapping(mu, config, k_us)
        return sigma, k
    if config.scheme is SamplingScheme.READ_NOISE:
        scale, _, _, sigma, _ = _read_noise_mapping(
            mu, None if k_us is None else _LIN_GAIN_UA / k_us
        )
        return sigma, _LIN_GAIN_UA / scale
    raise ConfigError(f"scheme={config.scheme!r} is invalid: coupled_sigma needs "
                      "CYCLE_TO_CYCLE or READ_NOISE")  # fmt: skip


def realise(
    mu: Tensor, sigma: Tensor, config: HardwareSampling, samples: int,
    *, generator: torch.Generator, k_us: float | None = None,
) -> Realisation:  # fmt: skip
    """Draw ``samples`` weight samples of N(μ, σ²) with the devices of ``config``.

    Args:
        mu, sigma: target means and stds (weight units), same shape.
        config: scheme, device and read time.
        samples: S, the number of Monte-Carlo samples.
        generator: all randomness (programming, reads, random bits).
        k_us: the scale to program at (a previous :attr:`Realisation.k_us`: µS per weight
            unit; µA per weight unit for ``READ_NOISE``; the μ array's for
            ``SEPARATE_MU_SIGMA``); ``None``: chosen from μ (and σ) so that nothing clips.
            Targets a given scale puts outside the window are clamped and counted in
            :attr:`Realisation.clipped`.
    """
    if mu.shape != sigma.shape:
        raise ConfigError(f"mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)} differ in shape")
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "an int >= 1")
    require(k_us is None or (is_real(k_us) and k_us > 0), "k_us", k_us, "None or finite and > 0")
    if not bool((sigma >= 0).all()) or not bool(torch.isfinite(mu).all()):
        raise ConfigError("mu must be finite and sigma >= 0")
    mu, sigma = mu.detach().float(), sigma.detach().float()
    scheme = config.scheme
    if scheme is SamplingScheme.READ_NOISE:
        return _read_noise(mu, sigma, samples, generator, k_us)
    dev, table = config.device, _table(config)
    if scheme is SamplingScheme.CYCLE_TO_CYCLE:
        k, g_mid, median, realised_sigma = _cycle_to_cycle_mapping(mu, config, k_us)
        out = (_reprogrammed_samples(dev, median, samples, config.t_s, generator) - g_mid) / k
        feasible = (realised_sigma - sigma).abs() <= 0.1 * sigma.clamp_min(1e-12)
        writes = samples * mu.numel()
        return Realisation(out, feasible, writes, writes * dev.e_write_pj, k,
                           _clipped(median, dev.g_min_us, dev.g_max_us))  # fmt: skip
    if scheme in (SamplingScheme.DIFFERENTIAL, SamplingScheme.DEVICE_POPULATION):
        k = _best_differential_scale(mu, sigma, table, config.bisection_steps) if k_us is None \
            else k_us  # fmt: skip
        m_plus, m_minus, feasible = differential_medians(mu, sigma, k, table,
                                                         config.bisection_steps)  # fmt: skip
        positive = mu >= 0
        m_a = torch.where(positive, m_plus, m_minus)
        m_b = torch.where(positive, m_minus, m_plus)
        pair = torch.stack([m_a, m_b])
        clipped = _clipped(pair, dev.g_min_us, dev.g_max_us)
        if scheme is SamplingScheme.DIFFERENTIAL:
            g = _reprogrammed_samples(dev, pair, samples, config.t_s, generator)
            writes = 2 * samples * mu.numel()
            return Realisation((g[:, 0] - g[:, 1]) / k, feasible, writes,
                               writes * dev.e_write_pj, k, clipped)  # fmt: skip
        rows = config.population
        g, _ = _program_read(dev, pair.expand(rows, *pair.shape).contiguous(), config.t_s,
                             generator)  # fmt: skip
        population = (g[:, 0] - g[:, 1]) / k  # [K, ...], programmed once
        index = torch.arange(samples) % rows
        writes = 2 * rows * mu.numel()
        return Realisation(population[index], feasible, writes, writes * dev.e_write_pj, k,
                           clipped)  # fmt: skip
    return _separate(mu, sigma, config, samples, generator, k_us)


def _read_noise(mu: Tensor, sigma: Tensor, samples: int, generator: torch.Generator,
                k_us: float | None) -> Realisation:  # fmt: skip
    given = None if k_us is None else _LIN_GAIN_UA / k_us
    scale, currents, b, realised_sigma, clipped = _read_noise_mapping(mu, given)
    laplace = laplace_noise(b, (samples, _LIN_DEVICES, *mu.shape), generator=generator)
    read = _LIN_DEVICES * currents + laplace.sum(1)
    realised = (read - _LIN_OFFSET_UA) / _LIN_GAIN_UA * scale
    feasible = (realised_sigma - sigma).abs() <= 0.1 * sigma.clamp_min(1e-12)
    return Realisation(realised, feasible, _LIN_DEVICES * mu.numel(), 0.0, _LIN_GAIN_UA / scale,
                       clipped)  # fmt: skip


def _separate(mu: Tensor, sigma: Tensor, config: HardwareSampling, samples: int,
              generator: torch.Generator, k_us: float | None) -> Realisation:  # fmt: skip
    dev = config.device
    k_mu = _scale(mu, dev.g_span_us) if k_us is None else k_us
    k_sigma = _scale(sigma, dev.g_span_us)
    # μ on a differential pair (G⁺ − G⁻ from g_min), σ ≥ 0 on one device above g_min.
    pair = dev.g_min_us + k_mu * torch.stack([mu.clamp_min(0), (-mu).clamp_min(0)])
    g_sigma_target = dev.g_min_us + k_sigma * sigma
    clipped = _clipped(pair, dev.g_min_us, dev.g_max_us)
    clipped += _clipped(g_sigma_target, dev.g_min_us, dev.g_max_us)
    g_pair, _ = _program_read(dev, pair, config.t_s, generator)
    g_sigma, _ = _program_read(dev, g_sigma_target, config.t_s, generator)
    mu_hw = (g_pair[0] - g_pair[1]) / k_mu
    sigma_hw = (g_sigma - dev.g_min_us).clamp_min(0) / k_sigma
    rng = config.rng_device
    current = rng.current_for_probability_ua(0.5, config.rng_pulse_s)
    p = float(rng.switching_probability(torch.tensor(current), config.rng_pulse_s))
    n = config.random_bits
    count = torch.full((samples, *mu.shape), float(n))
    bits = torch.binomial(count, torch.full_like(count, p), generator=generator)
    eps = (bits - n * p) / math.sqrt(n * p * (1 - p))
    writes = 3 * mu.numel()
    energy = writes * dev.e_write_pj + samples * n * mu.numel() * rng.e_write_pj
    feasible = torch.ones_like(mu, dtype=torch.bool)
    return Realisation(mu_hw + sigma_hw * eps, feasible, writes, energy, k_mu, clipped)
