"""In-situ Bayesian learning: Metropolis–Hastings whose proposals are RRAM programming draws.

Dalgaty et al. [7] (docs/references.md) train a Bayesian model inside an RRAM array. A RESET+SET
of a filamentary device with the compliance current whose median is the device's present
conductance g draws a fresh conductance g' ~ N(g, σ_c2c(g)²): the physics is the random walk of
a Metropolis–Hastings sampler, no random-number generator needed. The likelihood is computed by
the array itself (in-memory dot products); the posterior samples stay in the array, one per row,
and inference averages the rows.

Model: a fully connected network (:mod:`memcim.learning.network`) whose weights and biases are
differential pairs, w = (G⁺ − G⁻) / (g_max − g_min) · ``w_max``, on one :class:`~memcim.
crossbar.Tile` per layer (the bias is one more word line, driven at 1). Logits come from the
tiles' MVMs with DAC, read noise on every read and ADC; hidden activations are computed
digitally between layers.

Proposals (``proposal``):

* ``"row"`` (the layout of [7] as docs/references.md describes it): the proposal is written to the
  next row: every device of that row is RESET+SET with the current whose median is its
  counterpart's conductance in the current row. Accepted: the proposal row becomes the current
  row and the next proposal goes to a fresh row (new devices, new device-to-device factors).
  Rejected: the same proposal row is overwritten by the next proposal. The rows that held the
  chain are the samples; nothing is copied and the sampler is exact MH.
* ``"device"``: ``devices_per_step`` randomly chosen devices of one working row are re-SET in
  place. A rejected device is programmed back to its old conductance with program-and-verify
  (within ``restore_tolerance_us``), so on a rejection the chain moves by up to that tolerance
  (an approximation of MH, measured as ``restore_error_us``); kept samples are copied into
  sample rows with program-and-verify.

Acceptance: log u < log p(D|θ') + log p(θ') − log p(D|θ) − log p(θ), plus, optionally
(``hastings``, off by default), log q(θ|θ') − log q(θ'|θ) with the nominal σ_c2c(median) a
controller knows (not each device's device-to-device factor); that term ignores the clip of
conductances at 0 µS (3.7 σ below the lowest median with the default device). The likelihood
of the current state is the one measured when it was proposed, kept in a register, not re-read.
The prior is Gaussian on the weights (``prior_std``; ``None``: flat) and, since with differential
pairs the sum G⁺ + G⁻ does not change the weight, uniform along each pair's sum within the box
[0, g_max]² (which keeps the posterior proper; see :meth:`InSituMCMC._log_prior`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from memcim._errors import ConfigError, check_count, is_real, require
from memcim.crossbar import Tile, TileConfig
from memcim.devices import DeviceState, FilamentaryRRAM
from memcim.energy.cim import TileGeometry, counters_cost
from memcim.learning import network
from memcim.learning.network import Activation

Proposal = Literal["row", "device"]


@dataclass(frozen=True, kw_only=True)
class InSituMCMCConfig:
    """An in-situ Metropolis–Hastings run (model in the module docstring).

    Attributes:
        layers: widths (inputs, hidden..., outputs); one output = logistic regression.
        activation: hidden-layer nonlinearity, ``"tanh"`` or ``"relu"``.
        chains: independent chains, run at once (a leading dimension of every tile).
        steps: proposals per chain.
        burn_in: steps discarded before samples are kept (< ``steps``).
        thin: keep the current state every ``thin`` steps after the burn-in.
        proposal: ``"row"`` (every device of a new row) or ``"device"`` (some devices in place).
        devices_per_step: devices re-SET per proposal with ``proposal="device"``.
        restore_tolerance_us: program-and-verify tolerance (µS) of restores and sample copies
            with ``proposal="device"``, at most ``device.max_verify_pulses`` pulses each: near
            the top of the window a device whose device-to-device factor lifts its median a
            few µS above the target may miss; it then keeps its last draw (counted in
            ``restore_error_us``).
        w_max: weight of a pair at full window, G⁺ − G⁻ = g_max − g_min; 3 (three prior
            stds: a prior draw fits the window 99.7 % of the time). It also sets the proposal
            scale in weight units: σ_c2c / (g_max − g_min) · w_max per device.
        prior_std: std of the Gaussian prior on weights and biases; ``None``: flat.
        hastings: include the proposal-asymmetry term log q(θ|θ') − log q(θ'|θ) (exact MH on
            the conductances). Off by default, the plain Metropolis ratio a controller
            computes: σ_c2c grows with the median and medians are clamped at g_min, so the
            term is large for the many devices near g_min and the exact chain accepts ~5 %
            of proposals on breast cancer instead of ~26 % (docs/experiments/mcmc-cancer.md); the
            weights' posterior it then samples is compared against NUTS in ``mcmc-cancer``.
        device: the RRAM (its σ_c2c(median), write energy, endurance).
        dac_bits, adc_bits: converter resolutions (``None``: ideal).
        adc_headroom: the ADC range is the largest current at the initial state × this.
        read_noise: read-to-read noise on every read (otherwise noiseless reads).
    """

    layers: tuple[int, ...] = (30, 1)
    activation: Activation = "tanh"
    chains: int = 8
    steps: int = 3000
    burn_in: int = 1000
    thin: int = 20
    proposal: Proposal = "row"
    devices_per_step: int = 1
    restore_tolerance_us: float = 1.0
    w_max: float = 3.0
    prior_std: float | None = 1.0
    hastings: bool = False
    device: FilamentaryRRAM = field(default_factory=FilamentaryRRAM)
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    adc_headroom: float = 2.0
    read_noise: bool = True

    def __post_init__(self) -> None:
        name = "InSituMCMCConfig"
        network.check_chains(self, name)
        check_count(self.devices_per_step, f"{name}.devices_per_step", 1)
        require(self.proposal in ("row", "device"), f"{name}.proposal", self.proposal,
                "must be 'row' or 'device'")  # fmt: skip
        require(isinstance(self.device, FilamentaryRRAM), f"{name}.device", self.device,
                "must be a FilamentaryRRAM (its SET draws are the proposals)")  # fmt: skip
        devices = 2 * network.parameter_count(self.layers)
        require(self.devices_per_step <= devices, f"{name}.devices_per_step",
                self.devices_per_step, f"must be <= the model's {devices} devices")  # fmt: skip
        for f in ("restore_tolerance_us", "w_max", "adc_headroom"):
            value = getattr(self, f)
            require(is_real(value) and value > 0, f"{name}.{f}", value, "must be > 0")
        require(self.adc_headroom >= 1, f"{name}.adc_headroom", self.adc_headroom, "must be >= 1")

    def tile_config(self) -> TileConfig:
        """The tiles: differential pairs at a fixed weight scale, no drift compensation."""
        return network.tile_config(self.device, self.w_max, dac_bits=self.dac_bits,
                                   adc_bits=self.adc_bits, read_noise=self.read_noise)  # fmt: skip


@dataclass
class MCMCStats:
    """What a run measured.

    Attributes:
        acceptance_rate: accepted / proposed over all chains and steps.
        acceptance_per_chain: [chains].
        log_likelihood: log p(D|θ) of each chain's current state after every step, [steps, chains].
        writes_per_device_max: most programming pulses any device received (endurance).
        writes_per_device_mean: mean pulses per device that was written at all.
        cell_writes: all programming pulses, initialisation and sample copies included.
        rows_per_chain: array rows the chain occupied ("row": 1 + accepted proposals;
            "device": the working row plus the kept samples).
        samples_kept: samples per chain.
        restore_error_us: largest |restored − old| conductance after a rejection ("device").
        energy_pj: training energy by component (tile counters through
            :func:`memcim.energy.cim.counters_cost`: array reads, DAC, ADC, accumulation,
            buffers, writes).
        wall_s: wall time of :meth:`InSituMCMC.fit` (s).
    """

    acceptance_rate: float
    acceptance_per_chain: Tensor
    log_likelihood: Tensor
    writes_per_device_max: int
    writes_per_device_mean: float
    cell_writes: int
    rows_per_chain: float
    samples_kept: int
    restore_error_us: float
    energy_pj: dict[str, float]
    wall_s: float

    @property
    def energy_total_pj(self) -> float:
        """Sum of ``energy_pj`` over its components (pJ)."""
        return sum(self.energy_pj.values())


class InSituMCMC:
    """A Bayesian model trained and used inside RRAM tiles by Metropolis–Hastings.

    Args:
        config: the run (default :class:`InSituMCMCConfig`).

    Example:
        >>> sampler = InSituMCMC(InSituMCMCConfig(steps=2000, burn_in=500))
        >>> stats = sampler.fit(x_train, y_train, generator=torch.Generator().manual_seed(0))
        >>> p = sampler.predict_proba(x_test)   # [N, 2], averaged over the sample rows
    """

    def __init__(self, config: InSituMCMCConfig | None = None) -> None:
        self.config = config if config is not None else InSituMCMCConfig()
        tile_config = self.config.tile_config()
        self.tiles = [Tile(i, o, tile_config) for o, i in network.shapes(self.config.layers)]
        self.samples: list[DeviceState] | None = None
        self.stats: MCMCStats | None = None

    # --- the model on the tiles --------------------------------------------------------------
    def _logits(self, x: Tensor, generator: torch.Generator | None, t_s: float = 0.0) -> Tensor:
        """Logits [..., N, out] through the tiles' MVMs for the cells they hold."""
        mvms = [partial(tile.mvm, t_s=t_s, generator=generator) for tile in self.tiles]
        return network.run_layers(mvms, x, self.config.activation)

    def sample_weights(self) -> list[Tensor]:
        """The weights the sample rows hold (programmed conductances, no read noise), one
        tensor per layer, [chains, samples, out, in + 1]."""
        if self.samples is None:
            raise ConfigError("InSituMCMC holds no samples yet: call fit(x, y) first")
        return self._weights(self.samples)

    def _weights(self, states: list[DeviceState]) -> list[Tensor]:
        """Nominal weights the programmed conductances encode, [..., out, in + 1]."""
        span = self.config.device.g_span_us
        return [(s.g_us[..., 0, :, :] - s.g_us[..., 1, :, :]).transpose(-1, -2) * (
            self.config.w_max / span) for s in states]  # fmt: skip

    def _log_prior(self, states: list[DeviceState]) -> Tensor:
        """log p(θ) over the devices: Gaussian on each pair's weight, uniform along its sum.

        Both devices of a pair lie in [0, g_max]; for a difference Δ the sum G⁺ + G⁻ spans
        2 (g_max − |Δ|), so the sum's uniform density 1 / (2 (g_max − |Δ|)) makes the weights'
        marginal exactly the Gaussian prior (a plain box would favour small |w|).
        """
        g_max = self.config.device.g_max_us
        lp = network.gaussian_log_prior(self._weights(states), self.config.prior_std)
        inside = torch.ones(lp.shape, dtype=torch.bool, device=lp.device)
        for s in states:
            g = s.g_us
            inside &= ((g >= 0) & (g <= g_max)).flatten(-3).all(-1)
            room = g_max - (g[..., 0, :, :] - g[..., 1, :, :]).abs()
            lp = lp - torch.log(2 * room.clamp_min(1e-12)).flatten(-2).sum(-1)
        return torch.where(inside, lp, -math.inf)

    def _log_q(self, to: list[DeviceState], given: list[DeviceState], masks) -> Tensor:
        """Σ log N(g_to; m(g_given), σ_c2c(m)²) over the re-SET devices: [chains]."""
        dev = self.config.device
        total = torch.zeros(self.config.chains, device=to[0].device)
        for t, g, m in zip(to, given, masks, strict=True):
            median = g.g_us.clamp(dev.g_min_us, dev.g_max_us)
            lq = torch.distributions.Normal(median, dev.sigma_c2c_us(median)).log_prob(t.g_us)
            total += (lq if m is None else lq * m).flatten(1).sum(1)
        return total

    # --- training -----------------------------------------------------------------------------
    def fit(
        self,
        x: Tensor,
        y: Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> MCMCStats:
        """Sample the posterior of the model given training data, in the tiles.

        Args:
            x: features [N, inputs] (standardised features suit the DAC's per-vector range).
            y: class labels [N] (0/1 for logistic regression).
            generator: every random draw: initial state, programming, read noise, acceptance.
            progress: show a progress bar over the steps.

        Returns:
            :class:`MCMCStats`, also kept as :attr:`stats`; the samples stay in the tiles'
            rows (:attr:`samples`) for :meth:`predict_proba`.
        """
        cfg = self.config
        x, y = network.check_data(x, y, cfg.layers)
        start = time.perf_counter()
        for tile in self.tiles:
            tile.counters.reset()
        current = self._initialise(x, generator)
        log_lik = network.log_likelihood(self._logits(x, generator), y)
        log_prior = self._log_prior(current)
        verify = replace(cfg.device, verify_tolerance_us=cfg.restore_tolerance_us)
        proposal_rows: list[DeviceState] | None = None  # "row": the rows being written
        on = x.device
        fresh = torch.ones(cfg.chains, dtype=torch.bool, device=on)  # "row": a new row needed
        accepted = torch.zeros(cfg.chains, device=on)
        rows_opened = torch.zeros(cfg.chains, device=on)  # "row": proposal rows begun
        trace = torch.empty(cfg.steps, cfg.chains, device=on)
        samples: list[list[DeviceState]] = []
        writes_max, restore_error = 0, 0.0
        extra_writes = 0  # sample copies ("device"), not held by any tile
        bar = tqdm(
            range(cfg.steps), desc="in-situ MCMC", disable=None if progress else True, leave=False
        )
        for step in bar:
            if cfg.proposal == "row":
                rows_opened += fresh
            proposal, masks = self._propose(current, proposal_rows, fresh, generator)
            for tile, s in zip(self.tiles, proposal, strict=True):
                tile.set_cells(s, count_writes=True)
            new_lik = network.log_likelihood(self._logits(x, generator), y)
            new_prior = self._log_prior(proposal)
            log_ratio = new_lik + new_prior - log_lik - log_prior
            if cfg.hastings:
                log_ratio += self._log_q(current, proposal, masks)
                log_ratio -= self._log_q(proposal, current, masks)
            u = torch.rand(cfg.chains, generator=generator, device=on)
            accept = torch.log(u) < log_ratio
            accepted += accept
            log_lik = torch.where(accept, new_lik, log_lik)
            log_prior = torch.where(accept, new_prior, log_prior)
            writes_max = max(writes_max, max(int(s.writes.max()) for s in proposal))
            if cfg.proposal == "row":
                current = [_select_chains(accept, p, c) for p, c in zip(proposal, current,
                                                                         strict=True)]  # fmt: skip
                proposal_rows, fresh = proposal, accept
            else:
                current, err = self._restore(current, proposal, masks, accept, verify, generator)
                restore_error = max(restore_error, err)
                writes_max = max(writes_max, max(int(s.writes.max()) for s in current))
            trace[step] = log_lik
            if step >= cfg.burn_in and (step - cfg.burn_in) % cfg.thin == 0:
                if cfg.proposal == "row":
                    samples.append(current)  # the rows themselves
                else:  # copied into fresh sample rows
                    copies = [verify.program(self._medians(s), generator=generator)
                              for s in current]  # fmt: skip
                    extra_writes += sum(int(c.writes.sum()) for c in copies)
                    writes_max = max(writes_max, max(int(c.writes.max()) for c in copies))
                    samples.append(copies)
        self.samples = [_stack([s[i] for s in samples]) for i in range(len(self.tiles))]
        devices = sum(s.g_us[0].numel() for s in current)
        copies = torch.full((cfg.chains,), float(len(samples)), device=on)
        rows = 1 + (rows_opened if cfg.proposal == "row" else copies)
        energy = self._training_energy(extra_writes)
        cell_writes = sum(t.counters.cell_writes for t in self.tiles) + extra_writes
        self.stats = MCMCStats(
            acceptance_rate=float(accepted.sum()) / (cfg.chains * cfg.steps),
            acceptance_per_chain=accepted / cfg.steps,
            log_likelihood=trace,
            writes_per_device_max=writes_max,
            writes_per_device_mean=cell_writes / (devices * float(rows.sum())),
            cell_writes=cell_writes,
            rows_per_chain=float(rows.mean()),
            samples_kept=len(samples),
            restore_error_us=restore_error,
            energy_pj=energy,
            wall_s=time.perf_counter() - start,
        )
        return self.stats

    def _initialise(self, x: Tensor, generator: torch.Generator | None) -> list[DeviceState]:
        """Program a prior draw (within ±w_max) and set each ADC range from its currents."""
        cfg = self.config
        h = x
        act = network.ACTIVATIONS[cfg.activation]
        for i, (tile, (o, n)) in enumerate(zip(self.tiles, network.shapes(cfg.layers),
                                               strict=True)):  # fmt: skip
            w = torch.empty(cfg.chains, o, n, device=x.device)
            if cfg.prior_std is None:
                w.uniform_(-cfg.w_max, cfg.w_max, generator=generator)
            else:
                torch.nn.init.trunc_normal_(w, 0.0, cfg.prior_std, -cfg.w_max, cfg.w_max,
                                            generator=generator)  # fmt: skip
            tile.program(w, generator=generator)
            inputs = network.with_bias_input(h)
            if tile.config.adc.bits is not None:
                tile.calibrate(inputs, generator=generator)
                tile.adc_range = tile.adc_range * cfg.adc_headroom
            h = tile.mvm(inputs, generator=generator)
            if i < len(self.tiles) - 1:
                h = act(h)
        return [tile.state for tile in self.tiles]

    def _medians(self, state: DeviceState) -> Tensor:
        """SET medians aimed at each device's conductance: the present value, in the window."""
        dev = self.config.device
        return state.g_us.clamp(dev.g_min_us, dev.g_max_us)

    def _propose(self, current, proposal_rows, fresh, generator):
        """The proposal's cells per layer, and the re-SET devices' masks (``None``: all)."""
        if self.config.proposal == "row":
            every = [None] * len(current)
            return self._propose_rows(current, proposal_rows, fresh, generator), every
        dev, masks = self.config.device, self._device_masks(generator)
        proposal = [
            dev.program_where(self._medians(s), m, state=s, generator=generator)
            for s, m in zip(current, masks, strict=True)
        ]
        return proposal, masks

    def _propose_rows(self, current, proposal_rows, fresh, generator) -> list[DeviceState]:
        """Every device of each chain's proposal row SET around its current-row counterpart."""
        dev, out = self.config.device, []
        for i, state in enumerate(current):
            median = self._medians(state)
            new_row = dev.program(median, generator=generator)
            if proposal_rows is None or bool(fresh.all()):
                out.append(new_row)
                continue
            rewritten = dev.program(median, generator=generator, state=proposal_rows[i])
            out.append(_select_chains(fresh, new_row, rewritten))
        return out

    def _device_masks(self, generator: torch.Generator | None) -> list[Tensor]:
        """``devices_per_step`` distinct devices per chain, as one bool mask per layer."""
        cfg = self.config
        cells = [t.state.shape[1:] for t in self.tiles]
        sizes = [math.prod(c) for c in cells]
        on = self.tiles[0].state.device
        scores = torch.rand(cfg.chains, sum(sizes), generator=generator, device=on)
        flat = torch.zeros(cfg.chains, sum(sizes), dtype=torch.bool, device=on)
        flat.scatter_(1, scores.topk(cfg.devices_per_step, dim=1).indices, True)
        parts = flat.split(sizes, dim=1)
        return [p.view(cfg.chains, *c) for p, c in zip(parts, cells, strict=True)]

    def _restore(self, current, proposal, masks, accept, verify, generator):
        """Rejected chains: program-and-verify the re-SET devices back to their old values."""
        out, error = [], 0.0
        for old, new, mask in zip(current, proposal, masks, strict=True):
            back = mask & ~accept.view(-1, *([1] * (mask.dim() - 1)))
            state = verify.program_where(self._medians(old), back, state=new, generator=generator)
            if bool(back.any()):
                error = max(error, float((state.g_us - old.g_us).abs()[back].max()))
            out.append(state)
        for tile, state in zip(self.tiles, out, strict=True):
            tile.set_cells(state, count_writes=True)
        return out, error

    def _training_energy(self, extra_writes: int) -> dict[str, float]:
        energy: dict[str, float] = {}
        for tile in self.tiles:
            cost = counters_cost(tile.counters, TileGeometry.of(tile))
            for k, v in cost.energy_pj.items():
                energy[k] = energy.get(k, 0.0) + v
        energy["write"] += extra_writes * self.config.device.e_write_pj
        return energy

    # --- inference ----------------------------------------------------------------------------
    def predict_proba(
        self, x: Tensor, *, t_s: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Class probabilities [N, classes], averaged over every sample row of every chain.

        Args:
            x: features [N, inputs].
            t_s: time since programming of the reads (s): RRAM relaxation applies.
            generator: randomness of the read noise.
        """
        if self.samples is None:
            raise ConfigError("InSituMCMC holds no samples yet: call fit(x, y) first")
        labels = torch.zeros(len(x), dtype=torch.long, device=x.device)  # unused: x is checked
        x, _ = network.check_data(x, labels, self.config.layers)
        for tile, s in zip(self.tiles, self.samples, strict=True):
            tile.set_cells(s)
        probs = network.probabilities(self._logits(x, generator, t_s))
        return probs.mean(dim=(0, 1))


def _select_chains(mask: Tensor, a: DeviceState, b: DeviceState) -> DeviceState:
    """``a`` for the chains where ``mask`` [chains] is True, ``b`` elsewhere."""
    return b.where(mask.view(-1, *([1] * (a.g_us.dim() - 1))).expand(a.shape), a)


def _stack(states: list[DeviceState]) -> DeviceState:
    """Sample rows [chains, ...] stacked into [chains, samples, ...]."""
    first = states[0]
    return DeviceState(
        g_us=torch.stack([s.g_us for s in states], 1),
        writes=torch.stack([s.writes for s in states], 1),
        stuck=torch.stack([s.stuck for s in states], 1),
        params={k: torch.stack([s.params[k] for s in states], 1) for k in first.params},
        last_pulses=torch.zeros_like(torch.stack([s.writes for s in states], 1)),
    )
