"""Experiment ``maml-sinusoid``: Finn et al.'s sinusoid regression, adapted in software and on chip.

MAML (every layer adapts) meta-trains Finn et al.'s 2×40 ReLU MLP on K-shot regression of
y = A sin(x − φ), A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[−5, 5] (one inner SGD step of lr 0.01 in
training, meta-batch 25, Adam 1e-3). Each of ``test_tasks`` unseen tasks is then adapted with
``test_steps`` steps on its K support points and scored by the mean squared error on 100 query
points: in software (float32), with 4-bit weights in software, and on PCM and filamentary RRAM
tiles (all three layers on tiles, 8-bit DAC/ADC, biases digital; updates stochastically rounded
to 1/16 of each layer's weight range, only changed devices re-programmed), right after
deployment and one day later. Means carry 95 % confidence intervals over the tasks.

Reduced default: 10 000 meta-iterations (Finn et al.: 70 000, ``--set iterations=70000``).
The meta-training checkpoints to the output folder and resumes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from memcim.data.sinusoid import SinusoidTasks
from memcim.energy.digital import PROCESSORS
from memcim.experiments.meta_common import (
    check_config,
    ci95,
    meta_train_resumable,
    plot_steps,
    plot_writes,
    record_adaptation,
    run_variants,
)
from memcim.experiments.registry import Result, register, stage_generator
from memcim.experiments.runner import write_json_atomic
from memcim.learning.meta import MetaConfig, MetaLearner, SinusoidMLP
from memcim.learning.meta.onchip import OnChipConfig


@dataclass(frozen=True, kw_only=True)
class MamlSinusoidConfig:
    """Attributes:
    shots: K of the K-shot tasks; one meta-training per K.
    hidden: width of the two hidden layers.
    iterations, meta_batch, outer_lr: meta-training (Adam).
    train_steps: inner steps during meta-training; test_steps: at test time.
    inner_lr, first_order: the inner loop (:class:`MetaConfig`).
    test_tasks, test_queries: unseen tasks and query points per task.
    step_fraction: on-chip programming step as a fraction of each layer's weight range.
    headroom: each adapted layer's weight range, as a multiple of its largest |weight|.
    devices, times_s: technologies and deployment ages (s) of the on-chip adaptation.
    processor: the digital processor of the energy comparison (``memcim.energy`` preset).
    """

    shots: tuple[int, ...] = (10, 5)
    hidden: int = 40
    iterations: int = 10_000
    meta_batch: int = 25
    outer_lr: float = 1e-3
    train_steps: int = 1
    test_steps: int = 10
    inner_lr: float = 0.01
    first_order: bool = False
    test_tasks: int = 100
    test_queries: int = 100
    step_fraction: float = 1 / 16
    headroom: float = 2.0
    devices: tuple[str, ...] = ("pcm", "rram")
    times_s: tuple[float, ...] = (0.0, 86_400.0)
    processor: str = "edge_npu"

    def __post_init__(self) -> None:
        check_config(
            self,
            (
                "hidden",
                "iterations",
                "meta_batch",
                "train_steps",
                "test_steps",
                "test_tasks",
                "test_queries",
            ),
        )

    def meta(self) -> MetaConfig:
        return MetaConfig(adapt="all", inner_steps=self.train_steps, inner_lr=self.inner_lr,
                          first_order=self.first_order, loss="mse")  # fmt: skip

    def on_chip(self) -> OnChipConfig:
        return OnChipConfig(
            step_fraction=self.step_fraction,
            w_max=None,
            headroom=self.headroom,
            processor=PROCESSORS[self.processor],
        )


_DESCRIPTION = "sinusoid regression: MAML meta-training, adaptation in software and on PCM/RRAM"


@register("maml-sinusoid", MamlSinusoidConfig, _DESCRIPTION)
def run(config: MamlSinusoidConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m: dict[str, float] = {}
    artifacts: list[str] = []
    rows = []

    def log(text: str) -> None:
        if progress:
            print(f"[maml-sinusoid] {text}", flush=True)

    tasks = SinusoidTasks()
    for shot in config.shots:
        gen = stage_generator(seed, f"{shot}shot", "train-tasks")
        model = SinusoidMLP(config.hidden, generator=stage_generator(seed, f"{shot}shot", "init"))
        learner = MetaLearner(model, config.meta())

        def sample(shot=shot, gen=gen):
            b = tasks.sample(config.meta_batch, shot, shot, generator=gen)
            return b.support_x, b.support_y, b.query_x, b.query_y

        key = {k: v for k, v in asdict(config).items() if k in
               ("hidden", "iterations", "meta_batch", "outer_lr", "train_steps", "inner_lr",
                "first_order")} | {"shot": shot, "seed": seed}  # fmt: skip
        meta_train_resumable(
            learner,
            sample,
            config.iterations,
            path=out / f"meta_{shot}shot.pt",
            key=key,
            generator=gen,
            lr=config.outer_lr,
            progress=progress,
        )
        log(f"{shot}-shot meta-training done ({config.iterations} iterations)")
        test = tasks.sample(
            config.test_tasks,
            shot,
            config.test_queries,
            generator=stage_generator(seed, f"{shot}shot", "test-tasks"),
        )
        results = run_variants(
            model, learner, config.on_chip(), devices=config.devices, times_s=config.times_s,
            tasks=(test.support_x, test.support_y, test.query_x, test.query_y),
            steps=config.test_steps,
            generator=lambda name, shot=shot: stage_generator(seed, f"{shot}shot", name),
            log=log,
        )  # fmt: skip
        curves = {}
        for name, (evaluation, adaptation) in results.items():
            curves[name] = evaluation.loss
            mean, half = ci95(evaluation.loss[:, -1])
            m[f"mse_{shot}shot_{name}"], m[f"mse_{shot}shot_{name}_ci95"] = mean, half
            m[f"mse_median_{shot}shot_{name}"] = float(evaluation.loss[:, -1].median())
            m[f"mse_before_adaptation_{shot}shot_{name}"] = ci95(evaluation.loss[:, 0])[0]
            writes = "-"
            if adaptation is not None:
                writes = f"{adaptation.writes.float().mean():.0f}"
                record_adaptation(m, f"{shot}shot_{name}", adaptation)
            rows.append([f"{shot}-shot", name, f"{mean:.3f} ± {half:.3f}", writes])
        figure = f"mse_vs_steps_{shot}shot.png"
        plot_steps(curves, "query MSE", f"sinusoid {shot}-shot, {config.test_tasks} unseen tasks",
                   out / figure, log_y=True)  # fmt: skip
        writes = {k: a.writes_per_device for k, (_, a) in results.items() if a is not None}
        plot_writes(writes, f"{shot}-shot: pulses per device per adaptation",
                    out / f"writes_per_device_{shot}shot.png")  # fmt: skip
        artifacts += [figure, f"writes_per_device_{shot}shot.png"]
        write_json_atomic(out / "partial_results.json", {"metrics": m})
    header = ["task", "adaptation", "query MSE ± 95 % CI", "pulses per adaptation"]
    return Result(metrics=m, artifacts=artifacts,
                  extra={"summary_table": {"header": header, "rows": rows}})  # fmt: skip
