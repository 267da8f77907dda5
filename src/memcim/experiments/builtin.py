"""Imports every built-in experiment module, which registers it."""

from memcim.experiments import hwa_drift, mvm_error  # noqa: F401
