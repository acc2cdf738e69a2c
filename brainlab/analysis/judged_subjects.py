"""Which subjects of a cohort a checkpoint can be judged on without flattering it.

On the cohort a model was trained on, that is the test split of the model's own
split seed. On any other cohort (an upload, another preset with the same grid) the
model saw none of the subjects, so every subject is fair: a five-brain upload is
judged on all five brains instead of its one test-split brain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainlab.data import Cohort


@dataclass(frozen=True)
class JudgedSubjects:
    """Row positions to judge a model on, and why those."""

    indices: np.ndarray        # (n,) int64 row positions in the cohort
    trained_here: bool         # True when the model was trained on this cohort
    description: str           # one sentence for the page


def judged_subjects(cohort: Cohort, card: dict) -> JudgedSubjects:
    """The test split when ``card`` was trained on ``cohort`` (same fingerprint), else all."""
    trained = card.get("cohort", {}) if card else {}
    if trained.get("fingerprint") == cohort.fingerprint:
        split_seed = int(trained.get("split_seed", 0))
        indices = np.asarray(cohort.split(split_seed).test, dtype=np.int64)
        return JudgedSubjects(indices, True, f"{len(indices)} held-out subjects (test split) "
                              "that the model never saw in training")
    indices = np.arange(len(cohort), dtype=np.int64)
    name = trained.get("name", "another cohort")
    return JudgedSubjects(indices, False, f"all {len(indices)} subjects: the model was trained "
                          f"on cohort {name}, not this one, so it saw none of them")


def training_indices(cohort: Cohort, card: dict) -> np.ndarray | None:
    """The model's training subjects in ``cohort``, or None when it was trained elsewhere."""
    trained = card.get("cohort", {}) if card else {}
    if trained.get("fingerprint") != cohort.fingerprint:
        return None
    return np.asarray(cohort.split(int(trained.get("split_seed", 0))).train, dtype=np.int64)


def fitting_subjects(cohort: Cohort, card: dict) -> np.ndarray:
    """Subjects to fit something on the model's behalf (e.g. latent directions): its
    training subjects in ``cohort``, or every subject when it was trained elsewhere."""
    train = training_indices(cohort, card)
    return np.arange(len(cohort), dtype=np.int64) if train is None else train
