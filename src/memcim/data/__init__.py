"""Datasets as plain tensors, and the task builders of the Bayesian / continual / meta experiments.

Loaders (images float32 in [0, 1], labels int64; files from :func:`default_data_dir`, i.e.
``$MEMCIM_DATA_DIR`` or the shared data folder, unless a path is given):

- :func:`load_mnist`, :func:`load_fashion_mnist`: Keras-style ``.npz`` or the original IDX
  files (raw or gzip; :func:`read_idx` / :func:`write_idx`).
- :func:`load_omniglot`: ``omniglot_small.npz``, background and evaluation splits.
- :func:`load_digits`, :func:`load_breast_cancer`: scikit-learn's embedded sets with a seeded,
  stratified train/test split and train-only standardisation.

Task builders (pure tensor functions; randomness only from an explicit ``torch.Generator``):

- :func:`permuted_tasks` (permuted-MNIST), :func:`split_tasks` (split-MNIST),
- :func:`ood_pair` (in- vs out-of-distribution test sets),
- :func:`gaussian_corruption` (noisy inputs), :func:`pixel_flip` (flipped pixels),
- :class:`EpisodeSampler` (N-way K-shot episodes, optional 90° rotations, batched),
- :class:`SinusoidTasks` (Finn et al.'s sinusoid regression tasks, batched).

Nothing here depends on the rest of memcim except :class:`memcim.ConfigError` and the private
``memcim._corruption`` (shared with ``memcim.metrics``).
"""

from memcim._corruption import gaussian_corruption
from memcim.data.corruption import pixel_flip
from memcim.data.episodes import Episode, EpisodeSampler
from memcim.data.idx import read_idx, write_idx
from memcim.data.mnist import MnistData, default_data_dir, load_fashion_mnist, load_mnist
from memcim.data.omniglot import OmniglotData, OmniglotSplit, load_omniglot
from memcim.data.ood import OodPair, ood_pair
from memcim.data.sinusoid import SinusoidBatch, SinusoidTasks
from memcim.data.sklearn_sets import TabularData, load_breast_cancer, load_digits
from memcim.data.tasks import PermutedTasks, permuted_tasks, split_tasks

__all__ = [
    "Episode",
    "EpisodeSampler",
    "MnistData",
    "OmniglotData",
    "OmniglotSplit",
    "OodPair",
    "PermutedTasks",
    "SinusoidBatch",
    "SinusoidTasks",
    "TabularData",
    "default_data_dir",
    "gaussian_corruption",
    "load_breast_cancer",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_omniglot",
    "ood_pair",
    "permuted_tasks",
    "pixel_flip",
    "read_idx",
    "split_tasks",
    "write_idx",
]
