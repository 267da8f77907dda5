"""A weight matrix's Monte-Carlo samples held and multiplied on crossbar tiles.

:class:`SampledMatrix` puts the posterior N(μ, σ²) of one [out, in] matrix on
:class:`~memcim.crossbar.TiledMatrix` tiles as its :class:`~memcim.bayes.SamplingScheme` says
(:mod:`memcim.bayes.schemes`), with the Monte-Carlo samples as tile state (a leading dimension
K, never a Python loop over samples):

=====================  ===========================================  ===========================
scheme                 on the tiles                                  per product
=====================  ===========================================  ===========================
cycle_to_cycle         K programmings of one array (K × cells)       sample s reads copy s
differential           K programmings of one array of pairs          sample s reads copy s
device_population      K copies programmed once; S read              sample s reads copy s
read_noise             one programming, three devices per weight     a fresh read per vector
separate_mu_sigma      a μ array and a σ² array, programmed once     y_μ + √y_σ²·ε per sample
=====================  ===========================================  ===========================

Every product goes through :meth:`~memcim.crossbar.TiledMatrix.mvm`: DAC, the array with its read
noise (and IR drop when the tile config asks for it), drift to ``sampling.t_s`` with the tile's
drift compensation, ADC with calibrated ranges; the tiles count reads, conversions and writes.
The samples are stored once, as the cells' state (conductances), never as float weight copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim.bayes.schemes import (
    _REPROGRAMMED,
    HardwareSampling,
    Realisation,
    SamplingScheme,
    SchemeTargets,
    scheme_mapping,
    scheme_targets,
)
from memcim.crossbar import ConverterConfig, TileConfig, TiledMatrix
from memcim.crossbar.tile import Counters


@dataclass
class SamplerCounters(Counters):
    """What a sampler does beyond its tiles' reads and writes (``SEPARATE_MU_SIGMA``).

    Attributes:
        random_bits: stochastic MTJ writes drawn for ε (n per output, sample and vector).
        digital_ops: digital combinations y_μ + √y_σ²·ε (one square root and one multiply-add
            each), one per output, sample and vector.
        variance_clipped: σ² reads below zero (read noise, ADC rounding) taken as 0.
    """

    random_bits: int = 0
    digital_ops: int = 0
    variance_clipped: int = 0


@dataclass
class Programming:
    """What programming a sampler cost and how well its scheme fits the posterior.

    Attributes:
        writes: programming pulses (every tile, reference cells included).
        write_energy_pj: their energy (pJ).
        k_us: µS of a weight's summed bit-line conductance per weight unit.
        feasible: [out, in], whether the scheme realises each target σ.
        clipped: conductance targets clamped into the device window.
    """

    writes: int
    write_energy_pj: float
    k_us: float
    feasible: Tensor
    clipped: int


def _tile_config(sampling: HardwareSampling, tile: TileConfig | None) -> TileConfig:
    base = tile if tile is not None else TileConfig()
    return replace(base, device=sampling.device, mapping=scheme_mapping(sampling))


class SampledMatrix:
    """The Monte-Carlo weight samples of one [out, in] matrix on tiles (module docstring).

    Args:
        out_features, in_features: the matrix shape (PyTorch [out, in]).
        sampling: scheme, device, read time ``t_s`` and scheme parameters.
        tile: periphery of the tiles: converters, read voltage and time, read-noise sampling,
            IR drop, drift compensation. Its ``device`` and ``mapping`` are replaced by
            ``sampling.device`` and the scheme's mapping (:func:`~memcim.bayes.schemes.
            scheme_mapping`). ``None``: :class:`~memcim.crossbar.TileConfig` defaults (8-bit
            DAC and ADC, calibrated ranges).
        max_rows, max_cols: largest tile.
    """

    def __init__(self, out_features: int, in_features: int, sampling: HardwareSampling,
                 tile: TileConfig | None = None, *, max_rows: int = 512,
                 max_cols: int = 512) -> None:  # fmt: skip
        if not isinstance(sampling, HardwareSampling):
            raise ConfigError(f"sampling={sampling!r:.60} is invalid: a HardwareSampling")
        if tile is not None and not isinstance(tile, TileConfig):
            raise ConfigError(f"tile={tile!r:.60} is invalid: a memcim.crossbar.TileConfig")
        self.sampling = sampling
        self.tile_config = _tile_config(sampling, tile)
        self.out_features, self.in_features = out_features, in_features
        self.max_rows, self.max_cols = max_rows, max_cols
        shape = {"max_rows": max_rows, "max_cols": max_cols}
        self.matrix = TiledMatrix(out_features, in_features, self.tile_config, **shape)
        separate = sampling.scheme is SamplingScheme.SEPARATE_MU_SIGMA
        #: ``SEPARATE_MU_SIGMA``'s σ² array (read with squared inputs).
        self.sigma_matrix = (
            TiledMatrix(out_features, in_features, self.tile_config, **shape) if separate else None
        )
        if separate:  # the MTJ's switching probability at the current set for p = ½
            rng, pulse_s = sampling.rng_device, sampling.rng_pulse_s
            current = rng.current_for_probability_ua(0.5, pulse_s)
            self._bit_probability = float(rng.switching_probability(current, pulse_s))
        #: Monte-Carlo copies on the tiles (``None``: any number of samples, drawn per read).
        self.copies: int | None = None
        self.counters = SamplerCounters()
        self.targets: SchemeTargets | None = None

    @property
    def reprogrammed(self) -> bool:
        """Whether the samples are re-programmings of one array (cycle-to-cycle, differential):
        its programming is then a per-sample cost, not a one-off."""
        return self.sampling.scheme in _REPROGRAMMED

    @property
    def matrices(self) -> list[TiledMatrix]:
        """Every tiled matrix of the sampler (μ array first)."""
        return [m for m in (self.matrix, self.sigma_matrix) if m is not None]

    @property
    def mvm_latency_s(self) -> float:
        """Latency of one product: the arrays are read in parallel."""
        return max(m.mvm_latency_s for m in self.matrices)

    def reset_counters(self) -> None:
        """Zero the tiles' counters and the sampler's own (random bits, combinations)."""
        for m in self.matrices:
            m.reset_counters()
        self.counters.reset()

    # --- programming --------------------------------------------------------------------------
    def program(self, mu: Tensor, sigma: Tensor, samples: int, *,
                generator: torch.Generator | None = None,
                k_us: float | None = None) -> Programming:  # fmt: skip
        """Realise N(μ, σ²) with ``samples`` Monte-Carlo samples on the tiles.

        Args:
            mu, sigma: [out, in] target means and stds (weight units).
            samples: S, the samples a forward uses (copies programmed or read).
            generator: randomness of the programming.
            k_us: the scale (:attr:`Programming.k_us`); ``None``: chosen so nothing clips.
        """
        expected = (self.out_features, self.in_features)
        if tuple(mu.shape) != expected or tuple(sigma.shape) != expected:
            raise ConfigError(f"mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)} must both "
                              f"be {expected}")  # fmt: skip
        require(isinstance(samples, int) and samples >= 1, "samples", samples, "an int >= 1")
        if not bool(torch.isfinite(mu).all()) or not bool((sigma >= 0).all()):
            raise ConfigError("mu must be finite and sigma >= 0")
        mu, sigma = mu.detach().float(), sigma.detach().float()
        t = scheme_targets(mu, sigma, self.sampling, k_us)
        self.targets = t
        before = sum(m.counters.cell_writes for m in self.matrices)
        self._program_scheme(t, samples, generator)
        writes = sum(m.counters.cell_writes for m in self.matrices) - before
        energy = writes * self.sampling.device.e_write_pj
        return Programming(writes, energy, t.k_us, t.feasible, t.clipped)

    def _w_max(self, k_us: float) -> float:
        """The tile's weight scale for ``k_us``: one mapping unit on each device is unit/k."""
        dev, mp = self.sampling.device, self.tile_config.mapping
        return mp.unit_us(dev.g_min_us, dev.g_max_us) * mp.devices_per_weight / k_us

    def _program_scheme(self, t: SchemeTargets, samples: int,
                        generator: torch.Generator | None) -> None:  # fmt: skip
        scheme = self.sampling.scheme
        w_max = self._w_max(t.k_us)
        if self.reprogrammed:
            self.matrix.program_conductances(t.planes, w_max=w_max, generator=generator,
                                             repeats=samples)  # fmt: skip
            self.copies = samples
        elif scheme is SamplingScheme.DEVICE_POPULATION:
            rows = self.sampling.population
            population = t.planes.expand(rows, *t.planes.shape)
            self.matrix.program_conductances(population, w_max=w_max, generator=generator)
            # sample s reads row s mod K
            self.matrix.select_copies(torch.arange(samples, device=t.planes.device) % rows)
            self.copies = samples
        else:
            self.matrix.program_conductances(t.planes, w_max=w_max, generator=generator)
            if self.sigma_matrix is not None:
                self.sigma_matrix.program_conductances(
                    t.sigma_planes, w_max=self._w_max(t.sigma_k_us), generator=generator
                )
            self.copies = None

    def _require_programmed(self) -> None:
        if self.targets is None:
            raise ConfigError("the sampler holds no weights yet: call program(mu, sigma, ...)")

    # --- products -----------------------------------------------------------------------------
    def mvm(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """S sampled products ``x @ W_sᵀ`` through the tiles: x [S, N, in] -> [S, N, out].

        A sampler holding K copies needs S = K or a multiple of K (copy s mod K serves sample
        s); ``x`` may be the same batch expanded over S (stride 0), which ``SEPARATE_MU_SIGMA``
        reads once for all samples.
        """
        self._require_programmed()
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ConfigError(f"x has shape {tuple(x.shape)}; expected [S, N, {self.in_features}]")
        t_s = self.sampling.t_s
        if self.sigma_matrix is not None:
            return self._separate_mvm(x, t_s, generator)
        s, k = x.shape[0], self.copies
        if k is None or s == k:
            return self.matrix.mvm(x, t_s=t_s, generator=generator)
        if s % k:
            raise ConfigError(
                f"the tiles hold {k} device-realised weight sets: run {k} samples (or a "
                f"multiple), not {s}, or program the sampler for {s}"
            )
        y = self.matrix.mvm(x.reshape(s // k, k, *x.shape[1:]), t_s=t_s, generator=generator)
        return y.reshape(s, *y.shape[2:])

    def _separate_mvm(self, x: Tensor, t_s: float, generator: torch.Generator | None) -> Tensor:
        """y_μ + √max(y_σ², 0)·ε: μ read with x, σ² with x², ε per output and sample."""
        s = x.shape[0]
        one = x[:1] if x.stride(0) == 0 else x  # a batch shared by every sample is read once
        y_mu = self.matrix.mvm(one, t_s=t_s, generator=generator)
        var = self.sigma_matrix.mvm(one.square(), t_s=t_s, generator=generator)
        self.counters.variance_clipped += int((var < 0).sum())
        eps = self._epsilon((s, *y_mu.shape[1:]), generator, y_mu.device)
        self.counters.digital_ops += eps.numel()
        return y_mu + var.clamp_min(0).sqrt() * eps

    def _epsilon(self, shape: tuple[int, ...], generator: torch.Generator | None,
                 device: torch.device) -> Tensor:  # fmt: skip
        """ε = (B − np)/√(np(1 − p)) from n stochastic MTJ bits per element (p ≈ ½), on
        ``device``."""
        p, n = self._bit_probability, self.sampling.random_bits
        count = torch.full(shape, float(n), device=device)
        bits = torch.binomial(count, torch.full_like(count, p), generator=generator)
        self.counters.random_bits += n * math.prod(shape)
        return (bits - n * p) / math.sqrt(n * p * (1 - p))

    def read_weights(self, samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """S weight samples [S, out, in] as the tiles hold them, read without converters.

        Copies are read with one draw of read noise each (sample s: copy s mod K);
        ``READ_NOISE`` reads its array S times; ``SEPARATE_MU_SIGMA`` combines one read of μ
        and of σ² with a fresh ε per weight and sample.
        """
        self._require_programmed()
        t_s = self.sampling.t_s
        kw = {"generator": generator, "noisy": True}
        if self.sigma_matrix is not None:
            mu = self.matrix.read_weights(t_s, **kw)
            var = self.sigma_matrix.read_weights(t_s, **kw).clamp_min(0)
            return mu + var.sqrt() * self._epsilon((samples, *mu.shape), generator, mu.device)
        if self.copies is None:
            return self.matrix.read_weights(t_s, draws=samples, **kw)
        w = self.matrix.read_weights(t_s, **kw)
        return w[torch.arange(samples, device=w.device) % self.copies]


#: Converters of the weight view of :func:`realise`: the cells as read, no conversion.
_NO_CONVERTERS = TileConfig(dac=ConverterConfig(bits=None), adc=ConverterConfig(bits=None),
                            drift_compensation=False)  # fmt: skip


def realise(
    mu: Tensor, sigma: Tensor, config: HardwareSampling, samples: int,
    *, generator: torch.Generator, k_us: float | None = None,
) -> Realisation:  # fmt: skip
    """Draw ``samples`` weight samples of N(μ, σ²) with the devices of ``config``, on a tile.

    The samples are the cells' conductances as a tile holding them reads them (programmed by
    the scheme, drifted to ``config.t_s`` without drift compensation, with read noise, without
    converters): the weight-level view of what :class:`SampledMatrix` multiplies.

    Args:
        mu, sigma: target means and stds (weight units), same shape (any).
        config: scheme, device and read time.
        samples: S, the number of Monte-Carlo samples.
        generator: all randomness (programming, reads, random bits).
        k_us: the scale to program at (a previous :attr:`Realisation.k_us`); ``None``: chosen
            from μ (and σ) so that nothing clips. Targets a given scale puts outside the
            window are clamped and counted in :attr:`Realisation.clipped`.
    """
    if mu.shape != sigma.shape:
        raise ConfigError(f"mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)} differ in shape")
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "an int >= 1")
    require(k_us is None or (isinstance(k_us, int | float) and math.isfinite(k_us) and k_us > 0),
            "k_us", k_us, "None or finite and > 0")  # fmt: skip
    shape = tuple(mu.shape)
    flat = (shape[0], math.prod(shape[1:])) if len(shape) >= 2 else (1, math.prod(shape))
    out, inp = flat
    sampler = SampledMatrix(out, inp, config, _NO_CONVERTERS, max_rows=inp, max_cols=out)
    done = sampler.program(mu.reshape(flat), sigma.reshape(flat), samples, generator=generator,
                           k_us=k_us)  # fmt: skip
    w = sampler.read_weights(samples, generator=generator).reshape(samples, *shape)
    return Realisation(w, done.feasible.reshape(shape), done.writes, done.write_energy_pj,
                       done.k_us, done.clipped)  # fmt: skip
