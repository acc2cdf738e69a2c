"""Trainable models and the registry from ``model_type`` to class.

Classes are named as "module:Class" strings and imported on first use, so one
missing or broken model module never breaks the others. To add a model type, add
one line to ``MODEL_CLASSES``.
"""

from __future__ import annotations

import importlib

from brainlab.errors import BrainlabInputError

MODEL_CLASSES: dict[str, str] = {
    "mri-ae": "brainlab.models.autoencoder:MriAutoencoder",
    "morph-ae": "brainlab.models.morphometry:MorphometryAutoencoder",
    "sex-clf": "brainlab.models.classifiers:SexClassifier",
    "age-model": "brainlab.models.classifiers:BrainAgeModel",
    "gan": "brainlab.models.gan:LatentGan",
    "dcgan-seed": "brainlab.models.seed_reference:SeedDcgan",
    "encoder": "brainlab.models.encoder:LatentEncoder",
}


def model_class(model_type: str):
    """The ``BrainlabModel`` subclass registered for ``model_type``."""
    if model_type not in MODEL_CLASSES:
        raise BrainlabInputError(
            f"unknown model type {model_type!r}; expected one of {sorted(MODEL_CLASSES)}")
    module_name, class_name = MODEL_CLASSES[model_type].split(":")
    return getattr(importlib.import_module(module_name), class_name)
