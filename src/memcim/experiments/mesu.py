"""Experiments ``mesu-pmnist`` and ``mesu-ood``: Bayesian continual learning and forgetting
with MESU (Bonnet et al. [23]), its σ finally held by devices on crossbar tiles.

``mesu-pmnist``: the authors' permuted-MNIST stream (784-50-10, ReLU, no bias, standardised
inputs, one epoch of batch-1 steps per task, 10 Monte-Carlo samples) for MESU and, in the
same loop, plain SGD, online EWC and synaptic intelligence. It fills each learner's GEM
accuracy matrix, reports the mean accuracy over the last five tasks, ACC and BWT, and the
Fashion-MNIST out-of-distribution AUROC of each learner's uncertainties. The trained MESU
network is then deployed with its weight samples drawn by devices on tiles
(:func:`memcim.learning.mesu.on_devices`) and tested again.

The authors' run is 200 tasks of 60 000 images with N = 300 000 (five tasks' worth of
samples), about 12 M batch-1 steps. The reduced default keeps the network, the protocol and
N's span of five tasks (N = 5 × ``train_images``) but runs 20 tasks of 30 000 images, and
MESU takes its gradient from local draws (pre-activations instead of whole weight samples:
unbiased for the same gradient at batch 1, 2.5x faster; see
:func:`memcim.learning.mesu.mc_cost`) so that it fits in 15 minutes on 2 cores. The authors'
estimator is ``--set draw=weights``, the full run ``--set tasks=200 --set train_images=60000``.

``mesu-ood``: MESU on MNIST alone for many epochs (prior σ_p = 0.06, gradients clipped at
±0.1/σ), then the epistemic AUROC of MNIST against permuted MNIST, for memory windows N from a
few epochs' worth of samples to N → ∞ (no forgetting). The authors, after 1000 epochs of
60 000 images: 0.997 at N = 1.8e5 (three epochs) against 0.727 at N = 1e15, where every σ has
kept shrinking. The reduced default keeps their 60 000 images, their order (the data set's,
every epoch: their in-memory loader does not shuffle; ``--set order=shuffled`` draws a new
order each epoch) and N in epochs of them (N = 1, 3 and 10 epochs, and ∞) but trains 15
epochs, with local draws and the fused step
(:class:`~memcim.learning.mesu.fused.FusedMESULearner`). The full run is
``--set epochs=1000 --set memories=3,inf --set engine=compiled`` (about 1.5 h per N on one
core with a C++ compiler); it does not reproduce the paper's N = ∞ figure either (see
docs/experiments/mesu.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from memcim._errors import check_count, is_real, require
from memcim.data import load_fashion_mnist, load_mnist, permuted_tasks
from memcim.experiments.registry import Result, register, stage_generator
from memcim.experiments.runner import write_json_atomic
from memcim.learning.mesu.optim import is_memory_window

PMNIST_VARIANTS = ("mesu", "sgd", "online_ewc", "si", "mesu_on_devices")
DRAWS = ("weights", "local")


def _check_fields(config, ints: dict[str, int], positives: tuple[str, ...]) -> None:
    """Each field in ``ints`` an int >= its minimum, each in ``positives`` a finite number > 0."""
    name = type(config).__name__
    for f, low in ints.items():
        check_count(getattr(config, f), f"{name}.{f}", low)
    for f in positives:
        value = getattr(config, f)
        require(is_real(value) and value > 0, f"{name}.{f}", value, "a finite number > 0")
    require(config.draw in DRAWS, f"{name}.draw", config.draw, f"one of {DRAWS}")


def _standardised_mnist(data_dir: str | None, train_images: int, test_images: int,
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """MNIST flattened and standardised with the training images' mean and std (as the
    authors do), as (x, y, x_test, y_test)."""
    data = load_mnist(data_dir)
    x = data.x_train[:train_images].reshape(min(train_images, len(data.y_train)), -1).float()
    xt = data.x_test[:test_images].reshape(min(test_images, len(data.y_test)), -1).float()
    mean, std = x.mean(), x.std()
    return ((x - mean) / std, data.y_train[: len(x)], (xt - mean) / std,
            data.y_test[: len(xt)])  # fmt: skip


class _PermutedTask:
    """One permuted-MNIST task, its training images permuted when asked (one task's copy at a
    time instead of the whole stream's)."""

    def __init__(self, perms, t: int, x: Tensor, y: Tensor, xt: Tensor, yt: Tensor) -> None:
        self._perms, self._t, self._x = perms, t, x
        self.y_train, self.y_test = y, yt
        self.x_test = perms.apply(xt, t)

    @property
    def x_train(self) -> Tensor:
        return self._perms.apply(self._x, self._t)


@dataclass(frozen=True, kw_only=True)
class MesuPmnistConfig:
    """Attributes:
    tasks: permutations (the first is MNIST itself).
    train_images, test_images: images per task (sub-sampled from MNIST's 60 000 / 10 000).
    ood_images: Fashion-MNIST test images for the out-of-distribution AUROC.
    hidden: hidden width (784-hidden-10, no bias).
    samples, test_samples: Monte-Carlo samples per training step and per prediction.
    memory: MESU's N in samples; ``None``: 5 × ``train_images`` (the authors' 300 000 for
        60 000-image tasks).
    lr_mu, lr_sigma, prior_sigma: MESU's learning rates and prior σ_p (μ_p = 0).
    draw: MESU's gradient estimator, ``"weights"`` (the authors') or ``"local"`` (the reduced
        default, for time).
    sgd_lr: learning rate of SGD, online EWC and SI (the authors: 0.002).
    ewc_importance, ewc_decay, fisher_samples: online EWC's λ, γ and Fisher images.
    si_coefficient, si_damping: SI's c and ξ.
    variants: which of ``mesu``, ``sgd``, ``online_ewc``, ``si`` and ``mesu_on_devices`` to
        run. ``mesu_on_devices`` trains exactly as ``mesu`` (same seeds) while keeping μ and σ
        on RRAM tiles (:class:`~memcim.learning.mesu.ProgrammedPosterior`, re-programmed after
        every step where a value moved a programming step): it measures the writes.
    device_schemes: sampling schemes (``memcim.bayes.SamplingScheme`` values) that draw the
        trained MESU network's samples on filamentary RRAM tiles; empty: none.
    device_verify_us: program-and-verify tolerance of that RRAM (µS); the deployment is also
        measured with single pulses. ``None``: single pulses only.
    device_test_images: test images per task for the comparison of software and devices
        (the last five tasks).
    device_chips: chips programmed per scheme and programming, each from its own seed: the
        first gives the ``device_<scheme>_…`` metrics, all of them the gaps per chip, their
        mean and the worst (``device_<scheme>_gap_points_chip<k>``, ``…_mean``, ``…_worst``).
    jobs: variants trained at once (processes).
    data_dir: where the .npz files are (default: the shared data folder).
    """

    tasks: int = 20
    train_images: int = 30000
    test_images: int = 1000
    ood_images: int = 1000
    hidden: int = 50
    samples: int = 10
    test_samples: int = 10
    memory: float | None = None
    lr_mu: float = 1.0
    lr_sigma: float = 1.0
    prior_sigma: float = 1.0
    draw: str = "local"
    sgd_lr: float = 0.002
    ewc_importance: float = 2.0
    ewc_decay: float = 0.2
    fisher_samples: int = 1000
    si_coefficient: float = 1e-4
    si_damping: float = 1.0
    variants: tuple[str, ...] = ("mesu", "sgd", "online_ewc", "si")
    device_schemes: tuple[str, ...] = ("separate_mu_sigma",)
    device_verify_us: float | None = 1.0
    device_test_images: int = 10000
    device_chips: int = 3
    jobs: int = 2
    data_dir: str | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_fields(self, {"tasks": 1, "train_images": 1, "test_images": 1, "ood_images": 1,
                             "device_test_images": 1, "device_chips": 1, "hidden": 1,
                             "samples": 1,
                             "test_samples": 1, "fisher_samples": 1, "jobs": 1},
                      ("lr_mu", "lr_sigma", "prior_sigma", "sgd_lr", "si_damping"))  # fmt: skip
        for f in ("ewc_importance", "si_coefficient"):
            require(is_real(getattr(self, f)) and getattr(self, f) >= 0, f"{name}.{f}",
                    getattr(self, f), "a finite number >= 0")  # fmt: skip
        require(is_real(self.ewc_decay) and 0 <= self.ewc_decay <= 1, f"{name}.ewc_decay",
                self.ewc_decay, "in [0, 1]")  # fmt: skip
        if self.memory is not None:
            require(is_memory_window(self.memory), f"{name}.memory", self.memory,
                    "a number of samples > 0 (inf: no forgetting), or None")  # fmt: skip
        require(len(self.variants) >= 1 and all(v in PMNIST_VARIANTS for v in self.variants),
                f"{name}.variants", self.variants, f"each in {PMNIST_VARIANTS}")  # fmt: skip
        if self.device_verify_us is not None:
            require(is_real(self.device_verify_us) and self.device_verify_us > 0,
                    f"{name}.device_verify_us", self.device_verify_us,
                    "a finite number > 0 µS, or None")  # fmt: skip
        from memcim.bayes import SamplingScheme

        schemes = [s.value for s in SamplingScheme]
        require(all(s in schemes for s in self.device_schemes), f"{name}.device_schemes",
                self.device_schemes, f"each in {schemes}")  # fmt: skip

    @property
    def memory_samples(self) -> float:
        return float(self.memory) if self.memory is not None else 5.0 * self.train_images


def _pmnist_learner(config: MesuPmnistConfig, variant: str, seed: int):
    """The learner of one variant, initialised from the seed, and for ``mesu_on_devices``
    the tiles that hold its posterior (else ``None``)."""
    from memcim.learning import mesu

    sizes = (784, config.hidden, 10)
    if variant in ("mesu", "mesu_on_devices"):  # the same training, seeds included
        model = mesu.bayesian_mlp(sizes, generator=stage_generator(seed, "mesu", "init"))
        optimizer = mesu.MESU.from_model(model, lr_mu=config.lr_mu, lr_sigma=config.lr_sigma,
                                         memory=config.memory_samples,
                                         prior_sigma=config.prior_sigma)  # fmt: skip
        chip = None
        if variant == "mesu_on_devices":
            chip = mesu.ProgrammedPosterior(model, generator=stage_generator(seed, variant))
        learner = mesu.MESULearner(model, optimizer, samples=config.samples,
                                   test_samples=config.test_samples, draw=config.draw,
                                   generator=stage_generator(seed, "mesu", "samples"),
                                   after_step=chip.sync if chip is not None else None)  # fmt: skip
        return learner, chip
    init = stage_generator(seed, variant, "init")
    regulariser = {
        "sgd": None,
        "online_ewc": mesu.OnlineEWC(
            config.ewc_importance, config.ewc_decay, config.fisher_samples
        ),
        "si": mesu.SynapticIntelligence(config.si_coefficient, config.si_damping),
    }[variant]
    return mesu.SGDLearner(mesu.deterministic_mlp(sizes, generator=init), lr=config.sgd_lr,
                           regulariser=regulariser), None  # fmt: skip


def _pmnist_tasks(config: MesuPmnistConfig, seed: int):
    x, y, xt, yt = _standardised_mnist(config.data_dir, config.train_images, config.test_images)
    perms = permuted_tasks(x, config.tasks, generator=stage_generator(seed, "permutations"))
    tasks = [_PermutedTask(perms, t, x, y, xt, yt) for t in range(config.tasks)]
    fashion = load_fashion_mnist(config.data_dir).x_test[: config.ood_images]
    fashion = fashion.reshape(len(fashion), -1).float()
    # Standardised with its own statistics, as the authors load every data set.
    return tasks, (fashion - fashion.mean()) / fashion.std()


def _pmnist_variant(config: MesuPmnistConfig, variant: str, seed: int, out: Path,
                    progress: bool) -> dict:  # fmt: skip
    """Train one variant on the stream (resuming from its checkpoint); its measurements."""
    from memcim.learning import mesu
    from memcim.metrics import acc, bwt

    done = out / "variants" / f"{variant}.pt"
    if done.exists():
        return torch.load(done, weights_only=True)
    torch.set_num_threads(1)  # one core per variant: they run side by side
    tasks, ood = _pmnist_tasks(config, seed)
    learner, chip = _pmnist_learner(config, variant, seed)
    checkpoint = out / "checkpoints" / f"{variant}.pt"
    order = stage_generator(seed, "mesu" if chip is not None else variant, "order")
    start = torch.load(checkpoint, weights_only=True)["result"]["tasks_done"] if (
        checkpoint.exists()) else 0  # fmt: skip
    result = mesu.run_stream(learner, tasks, generator=order, checkpoint=checkpoint,
                             progress=progress)  # fmt: skip
    r = result.matrix
    record = {"matrix": r, "cost": torch.tensor(result.cost),
              "metrics": {"last5_accuracy": result.last_tasks_accuracy(5), "acc": acc(r),
                          "bwt": bwt(r), "newest_task_accuracy": float(r[-1, -1]),
                          **mesu.ood_scores(learner, tasks[-1].x_test, ood)}}  # fmt: skip
    if variant == "mesu":
        record["model"] = learner.model.state_dict()
    if chip is not None:  # its tile state is not checkpointed: counted from the (re)start
        writes = chip.writes_per_device().float()
        record["metrics"].update(writes_per_device_mean=float(writes.mean()),
                                 writes_per_device_max=float(writes.max()),
                                 clipped_values=float(chip.clipped),
                                 writes_counted_from_task=float(start + 1))  # fmt: skip
    mesu.save_atomic(done, record)
    return record


def _on_devices(config: MesuPmnistConfig, state: dict, seed: int) -> dict[str, float]:
    """The trained MESU network, software and with its samples drawn by devices on tiles:
    mean accuracy over the last five tasks on ``device_test_images`` test images each, per
    scheme, with program-and-verify and (for comparison) with single programming pulses, on
    ``device_chips`` chips each."""
    from memcim.learning import mesu

    tasks, _ = _pmnist_tasks(replace(config, test_images=config.device_test_images), seed)
    last = tasks[max(0, config.tasks - 5) :]
    model = mesu.bayesian_mlp((784, config.hidden, 10), generator=torch.Generator())
    model.load_state_dict(state)
    software = mesu.SampledPredictor(
        model, samples=config.test_samples, generator=stage_generator(seed, "software", "test")
    )

    def last5(predictor) -> float:
        return sum(mesu.accuracy(predictor, t.x_test, t.y_test) for t in last) / len(last)

    m = {"device_software_last5_accuracy": last5(software)}
    programming = {"": config.device_verify_us}
    if config.device_verify_us is not None:
        programming["_single_pulse"] = None
    for scheme in config.device_schemes:
        for suffix, tolerance in programming.items():
            name = f"{scheme}{suffix}"
            gaps = []
            for chip in range(config.device_chips):
                # The first chip draws as a single chip always has (same seed stages).
                gen = stage_generator(seed, "devices", name, *([f"chip{chip}"] if chip else []))
                accuracy, report = _chip(model, scheme, tolerance, gen, tasks[-1], last5, config)
                gaps.append(100 * (m["device_software_last5_accuracy"] - accuracy))
                if chip == 0:
                    m[f"device_{name}_last5_accuracy"] = accuracy
                    m[f"device_{name}_gap_points"] = gaps[0]
                    m[f"device_{name}_writes"] = float(sum(v["writes"] for v in report.values()))
                    m[f"device_{name}_feasible_fraction"] = min(
                        v["feasible_fraction"] for v in report.values()
                    )
            m.update({f"device_{name}_gap_points_chip{k}": g for k, g in enumerate(gaps)})
            m[f"device_{name}_gap_points_mean"] = sum(gaps) / len(gaps)
            m[f"device_{name}_gap_points_worst"] = max(gaps)
    return m


def _chip(model, scheme: str, tolerance: float | None, generator: torch.Generator, newest,
          last5, config: MesuPmnistConfig) -> tuple[float, dict]:  # fmt: skip
    """One chip: ``model`` programmed on filamentary RRAM (verify ``tolerance``), its ADCs set
    on the newest task's training images; its last-five-tasks accuracy and programming report."""
    from memcim.bayes import HardwareSampling, SamplingScheme
    from memcim.devices import FilamentaryRRAM
    from memcim.learning import mesu

    device = FilamentaryRRAM(verify_tolerance_us=tolerance)
    sampling = HardwareSampling(scheme=SamplingScheme(scheme), device=device)
    hardware, report = mesu.on_devices(model, sampling=sampling, samples=config.test_samples,
                                       generator=generator,
                                       calibration=newest.x_train[:256])  # fmt: skip
    chip = mesu.SampledPredictor(hardware, samples=config.test_samples, generator=generator)
    return last5(chip), report


def plot_matrices(matrices: dict[str, Tensor], path: Path) -> None:
    """Each learner's accuracy matrix R[i, j] and its accuracy on every task after the last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(matrices)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.0 * (n + 1), 3.1), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, (variant, r) in zip(axes[0], matrices.items(), strict=False):
        image = ax.imshow(100 * r.numpy(), vmin=0, vmax=100, cmap="viridis")
        ax.set_title(variant, fontsize=9)
        ax.set_xlabel("task tested")
        ax.set_ylabel("after training task")
    fig.colorbar(image, ax=list(axes[0][:n]), shrink=0.85, label="accuracy (%)")
    ax = axes[0][n]
    for variant, r in matrices.items():
        ax.plot(range(1, len(r) + 1), 100 * r[-1].numpy(), marker="o", ms=3, label=variant)
    ax.set_xlabel("task")
    ax.set_ylabel("accuracy after the last task (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _run_each(function, items: tuple, jobs: int) -> dict:
    """``{item: function(item)}`` for every item, ``jobs`` processes at a time."""
    if jobs == 1 or len(items) == 1:
        results = [function(item) for item in items]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=min(jobs, len(items)))(delayed(function)(i) for i in items)
    return dict(zip(items, results, strict=True))


@register("mesu-pmnist", MesuPmnistConfig,
          "MESU vs SGD, online EWC and SI on permuted MNIST at batch 1; σ on devices")  # fmt: skip
def run_pmnist(config: MesuPmnistConfig, *, seed: int, out_dir: str | os.PathLike[str],
               progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    for sub in ("variants", "checkpoints"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    show = progress and config.jobs == 1

    def one(variant: str) -> dict:
        return _pmnist_variant(config, variant, seed, out, show)

    records = _run_each(one, config.variants, config.jobs)
    m: dict[str, float] = {}
    for variant, record in records.items():
        m.update({f"{k}_{variant}": v for k, v in record["metrics"].items()})
        if progress:
            print(f"[mesu-pmnist] {variant}: last five tasks "
                  f"{100 * record['metrics']['last5_accuracy']:.2f} %")  # fmt: skip
    m["memory_samples"] = config.memory_samples
    if "mesu" in records and config.device_schemes:
        m.update(_on_devices(config, records["mesu"]["model"], seed))
    write_json_atomic(out / "partial_results.json", {"metrics": m})
    figure = "mesu-pmnist_accuracy.png"
    plot_matrices({v: r["matrix"] for v, r in records.items()}, out / figure)
    return Result(metrics=m, artifacts=[figure],
                  extra={"accuracy_matrices": {v: r["matrix"].tolist()
                                               for v, r in records.items()},
                         "summary_table": _pmnist_table(records)})  # fmt: skip


def _pmnist_table(records: dict[str, dict]) -> dict[str, list]:
    header = ["learner", "last five tasks (%)", "newest task (%)", "ACC (%)", "BWT (points)",
              "FMNIST AUROC, predictive entropy", "FMNIST AUROC, epistemic"]  # fmt: skip
    rows = []
    for variant, record in records.items():
        r = record["metrics"]
        epistemic = f"{r['auroc_epistemic']:.3f}" if variant.startswith("mesu") else "-"
        rows.append([variant, f"{100 * r['last5_accuracy']:.2f}",
                     f"{100 * r['newest_task_accuracy']:.2f}", f"{100 * r['acc']:.2f}",
                     f"{100 * r['bwt']:.2f}", f"{r['auroc_total']:.3f}",
                     epistemic])  # fmt: skip
    return {"header": header, "rows": rows}


@dataclass(frozen=True, kw_only=True)
class MesuOodConfig:
    """Attributes:
    train_images: MNIST training images (sub-sampled from 60 000).
    epochs: passes of batch-1 steps over them.
    test_images: MNIST test images; the out-of-distribution set is the same images under one
        fixed random pixel permutation.
    memories: MESU's N for each run, in epochs' worth of samples (N = m × train_images; the
        authors' 1.8e5 is 3 epochs of 60 000); ``inf``: no forgetting.
    prior_sigma, clamp_grad, lr_mu, lr_sigma: MESU's σ_p (the authors: 0.06), gradient clip
        c (±c/σ; 0.1) and learning rates.
    hidden, samples, test_samples, draw: network width, Monte-Carlo samples in training and
        prediction, gradient estimator (``"weights"`` or ``"local"``).
    engine: how a step runs: ``"autograd"`` (:class:`~memcim.learning.mesu.MESULearner`),
        ``"fused"`` (:class:`~memcim.learning.mesu.fused.FusedMESULearner`: the same local-draw
        step without autograd, about 3x faster) or ``"compiled"`` (that step through
        ``torch.compile``, about 10x; needs a C++ compiler). The last two need
        ``draw="local"``.
    eval_every: epochs between AUROC measurements (the curve in the figure).
    jobs: memories trained at once (processes).
    data_dir: where the .npz files are (default: the shared data folder).
    order: ``"fixed"``: every epoch visits the training images in the data set's order, as
        the authors' runs do (their ``-fits`` in-memory loader does not shuffle);
        ``"shuffled"``: a new random order every epoch.
    """

    train_images: int = 60_000
    epochs: int = 15
    test_images: int = 10_000
    memories: tuple[float, ...] = (1.0, 3.0, 10.0, math.inf)
    prior_sigma: float = 0.06
    clamp_grad: float = 0.1
    lr_mu: float = 1.0
    lr_sigma: float = 1.0
    hidden: int = 50
    samples: int = 10
    test_samples: int = 10
    draw: str = "local"
    engine: str = "fused"
    eval_every: int = 5
    jobs: int = 2
    data_dir: str | None = None
    order: str = "fixed"

    def __post_init__(self) -> None:
        name = type(self).__name__
        require(self.order in ("fixed", "shuffled"), f"{name}.order", self.order,
                '"fixed" or "shuffled"')  # fmt: skip
        _check_fields(self, {"train_images": 1, "epochs": 1, "test_images": 2, "hidden": 1,
                             "samples": 1, "test_samples": 2, "eval_every": 1, "jobs": 1},
                      ("prior_sigma", "lr_mu", "lr_sigma"))  # fmt: skip
        require(is_real(self.clamp_grad) and self.clamp_grad >= 0, f"{name}.clamp_grad",
                self.clamp_grad, "a finite number >= 0 (0: no clipping)")  # fmt: skip
        require(len(self.memories) >= 1 and all(is_memory_window(m) for m in self.memories),
                f"{name}.memories", self.memories,
                "numbers of epochs > 0 (inf: no forgetting)")  # fmt: skip
        require(self.engine in ("autograd", "fused", "compiled"), f"{name}.engine",
                self.engine, '"autograd", "fused" or "compiled"')  # fmt: skip
        require(self.engine == "autograd" or self.draw == "local", f"{name}.engine",
                self.engine, 'draw="local" (the fused step draws pre-activations)')  # fmt: skip


def _memory_label(m: float) -> str:
    return "inf" if math.isinf(m) else f"{m:g}"


def epistemic_bits(probs: Tensor) -> Tensor:
    """Epistemic entropy ``[N]`` of class probabilities ``[S, N, C]`` as the authors' code
    computes it: in bits, float32, with log₂(p + 10⁻¹²)."""
    p = probs.float()
    mean = p.mean(0)
    total = -(torch.log2(mean + 1e-12) * mean).sum(-1)
    return total + (torch.log2(p + 1e-12) * p).mean(0).sum(-1)


def paper_auroc(scores_in: Tensor, scores_out: Tensor) -> float:
    """The AUROC as the authors' code computes it, to compare with their figures only: a
    trapezoid over 1000 thresholds evenly spaced from 0 to the largest out-of-distribution
    score. Scores below 0 (rounding makes some epistemic entropies of a near-certain network
    slightly negative in :func:`epistemic_bits`) fall below every threshold, so the curve
    starts above (0, 0) and the area before that start is lost;
    :func:`memcim.metrics.ood_auroc` is the exact AUROC."""
    thresholds = torch.linspace(0, float(scores_out.max()), 1000).unsqueeze(1)
    below_in = (scores_in < thresholds).float().mean(1)
    below_out = (scores_out < thresholds).float().mean(1)
    return float(torch.trapezoid(below_in, below_out))


def _mesu_learner(model, optimizer, config: MesuOodConfig, generator: torch.Generator):
    """The learner ``config.engine`` names."""
    from memcim.learning import mesu
    from memcim.learning.mesu.fused import FusedMESULearner

    settings = {"samples": config.samples, "test_samples": config.test_samples,
                "generator": generator}  # fmt: skip
    if config.engine == "autograd":
        return mesu.MESULearner(model, optimizer, draw=config.draw, **settings)
    return FusedMESULearner(model, optimizer, compile=config.engine == "compiled", **settings)


#: What a mesu-ood checkpoint must agree on with the run that resumes it.
_OOD_TRAINING_FIELDS = ("train_images", "order", "prior_sigma", "clamp_grad", "lr_mu", "lr_sigma",
                        "hidden", "samples", "draw")  # fmt: skip


def _check_resumable(path: Path, state: dict, made_by: dict, epochs: int) -> None:
    """Refuse a checkpoint trained with other settings, or for more epochs than asked
    (checkpoints written before these settings were stored are taken as they are; those
    written before the order was stored were shuffled)."""
    saved = state.get("made_by", made_by)
    saved = saved if "order" in saved else {**saved, "order": "shuffled"}
    for field, value in saved.items():
        ours = made_by.get(field)
        require(ours == value, f"{path}: {field}", value,
                f"= {ours} as this run (another --out, or delete the file)")  # fmt: skip
    require(state["epoch"] <= epochs, f"{path}: epochs trained", state["epoch"],
            f"<= epochs = {epochs} (raise epochs, or another --out)")  # fmt: skip


def _ood_run(config: MesuOodConfig, memory: float, seed: int, out: Path,
             progress: bool) -> dict:  # fmt: skip
    """MESU with memory ``memory`` (epochs) on MNIST, resumable; its AUROC curve."""
    from memcim.learning import mesu

    label = _memory_label(memory)
    path = out / "checkpoints" / f"memory_{label}.pt"
    torch.set_num_threads(1)  # one core per run: they run side by side
    x, y, xt, _ = _standardised_mnist(config.data_dir, config.train_images, config.test_images)
    x_ood = xt[:, torch.randperm(xt.shape[1], generator=stage_generator(seed, "ood"))]
    model = mesu.bayesian_mlp((784, config.hidden, 10), generator=stage_generator(seed, "init"))
    optimizer = mesu.MESU.from_model(
        model, lr_mu=config.lr_mu, lr_sigma=config.lr_sigma, prior_sigma=config.prior_sigma,
        memory=memory * len(y), clamp_grad=config.clamp_grad)  # fmt: skip
    learner = _mesu_learner(model, optimizer, config, stage_generator(seed, "samples", label))
    order = stage_generator(seed, "order", label)
    made_by = {f: getattr(config, f) for f in _OOD_TRAINING_FIELDS}
    state = {"epoch": 0, "curve": [], "made_by": made_by}
    if path.exists():
        state = torch.load(path, weights_only=True)
        _check_resumable(path, state, made_by, config.epochs)
        learner.load_state_dict(state["learner"])
        order.set_state(state["order"])

    def on_epoch(epoch: int) -> None:
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            scores = mesu.ood_scores(learner, xt, x_ood)
            state["curve"].append([epoch + 1, scores["auroc_epistemic"]])
        state.update(epoch=epoch + 1, learner=learner.state_dict(), order=order.get_state())
        mesu.save_atomic(path, state)

    if state["epoch"] < config.epochs:
        mesu.train_epochs(learner, x, y, config.epochs, generator=order, start=state["epoch"],
                          shuffle=config.order == "shuffled",
                          progress=progress, on_epoch=on_epoch)  # fmt: skip
    probs = [mesu.sampled_probs(learner, x) for x in (xt, x_ood)]
    scores = mesu.scores_from_probs(*probs)  # and the authors' AUROC from the same draws:
    scores["auroc_epistemic_paper"] = paper_auroc(*(epistemic_bits(p) for p in probs))
    sigma = torch.cat(
        [m.weight_sigma.detach().flatten() for m in model if hasattr(m, "weight_sigma")]
    )
    return {"scores": scores, "curve": state["curve"], "sigma_median": float(sigma.median())}


def plot_ood(runs: dict[float, dict], path: Path) -> None:
    """Epistemic AUROC against N (after the last epoch) and along training, per N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.3))
    finite = [m for m in runs if not math.isinf(m)]
    left.plot(finite, [runs[m]["scores"]["auroc_epistemic"] for m in finite], "o-",
              label="finite N")  # fmt: skip
    if any(math.isinf(m) for m in runs):
        left.axhline(runs[math.inf]["scores"]["auroc_epistemic"], color="C3", ls="--",
                     label="N → ∞")  # fmt: skip
    if finite:  # a run of N = ∞ alone has no N axis to scale
        left.set_xscale("log")
        left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        left.set_xticks(finite, [f"{m:g}" for m in finite])
    left.set_xlabel("memory window N (epochs of samples)")
    left.set_ylabel("epistemic AUROC, MNIST vs permuted")
    left.legend(fontsize=8)
    for m, run in runs.items():
        epochs, auroc = zip(*run["curve"], strict=True) if run["curve"] else ((), ())
        right.plot(epochs, auroc, marker=".", label=f"N = {_memory_label(m)} epochs")
    epochs_seen = [e for run in runs.values() for e, _ in run["curve"]]
    if epochs_seen and max(epochs_seen) >= 20 * min(epochs_seen):
        right.set_xscale("log")  # long and short runs side by side
    right.set_xlabel("epochs")
    right.set_ylabel("epistemic AUROC")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@register("mesu-ood", MesuOodConfig,
          "MESU's epistemic AUROC, MNIST vs permuted MNIST: finite N vs no forgetting")  # fmt: skip
def run_ood(config: MesuOodConfig, *, seed: int, out_dir: str | os.PathLike[str],
            progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    show = progress and config.jobs == 1

    def one(memory: float) -> dict:
        return _ood_run(config, memory, seed, out, show)

    runs = _run_each(one, config.memories, config.jobs)
    m: dict[str, float] = {}
    for memory, run in runs.items():
        label = _memory_label(memory)
        m.update({f"{k}_N{label}": v for k, v in run["scores"].items() if k.startswith("auroc")})
        m[f"epistemic_in_nats_N{label}"] = run["scores"]["epistemic_in_nats"]
        m[f"epistemic_out_nats_N{label}"] = run["scores"]["epistemic_out_nats"]
        m[f"sigma_median_N{label}"] = run["sigma_median"]
        if progress:
            print(f"[mesu-ood] N = {label} epochs: epistemic AUROC "
                  f"{run['scores']['auroc_epistemic']:.4f}")  # fmt: skip
    figure = "mesu-ood_auroc.png"
    plot_ood(runs, out / figure)
    write_json_atomic(out / "partial_results.json", {"metrics": m})
    return Result(
        metrics=m,
        artifacts=[figure],
        extra={"curves": {_memory_label(k): v["curve"] for k, v in runs.items()}},
    )
