"""Augmentation policies and how to find them (paper section 2.1).

* :class:`SubPolicy`, :class:`Policy`, :class:`PolicySet`: callables
  ``(image, labels, generator) -> (image, labels)``; a policy set saves to and loads from JSON.
* :class:`GreedyPolicySearch`: Greedy AutoAugment over the op space with any scorer.
* Scorers (lower is better): :class:`WAEScorer` (a trained Wasserstein AutoEncoder, the
  paper's choice), :class:`StatsScorer` (no training), or any callable
  ``(original, augmented) -> float``.
* :func:`fit_wae` / :class:`WAE`: the WAE-MMD model, saved as one file.

See ``docs/policy.md`` for the objective and the choices made where the paper is vague.
"""

from iaaa.policy.batch import ObjectBatch, prepare_objects
from iaaa.policy.policy import Policy, PolicySet, SubPolicy
from iaaa.policy.scorers import EmbeddingScorer, Scorer, StatsScorer, WAEScorer
from iaaa.policy.search import Evaluation, GreedyPolicySearch, OpChoice, resolve_space
from iaaa.policy.wae import WAE, WAEConfig, fit_wae, imq_kernel, load_wae, mmd_unbiased

__all__ = [
    "SubPolicy",
    "Policy",
    "PolicySet",
    "GreedyPolicySearch",
    "Evaluation",
    "OpChoice",
    "resolve_space",
    "Scorer",
    "EmbeddingScorer",
    "StatsScorer",
    "WAEScorer",
    "WAE",
    "WAEConfig",
    "fit_wae",
    "load_wae",
    "imq_kernel",
    "mmd_unbiased",
    "ObjectBatch",
    "prepare_objects",
]
