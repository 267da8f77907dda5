"""Experiment ``risk-rl``: risk-sensitive control with a memristor Bayesian world model
(Lin et al. [9]).

1. 4000 random-action transitions of the storm coast (:class:`memcim.rl.StormCoastEnv`).
2. The latent-input Bayesian world model trained on them, its σ clamped after every step to
   what read-noise devices realise (:func:`memcim.rl.world_model.device_aware`), then put on
   read-noise tiles (three devices per weight, 8-bit converters).
3. Aleatoric and epistemic maps of the next-state prediction on the authors' 16 × 21 grid at
   zero action, in software and on the tiles, and their correlation.
4. Policies searched by the cross-entropy method inside the software world model: risk-neutral,
   and risk-sensitive with reward r − β·epistemic − γ·aleatoric for each γ in ``gammas``;
   each evaluated on the *true* environment (return and crash rate with 95 % intervals),
   beside the hand-written "hold y = k" reference policies.

The authors train the model for 3000 epochs and the policy with PPO; the reduced default
trains the model for 300 epochs and searches the policies with CEM.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memcim._errors import check_count, is_real, require
from memcim.experiments.registry import Result, register, stage_generator
from memcim.experiments.runner import write_json_atomic


@dataclass(frozen=True, kw_only=True)
class RiskRlConfig:
    """Attributes:
    transitions: random-action transitions the world model learns from.
    epochs: world-model training epochs (the authors: 3000).
    latent_draws, weight_draws: M × N draws of one uncertainty map.
    beta: weight of the epistemic map in the risk-sensitive reward (the authors: 40).
    gammas: weights of the aleatoric map, one risk-sensitive policy each (the authors: 0.95).
    iterations, population, elites, model_episodes: the cross-entropy search.
    eval_episodes: episodes of every policy on the true environment.
    """

    transitions: int = 4000
    epochs: int = 300
    latent_draws: int = 60
    weight_draws: int = 60
    beta: float = 40.0
    gammas: tuple[float, ...] = (0.95, 2.0, 3.0)
    iterations: int = 20
    population: int = 48
    elites: int = 6
    model_episodes: int = 16
    eval_episodes: int = 1000

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in ("transitions", "epochs", "latent_draws", "weight_draws", "iterations",
                  "population", "elites", "model_episodes", "eval_episodes"):  # fmt: skip
            check_count(getattr(self, f), f"{name}.{f}", 2)
        require(self.elites <= self.population, f"{name}.elites", self.elites,
                f"<= population ({self.population})")  # fmt: skip
        require(is_real(self.beta) and self.beta >= 0, f"{name}.beta", self.beta, ">= 0")
        require(all(is_real(g) and g >= 0 for g in self.gammas), f"{name}.gammas", self.gammas,
                "numbers >= 0")  # fmt: skip


GRID_X, GRID_Y = torch.linspace(-30, 30, 21), torch.linspace(0, 20, 16)


def _maps(config: RiskRlConfig, wm, seed: int) -> tuple[dict, dict[str, float]]:
    """Software and tile maps, and their correlations."""
    from memcim.rl.world_model import on_tiles, uncertainty_maps

    draws = {"latent": config.latent_draws, "weights": config.weight_draws}
    software = uncertainty_maps(wm, GRID_X, GRID_Y, **draws)
    net, _ = on_tiles(wm, samples=config.latent_draws * config.weight_draws,
                      generator=stage_generator(seed, "tiles"))  # fmt: skip
    hardware = uncertainty_maps(wm, GRID_X, GRID_Y, **draws, net=net)
    m = {}
    for i, kind in enumerate(("aleatoric", "epistemic")):
        m[f"map_correlation_{kind}"] = float(
            np.corrcoef(software[i].flatten().numpy(), hardware[i].flatten().numpy())[0, 1]
        )
        m[f"map_{kind}_max_software"] = float(software[i].max())
        m[f"map_{kind}_max_tiles"] = float(hardware[i].max())
    return {"software": software, "tiles": hardware}, m


def _policies(config: RiskRlConfig, wm, maps: dict, seed: int) -> dict[str, dict[str, float]]:
    """Every policy on the true environment."""
    from memcim.rl import StormCoastEnv, hold_altitude, rollout
    from memcim.rl.policy import MLPPolicy, RiskMaps, cem, model_returns, summary

    aleatoric, epistemic = maps["software"]
    policy = MLPPolicy()
    results = {}
    settings = {"neutral": None} | {
        f"sensitive_gamma{g:g}": RiskMaps(GRID_X, GRID_Y, epistemic, aleatoric, beta=config.beta,
                                          gamma=g) for g in config.gammas}  # fmt: skip
    for name, risk in settings.items():
        g = stage_generator(seed, "cem", name)
        mean, _ = cem(lambda p, r=risk, g=g: model_returns(
            wm, policy, p, episodes=config.model_episodes, generator=g, risk=r),
            policy.dim, iterations=config.iterations, population=config.population,
            elites=config.elites, generator=g)  # fmt: skip
        returns, crashes = rollout(StormCoastEnv(), policy.as_function(mean),
                                   config.eval_episodes, seed=seed * 100_000)  # fmt: skip
        results[name] = summary(returns, crashes)
    for k in (5, 7):
        returns, crashes = rollout(StormCoastEnv(), hold_altitude(k), config.eval_episodes,
                                   seed=seed * 100_000)  # fmt: skip
        results[f"hold_y{k}"] = summary(returns, crashes)
    return results


def plot(maps: dict, policies: dict[str, dict[str, float]], path: Path) -> None:
    """Maps (software | tiles, aleatoric | epistemic) and every policy's return against its
    crash rate on the true environment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(17, 3.2), layout="constrained")
    extent = (-30, 30, 0, 20)
    for ax, (label, (side, i)) in zip(axes[:4], {
            "aleatoric, software": ("software", 0), "aleatoric, tiles": ("tiles", 0),
            "epistemic, software": ("software", 1), "epistemic, tiles": ("tiles", 1)}.items(),
            strict=True):  # fmt: skip
        image = ax.imshow(maps[side][i].numpy(), origin="lower", extent=extent, aspect="auto")
        fig.colorbar(image, ax=ax)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    ax = axes[4]
    for name, s in policies.items():
        below, above = s["crash_rate"] - s["crash_low"], s["crash_high"] - s["crash_rate"]
        ax.errorbar(100 * s["crash_rate"], s["return"], yerr=s["return_ci95"],
                    xerr=[[100 * below], [100 * above]], fmt="o", label=name)  # fmt: skip
    ax.set_xlabel("crashes (% of episodes)")
    ax.set_ylabel("return")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@register("risk-rl", RiskRlConfig,
          "risk-sensitive control with a read-noise memristor world model")  # fmt: skip
def run(config: RiskRlConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    from memcim.rl.storm_coast import random_transitions
    from memcim.rl.world_model import WorldModel, WorldModelConfig, device_aware

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)  # nothing below draws from it; set for any library default
    s, a, s2 = (torch.tensor(v) for v in random_transitions(config.transitions, seed=seed))
    wm = WorldModel(s, a, s2, WorldModelConfig(epochs=config.epochs),
                    generator=stage_generator(seed, "world_model"))  # fmt: skip
    wm.train(progress=progress, after_step=device_aware())
    maps, m = _maps(config, wm, seed)
    write_json_atomic(out / "partial_results.json", {"metrics": m})
    policies = _policies(config, wm, maps, seed)
    for name, s_ in policies.items():
        m.update({f"{k}_{name}": v for k, v in s_.items()})
    neutral = policies["neutral"]["return"]
    for g in config.gammas:
        name = f"sensitive_gamma{g:g}"
        m[f"return_ratio_{name}"] = policies[name]["return"] / neutral if neutral else math.nan
    figure = "risk-rl.png"
    plot(maps, policies, out / figure)
    rows = [[name, f"{s_['return']:.1f} ± {s_['return_ci95']:.1f}",
             f"{100 * s_['crash_rate']:.1f} % ({100 * s_['crash_low']:.1f}–"
             f"{100 * s_['crash_high']:.1f})"] for name, s_ in policies.items()]  # fmt: skip
    header = ["policy", "return (95 % CI)", "crashes (95 % CI)"]
    return Result(
        metrics=m, artifacts=[figure], extra={"summary_table": {"header": header, "rows": rows}}
    )
