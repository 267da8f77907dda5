"""Bayesian continual learning and forgetting: MESU (Bonnet et al. [23]).

- :class:`MESU`: the update of each weight's μ and σ with a memory window N and a prior, as a
  ``torch.optim.Optimizer`` over the layers of :mod:`memcim.bayes`; :func:`mc_cost`,
  :func:`mesu_step`.
- :func:`bayesian_mlp`, :func:`deterministic_mlp`: the authors' permuted-MNIST networks.
- :class:`FusedMESULearner`: MESULearner's batch-1 local-draw step without autograd (several
  times faster; optionally through ``torch.compile``).
- :class:`MESULearner`, :class:`SGDLearner` with :class:`OnlineEWC` or
  :class:`SynapticIntelligence`: batch-1 learners, run task after task by :func:`run_stream`,
  which fills the GEM accuracy matrix.
- :func:`ood_scores`: predictive, aleatoric and epistemic entropies (nats) and their OOD AUROC.
- :func:`on_devices`: the trained network with its weight samples drawn by devices on tiles,
  predicted like the software one by :class:`SampledPredictor`;
  :class:`ProgrammedPosterior`: μ and σ kept on RRAM during training, writes counted.
"""

from memcim.learning.mesu.baselines import (
    OnlineEWC,
    Regulariser,
    SynapticIntelligence,
    empirical_fisher,
)
from memcim.learning.mesu.devices import ProgrammedPosterior, on_devices
from memcim.learning.mesu.fused import FusedMESULearner
from memcim.learning.mesu.models import bayesian_mlp, deterministic_mlp
from memcim.learning.mesu.optim import MESU, mc_cost, mesu_step
from memcim.learning.mesu.stream import (
    Learner,
    MESULearner,
    Predictor,
    SampledPredictor,
    SGDLearner,
    StreamResult,
    accuracy,
    ood_scores,
    run_stream,
    sampled_probs,
    save_atomic,
    scores_from_probs,
    train_epochs,
)

__all__ = [
    "MESU",
    "FusedMESULearner",
    "Learner",
    "MESULearner",
    "OnlineEWC",
    "Predictor",
    "ProgrammedPosterior",
    "Regulariser",
    "SGDLearner",
    "SampledPredictor",
    "StreamResult",
    "SynapticIntelligence",
    "accuracy",
    "bayesian_mlp",
    "deterministic_mlp",
    "empirical_fisher",
    "mc_cost",
    "mesu_step",
    "on_devices",
    "ood_scores",
    "run_stream",
    "sampled_probs",
    "save_atomic",
    "scores_from_probs",
    "train_epochs",
]
