"""Benchmark: MESU training throughput at batch 1 (the authors' protocol), samples per second.

The pMNIST network of Bonnet et al. [23] (784-50-10, ReLU, no bias, 10 Monte-Carlo samples):
``mesu_step`` evaluates the 10 weight samples in one batched forward/backward
(:func:`memcim.learning.mesu.mc_cost`); the baseline is the same update with a Python loop
over the 10 samples (one forward/backward per sample, gradients accumulated), which is how a
per-sample implementation runs. A third row uses MESU's optional local draws (pre-activations
instead of whole weights: an unbiased estimator of the same gradient at batch 1, S·out instead
of S·out·in random numbers). All use the same MESU optimiser and one thread. The last rows
run that local-draw step without autograd (:class:`memcim.learning.mesu.fused.FusedMESULearner`),
eagerly and through ``torch.compile`` (skipped with a message where it cannot compile).

Run: ``python benchmarks/mesu_throughput.py [--steps N]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from memcim.bayes import BayesConfig, BayesianLinear
from memcim.learning.mesu import MESU, mesu_step
from memcim.learning.mesu.fused import FusedMESULearner
from timing import compare

SAMPLES = 10


def _model() -> nn.Sequential:
    cfg = BayesConfig(estimator="reparam", sigma_init=2 / 784**0.5, seed=0)
    return nn.Sequential(BayesianLinear(784, 50, bias=False, config=cfg), nn.ReLU(),
                         BayesianLinear(50, 10, bias=False, config=cfg)).train()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="batch-1 steps per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.steps, 784, generator=g), torch.randint(0, 10, (args.steps,),
                                                                     generator=g)  # fmt: skip
    batched, looped, local = _model(), _model(), _model()
    opt_b, opt_l, opt_x = (MESU.from_model(m) for m in (batched, looped, local))

    def run_batched() -> None:
        for i in range(args.steps):
            mesu_step(batched, opt_b, x[i : i + 1], y[i : i + 1], SAMPLES)

    def run_local() -> None:
        for i in range(args.steps):
            mesu_step(local, opt_x, x[i : i + 1], y[i : i + 1], SAMPLES, draw="local")

    def run_looped() -> None:
        for i in range(args.steps):
            opt_l.zero_grad(set_to_none=True)
            for _ in range(SAMPLES):
                out = looped(x[i : i + 1])  # one weight sample per forward
                (F.cross_entropy(out, y[i : i + 1], reduction="sum") / SAMPLES).backward()
            opt_l.step()

    def fused_run(compile: bool):
        model = _model()
        learner = FusedMESULearner(model, MESU.from_model(model), compile=compile,
                                   generator=torch.Generator().manual_seed(0))  # fmt: skip

        def run() -> None:
            for i in range(args.steps):
                learner.step(x[i : i + 1], y[i : i + 1])

        return run

    runs = {"batched": run_batched, "looped": run_looped, "local": run_local,
            "fused": fused_run(False)}  # fmt: skip
    try:
        compiled = fused_run(True)
        compiled()  # compiles
        runs["compiled"] = compiled
    except Exception as error:  # any compiler failure: report it and go on
        print(f"compiled fused step skipped: {type(error).__name__}: {error}"[:300])
    ms = compare(runs, repeats=5, warmup=1, rounds=5)
    for name, value in ms.items():
        print(
            f"{name:8s} {args.steps / value * 1e3:8.0f} samples/s  ({value / args.steps:.3f} ms "
            "per batch-1 step)"
        )
    print(f"batched / looped speed-up: {ms['looped'] / ms['batched']:.2f}x")
    for name in ("local", "fused", "compiled"):
        if name in ms:
            print(f"{name} / looped speed-up: {ms['looped'] / ms[name]:.2f}x")


if __name__ == "__main__":
    main()
