"""Training: the one fit loop (``loop``) and each model type's steps (``steps``).

``fit``, ``read_events`` and friends are re-exported here, so
``from brainlab.training import fit, read_events`` keeps working.
"""

from brainlab.training.loop import (EVENTS_NAME, TRAIN_STATE_NAME, EventLog, fit, read_events,
                                    scalar_metrics, seed_everything)
from brainlab.training.steps import build_model

__all__ = ["EVENTS_NAME", "TRAIN_STATE_NAME", "EventLog", "build_model", "fit", "read_events",
           "scalar_metrics", "seed_everything"]
