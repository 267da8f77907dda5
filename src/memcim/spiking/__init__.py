"""Spiking front ends: event encoders of images (:mod:`memcim.spiking.encoding`).

- :func:`rate`, :func:`latency`: rate and latency codes of MNIST-family images.
- :func:`saccades`: ON / OFF events of an image moved along small translations.
"""

from memcim.spiking.encoding import SACCADE_PATH, latency, rate, saccades

__all__ = ["SACCADE_PATH", "latency", "rate", "saccades"]
