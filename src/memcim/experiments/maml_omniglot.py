"""Experiment ``maml-omniglot``: few-shot Omniglot, meta-trained in software, adapted on chip.

Ortner et al. [18]'s protocol (``docs/references.md``, "Meta-learning on PCM"): their CNN
(:class:`~memcim.learning.meta.OrtnerCNN`) is meta-trained with ANIL (inner loop on the readout
only: 4 SGD steps, lr 0.1, second order through the readout; Adam 1e-3) on 5-way tasks of the
Omniglot *background* characters, whole classes rotated by k·90°; it is then tested on tasks of
the *evaluation* characters, which meta-training never sees. Each test task is adapted

* in software (float32),
* in software with 4-bit readout weights (15 levels; updates stochastically rounded to the step),
* on chip, on PCM and on filamentary RRAM tiles (features and readout, 8-bit DAC/ADC): right
  after deployment and one day later (drift), updates stochastically rounded to 1/16 of the
  weight range and only changed devices re-programmed (:mod:`memcim.learning.meta.onchip`),

and scored on its query images (15 per class, distinct drawings; every task's images are
different drawings, unlike the authors' sampler, which repeated one drawing per class). The
batch norm uses each set's own batch statistics, so the test is transductive (as in MAML's and
Ortner et al.'s code). Means carry 95 % confidence intervals over the test tasks.

Reduced default: 500 meta-iterations of 32 tasks per shot setting (the paper: 30 000,
``--set iterations=30000``). The meta-training checkpoints to the output folder and resumes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from memcim.data import load_omniglot
from memcim.data.episodes import EpisodeSampler
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
from memcim.experiments.registry import Result, register, stage_generator, time_label
from memcim.experiments.runner import write_json_atomic
from memcim.learning.meta import MetaConfig, MetaLearner, OrtnerCNN
from memcim.learning.meta.onchip import OnChipConfig


@dataclass(frozen=True, kw_only=True)
class MamlOmniglotConfig:
    """Attributes:
    shots: K of the K-shot tasks; one meta-training per K.
    n_way: classes per task.
    iterations, meta_batch, outer_lr: meta-training (Adam).
    train_queries: query images per class in meta-training.
    inner_steps, inner_lr, first_order, adapt: the inner loop (:class:`MetaConfig`);
        ``adapt="all"`` (MAML) is adapted in software only: on chip only the readout adapts.
    test_tasks, test_queries: unseen evaluation tasks and query images per class.
    step_fraction, w_max: on-chip programming step (fraction of ``w_max``) and weight range.
    devices: technologies adapted on chip (``"pcm"``, ``"rram"``).
    times_s: deployment ages at which the tasks arrive (s).
    processor: the digital processor of the energy comparison (a ``memcim.energy``
        preset name).
    data_dir: where ``omniglot_small.npz`` is (default: the shared data folder).
    """

    shots: tuple[int, ...] = (5, 1)
    n_way: int = 5
    iterations: int = 500
    meta_batch: int = 32
    outer_lr: float = 1e-3
    train_queries: int = 5
    inner_steps: int = 4
    inner_lr: float = 0.1
    first_order: bool = False
    adapt: str = "head"
    test_tasks: int = 100
    test_queries: int = 15
    step_fraction: float = 1 / 16
    w_max: float = 1.0
    devices: tuple[str, ...] = ("pcm", "rram")
    times_s: tuple[float, ...] = (0.0, 86_400.0)
    processor: str = "edge_npu"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_config(
            self,
            ("n_way", "iterations", "meta_batch", "train_queries", "test_tasks", "test_queries"),
        )

    def meta(self) -> MetaConfig:
        return MetaConfig(adapt=self.adapt, inner_steps=self.inner_steps,
                          inner_lr=self.inner_lr, first_order=self.first_order)  # fmt: skip

    def on_chip(self) -> OnChipConfig:
        return OnChipConfig(step_fraction=self.step_fraction, w_max=self.w_max,
                            processor=PROCESSORS[self.processor])  # fmt: skip


def samplers(config: MamlOmniglotConfig, data, shot: int, seed: int):
    """(meta-training sampler over the background split, test sampler over the evaluation
    split) of ``shot``-shot tasks; images get a channel dimension."""
    bg, ev = data.background, data.evaluation
    train = EpisodeSampler(bg.x.unsqueeze(1), bg.y, config.n_way, shot, config.train_queries,
                           generator=stage_generator(seed, f"{shot}shot", "train-tasks"),
                           rotate=True)  # fmt: skip
    test = EpisodeSampler(ev.x.unsqueeze(1), ev.y, config.n_way, shot, config.test_queries,
                          generator=stage_generator(seed, f"{shot}shot", "test-tasks"))  # fmt: skip
    return train, test


def _meta_train(config: MamlOmniglotConfig, train: EpisodeSampler, shot: int, seed: int,
                out: Path, progress: bool) -> MetaLearner:  # fmt: skip
    model = OrtnerCNN(n_way=config.n_way,
                      generator=stage_generator(seed, f"{shot}shot", "init"))  # fmt: skip
    learner = MetaLearner(model, config.meta())

    def sample():
        e = train.sample(config.meta_batch)
        return e.support_x, e.support_y, e.query_x, e.query_y

    key = {**asdict(config), "shot": shot, "seed": seed}
    for k in ("test_tasks", "test_queries", "devices", "times_s", "step_fraction", "w_max",
              "processor", "shots", "data_dir"):  # fmt: skip
        key.pop(k)  # settings that do not shape meta-training
    meta_train_resumable(learner, sample, config.iterations, path=out / f"meta_{shot}shot.pt",
                         key=key, generator=train.generator, lr=config.outer_lr,
                         progress=progress)  # fmt: skip
    return learner


def _record(m: dict[str, float], shot: int, results: dict) -> dict[str, torch.Tensor]:
    """Metrics of one shot setting; returns the accuracy curves by variant."""
    curves = {}
    for name, (evaluation, adaptation) in results.items():
        acc = evaluation.accuracy
        curves[name] = acc
        mean, half = ci95(acc[:, -1])
        m[f"accuracy_{shot}shot_{name}"] = mean
        m[f"accuracy_{shot}shot_{name}_ci95"] = half
        if adaptation is not None:
            record_adaptation(m, f"{shot}shot_{name}", adaptation)
    software = curves["software"][:, -1]
    for name, acc in curves.items():
        if name != "software":  # paired over the same tasks: the interval of the difference
            gap, half = ci95(software - acc[:, -1])
            m[f"accuracy_gap_{shot}shot_{name}"] = gap
            m[f"accuracy_gap_{shot}shot_{name}_ci95"] = half
    return curves


_DESCRIPTION = "Omniglot 5-way few-shot: ANIL meta-training, adaptation in software and on PCM/RRAM"


@register("maml-omniglot", MamlOmniglotConfig, _DESCRIPTION)
def run(config: MamlOmniglotConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m: dict[str, float] = {}
    artifacts: list[str] = []

    def log(text: str) -> None:
        if progress:
            print(f"[maml-omniglot] {text}", flush=True)

    data = load_omniglot(config.data_dir)
    rows = []
    for shot in config.shots:
        train, test = samplers(config, data, shot, seed)
        learner = _meta_train(config, train, shot, seed, out, progress)
        log(f"{shot}-shot meta-training done ({config.iterations} iterations)")
        e = test.sample(config.test_tasks)
        results = run_variants(
            learner.model, learner, config.on_chip(), devices=config.devices,
            times_s=config.times_s, tasks=(e.support_x, e.support_y, e.query_x, e.query_y),
            steps=config.inner_steps,
            generator=lambda name, shot=shot: stage_generator(seed, f"{shot}shot", name),
            log=log,
        )  # fmt: skip
        curves = _record(m, shot, results)
        for name in results:
            key = f"{shot}shot_{name}"
            accuracy = f"{100 * m[f'accuracy_{key}']:.2f} ± {100 * m[f'accuracy_{key}_ci95']:.2f}"
            writes = m.get(f"writes_per_adaptation_{key}")
            rows.append(
                [f"{shot}-shot", name, accuracy, "-" if writes is None else f"{writes:.0f}"]
            )
        figure = f"accuracy_vs_steps_{shot}shot.png"
        plot_steps({k: 100 * v for k, v in curves.items()}, "query accuracy (%)",
                   f"Omniglot {config.n_way}-way {shot}-shot, {config.test_tasks} unseen tasks",
                   out / figure)  # fmt: skip
        writes = {k: a.writes_per_device for k, (_, a) in results.items() if a is not None}
        plot_writes(writes, f"{shot}-shot: pulses per device per adaptation",
                    out / f"writes_per_device_{shot}shot.png")  # fmt: skip
        artifacts += [figure, f"writes_per_device_{shot}shot.png"]
        write_json_atomic(out / "partial_results.json", {"metrics": m})
    header = ["task", "adaptation", "query accuracy (%) ± 95 % CI", "pulses per adaptation"]
    return Result(metrics=m, artifacts=artifacts,
                  extra={"summary_table": {"header": header, "rows": rows},
                         "times": [time_label(t) for t in config.times_s]})  # fmt: skip
