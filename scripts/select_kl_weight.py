"""Select the ``kl_weight`` of the ``bayes-ood`` experiment on a validation split.

The test sets are never touched. For ``mnist``: train on 50 000 MNIST training images, score on
the other 10 000 (in distribution) and on the first 10 000 Fashion-MNIST *training* images (out
of distribution). For ``digits``: 5 random splits of the scikit-learn digits training set
(900 train / 357 validation), uniform-noise images as OOD, scores averaged over the splits.

Rule: among the candidates whose validation ECE is at most the deterministic network's, the
one with the highest epistemic OOD AUROC (calibration first, then uncertainty quality).
Everything else (architecture, epochs, learning rates, prior) is the experiment's config.

Run: ``python scripts/select_kl_weight.py --dataset mnist`` (about 3 min on 2 cores) or
``--dataset digits`` (seconds).
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from memcim.bayes import BayesConfig, predict, to_bayesian, train_elbo
from memcim.data import load_fashion_mnist, load_mnist
from memcim.data.sklearn_sets import load_digits
from memcim.experiments.bayes_ood import BayesOodConfig, build_mlp
from memcim.experiments.registry import stage_generator
from memcim.metrics import accuracy, ece, ood_auroc
from memcim.training import train

CANDIDATES = {"mnist": (2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02),
              "digits": (0.1, 0.03, 0.01, 0.005, 0.002)}  # fmt: skip


def _gen(*parts: object) -> torch.Generator:
    return stage_generator(0, *map(str, parts))


def _splits(dataset: str):
    """(x_train, y_train, x_val, y_val, x_ood) per split, images flattened in [0, 1]."""
    if dataset == "mnist":
        x, y, _, _ = load_mnist()
        x, y = x.reshape(len(x), -1).float(), y.long()
        perm = torch.randperm(len(y), generator=_gen("split"))
        ood = load_fashion_mnist().x_train[:10_000]
        yield x[perm[:50_000]], y[perm[:50_000]], x[perm[50_000:]], y[perm[50_000:]], \
            ood.reshape(len(ood), -1).float()  # fmt: skip
        return
    for split in range(5):
        d = load_digits(seed=split)
        x, y = d.x_train.float(), d.y_train.long()
        perm = torch.randperm(len(y), generator=_gen("split", split))
        tr, va = perm[:900], perm[900:]
        yield x[tr], y[tr], x[va], y[va], torch.rand(len(va), x.shape[1], generator=_gen(split))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tuple(CANDIDATES), default="mnist")
    args = parser.parse_args()
    config = BayesOodConfig() if args.dataset == "mnist" else BayesOodConfig.quick()
    scores: dict[object, list[tuple[float, ...]]] = {}
    for i, (x, y, xv, yv, xo) in enumerate(_splits(args.dataset)):
        det = build_mlp(x.shape[1], config.hidden, 10, _gen("det_init", i))
        train(det, x, y, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
              generator=_gen("det_train", i), progress=False)  # fmt: skip
        with torch.no_grad():
            p = torch.softmax(det.eval()(xv), -1)
        scores.setdefault("deterministic", []).append((accuracy(p, yv), ece(p, yv), float("nan")))
        for kl in CANDIDATES[args.dataset]:
            bnn = to_bayesian(copy.deepcopy(det), config=BayesConfig(
                prior_sigma=config.prior_sigma, sigma_init=config.sigma_init, seed=1))  # fmt: skip
            train_elbo(bnn, x, y, epochs=config.bnn_epochs, lr=config.bnn_lr,
                       batch_size=config.batch_size, generator=_gen("bnn_train", i),
                       kl_weight=kl, progress=False)  # fmt: skip
            gen = _gen("eval", i)
            kw = {"samples": config.samples, "generator": gen, "batch_size": 1000}
            pin, pout = predict(bnn, xv, **kw), predict(bnn, xo, **kw)
            scores.setdefault(kl, []).append(
                (
                    accuracy(pin.mean, yv),
                    ece(pin.mean, yv),
                    ood_auroc(pin.epistemic, pout.epistemic),
                )
            )
            print(f"split {i} kl_weight {kl:g}: {scores[kl][-1]}", flush=True)
    mean = {k: [statistics.fmean(col) for col in zip(*v, strict=True)] for k, v in scores.items()}
    print(
        f"\n{'kl_weight':>14}  {'val accuracy':>12}  {'val ECE':>8}  {'val AUROC (epistemic)':>22}"
    )
    for k, (acc, cal, auroc) in mean.items():
        print(f"{k!s:>14}  {100 * acc:11.2f}%  {cal:8.4f}  {auroc:22.3f}")
    det_ece = mean["deterministic"][1]
    ok = [k for k in CANDIDATES[args.dataset] if mean[k][1] <= det_ece]
    if not ok:
        print("\nno candidate is as well calibrated as the deterministic network")
        return
    best = max(ok, key=lambda k: mean[k][2])
    print(f"\nselected kl_weight = {best:g} (validation ECE {mean[best][1]:.4f} <= "
          f"{det_ece:.4f} deterministic, AUROC {mean[best][2]:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
