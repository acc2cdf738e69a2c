"""Frozen configuration dataclasses, stored verbatim in caches and model cards.

Each field carries one comment saying what it means and, where useful, why this
default. Sections: phantom cohort, models, training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields  # noqa: F401  (re-exported helpers)


def config_to_dict(config) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return asdict(config)


def config_from_dict(cls, values: dict):
    """Rebuild ``cls`` from a dict, ignoring unknown keys and restoring tuples."""
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key in known:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


# ---- phantom cohort -------------------------------------------------------


# ---- models ---------------------------------------------------------------


# ---- training -------------------------------------------------------------
