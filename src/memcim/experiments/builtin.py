"""Imports every built-in experiment module, which registers it."""

from memcim.experiments import bayes_ood, hwa_drift, ir_drop, mvm_error  # noqa: F401
