"""Benchmark: ``memcim.bayes.predict`` against batched deterministic forwards of the same MLP.

MLP 784-256-128-10 (ReLU), batch N = 256, S = 64 Monte-Carlo samples; ``predict`` returns
softmax probabilities with the entropy decomposition. Both of its methods are timed:

* ``method="local"`` (the default): every fully connected layer draws its outputs from their
  exact per-input Gaussian (same per-input predictive distribution as weight samples, checked
  by a KS test in ``tests/bayes/test_predict.py``); the first layer's mean and variance are
  computed once for all samples;
* ``method="weights"``: 64 whole weight samples per layer (``w = μ + σ ε``) as one batched
  matmul over the samples — one network per sample.

Two deterministic baselines, timed interleaved in the same process:

* ``shared``: the plain ``nn.Sequential`` of ``nn.Linear`` on the inputs repeated to
  ``[64·256, 784]`` (one weight set, one large GEMM per layer);
* ``vmap``: ``torch.func.vmap`` of ``functional_call`` over 64 fixed weight sets (what a
  network per sample costs without any sampling).

The ratio is taken against the faster of the two (the fastest honest baseline). When
``bayesian_torch`` is importable, its usual Monte-Carlo loop (64 forward passes of a
``LinearReparameterization`` model, softmax, stack) is timed as well; otherwise the script says
it was skipped.

Run: ``python benchmarks/bayes_predict.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import itertools

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from memcim.bayes import BayesianLinear, predict
from timing import compare

SIZES = (784, 256, 128, 10)
SAMPLES, BATCH = 64, 256


def _mlp(linear) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        layers.append(linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _bayesian_torch_loop(x: torch.Tensor):
    try:
        from bayesian_torch.layers import LinearReparameterization
    except ImportError:
        return None

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(
                LinearReparameterization(a, b) for a, b in itertools.pairwise(SIZES)
            )

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            for i, layer in enumerate(self.layers):
                h = layer(h, return_kl=False)
                if i < len(self.layers) - 1:
                    h = torch.relu(h)
            return h

    net = Net().eval()

    def run():
        return torch.stack([torch.softmax(net(x), dim=-1) for _ in range(SAMPLES)])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 784, generator=gen)
    bayes = _mlp(BayesianLinear).eval()
    plain = _mlp(nn.Linear).eval()
    with torch.no_grad():  # same means in both networks
        for b, p in zip(bayes[::2], plain[::2], strict=True):
            p.weight.copy_(b.weight_mu)
            p.bias.copy_(b.bias_mu)

    folded = x.repeat(SAMPLES, 1)  # [64·256, 784]
    copies = [_mlp(nn.Linear).eval() for _ in range(SAMPLES)]
    params, buffers = stack_module_state(copies)

    def one(p, b, inp):
        return functional_call(plain, (p, b), (inp,))

    batched = vmap(one, in_dims=(0, 0, None))
    pgen = torch.Generator().manual_seed(1)

    with torch.no_grad():
        runs = {
            "shared": lambda: plain(folded),
            "vmap": lambda: batched(params, buffers, x),
            "predict": lambda: predict(bayes, x, samples=SAMPLES, generator=pgen),
            "weights": lambda: predict(bayes, x, samples=SAMPLES, generator=pgen, method="weights"),
        }
        res = compare(runs, args.repeats)

    base = min(("shared", "vmap"), key=res.__getitem__)
    ratio = res["predict"] / res[base]
    print(f"torch threads: {torch.get_num_threads()}  MLP 784-256-128-10  batch {BATCH}  "
          f"S = {SAMPLES}")  # fmt: skip
    print(f"deterministic  shared [64·256] {res['shared']:8.2f} ms   "
          f"vmap over 64 weight sets {res['vmap']:8.2f} ms")  # fmt: skip
    print(f"predict        {res['predict']:8.2f} ms   ratio {ratio:5.2f} vs {base}  "
          f"(target <= 1.5; method='local', the default)")  # fmt: skip
    print(f"predict        {res['weights']:8.2f} ms   ratio {res['weights'] / res[base]:5.2f} "
          f"vs {base}  (method='weights': 64 whole weight samples per layer)")  # fmt: skip

    loop = _bayesian_torch_loop(x)
    if loop is None:
        print("bayesian_torch: not importable here, skipped "
              "(pip install bayesian-torch to compare)")  # fmt: skip
        return
    with torch.no_grad():
        res_bt = compare({base: runs[base], "predict": runs["predict"], "bayesian_torch": loop},
                         args.repeats)  # fmt: skip
    bt = res_bt["bayesian_torch"]
    print(f"bayesian_torch LinearReparameterization, 64-pass loop {bt:8.2f} ms   "
          f"ratio {bt / res_bt[base]:5.2f} vs {base}   "
          f"{bt / res_bt['predict']:5.2f} x memcim predict")  # fmt: skip


if __name__ == "__main__":
    main()
