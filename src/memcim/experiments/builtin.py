"""Imports every built-in experiment module, which registers it."""

from memcim.experiments import mvm_error  # noqa: F401
