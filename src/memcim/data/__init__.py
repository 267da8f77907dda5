"""Datasets as plain tensors: MNIST-family archives from ``.npz`` files.

Nothing here depends on the rest of memcim except :class:`memcim.ConfigError`.
"""

from memcim.data.mnist import MnistData, default_data_dir, load_mnist

__all__ = ["MnistData", "default_data_dir", "load_mnist"]
