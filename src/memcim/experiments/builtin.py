"""Imports every built-in experiment module, which registers it."""

from memcim.experiments import (  # noqa: F401
    bayes_ood,
    energy_batch,
    energy_bayes,
    energy_movement,
    hwa_drift,
    hybrid_mnist,
    ir_drop,
    maml_omniglot,
    maml_sinusoid,
    mcmc_cancer,
    mesu,
    metaplastic,
    mvm_error,
    risk_rl,
    sensor_fusion,
    system_chiplets,
)
