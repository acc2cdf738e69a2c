"""Trainable models: ``nn.Module``s with forward, encode/decode, sampling and losses.

A leaf layer: modules here import only torch, numpy, ``models/blocks.py``,
``models/base.py``, ``config``, ``errors`` and ``precision``. The table from
``model_type`` to class (and everything else about a type) is
``brainlab.registry.MODEL_TYPES``.
"""
