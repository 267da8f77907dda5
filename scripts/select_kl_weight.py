"""Select the ``kl_weight`` (and, with ``--bnn-epochs``, the ELBO epochs) of ``bayes-ood`` on a
validation split.

The test sets are never touched. For ``mnist``: train on 50 000 MNIST training images, score on
the other 10 000 (in distribution) and on the first 10 000 Fashion-MNIST *training* images (out
of distribution). For ``digits``: 5 random splits of the scikit-learn digits training set
(900 train / 357 validation), uniform-noise images as OOD, scores averaged over the splits.

Rule: among the candidates whose validation ECE is at most the deterministic network's, the
one with the highest epistemic OOD AUROC (calibration first, then uncertainty quality).
Everything else (architecture, deterministic epochs, learning rates, prior) is the experiment's
config; ``--bnn-epochs 5 10 20`` crosses the KL weights with those ELBO epochs.

Run: ``python scripts/select_kl_weight.py --dataset mnist --bnn-epochs 5 10 20`` (about 25 min
on 2 cores; about 10 min for the config's epochs alone) or ``--dataset digits`` (seconds).
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
    parser.add_argument(
        "--bnn-epochs",
        type=int,
        nargs="+",
        default=None,
        help="ELBO epochs to select from as well (default: the config's)",
    )
    args = parser.parse_args()
    config = BayesOodConfig() if args.dataset == "mnist" else BayesOodConfig.quick()
    epochs = tuple(args.bnn_epochs or (config.bnn_epochs,))
    candidates = [(e, kl) for e in epochs for kl in CANDIDATES[args.dataset]]
    scores: dict[object, list[tuple[float, ...]]] = {}
    for i, (x, y, xv, yv, xo) in enumerate(_splits(args.dataset)):
        det = build_mlp(x.shape[1], config.hidden, 10, _gen("det_init", i))
        train(det, x, y, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
              generator=_gen("det_train", i), progress=False)  # fmt: skip
        with torch.no_grad():
            p = torch.softmax(det.eval()(xv), -1)
        scores.setdefault("deterministic", []).append((accuracy(p, yv), ece(p, yv), float("nan")))
        for n_epochs, kl in candidates:
            bnn = to_bayesian(copy.deepcopy(det), config=BayesConfig(
                prior_sigma=config.prior_sigma, sigma_init=config.sigma_init, seed=1))  # fmt: skip
            train_elbo(bnn, x, y, epochs=n_epochs, lr=config.bnn_lr,
                       batch_size=config.batch_size, generator=_gen("bnn_train", i),
                       kl_weight=kl, progress=False)  # fmt: skip
            gen = _gen("eval", i)
            kw = {"samples": config.samples, "generator": gen, "batch_size": 1000}
            pin, pout = predict(bnn, xv, **kw), predict(bnn, xo, **kw)
            scores.setdefault((n_epochs, kl), []).append(
                (
                    accuracy(pin.mean, yv),
                    ece(pin.mean, yv),
                    ood_auroc(pin.epistemic, pout.epistemic),
                )
            )
            print(f"split {i} bnn_epochs {n_epochs} kl_weight {kl:g}: "
                  f"{scores[n_epochs, kl][-1]}", flush=True)  # fmt: skip
    mean = {k: [statistics.fmean(col) for col in zip(*v, strict=True)] for k, v in scores.items()}
    head = ("(epochs, kl_weight)", "val accuracy", "val ECE", "val AUROC (epistemic)")
    print("\n" + "  ".join(f"{h:>{w}}" for h, w in zip(head, (20, 12, 8, 22), strict=True)))
    for k, (acc, cal, auroc) in mean.items():
        print(f"{k!s:>20}  {100 * acc:11.2f}%  {cal:8.4f}  {auroc:22.3f}")
    det_ece = mean["deterministic"][1]
    ok = [k for k in candidates if mean[k][1] <= det_ece]
    if not ok:
        print("\nno candidate is as well calibrated as the deterministic network")
        return
    best = max(ok, key=lambda k: mean[k][2])
    acc, cal, auroc = mean[best]
    print(f"\nselected bnn_epochs = {best[0]}, kl_weight = {best[1]:g} (validation ECE "
          f"{cal:.4f} <= {det_ece:.4f} deterministic, AUROC {auroc:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
