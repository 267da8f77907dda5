"""memcim: memristive compute-in-memory simulation with PyTorch.

Subpackages follow the data flow devices -> crossbar -> nn/bayes -> learning -> experiments;
see ``DESIGN.md``. Conductances are in microsiemens (``*_us``), times in seconds (``*_s``),
energies in picojoules (``*_pj``).
"""

from memcim._errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__"]
