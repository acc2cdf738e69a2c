"""Cohorts: the phantom generator, loaders for real data, and the Cohort type."""

from brainlab.data.cohort import Cohort, ImageArray, Split
from brainlab.data.sources import DEFAULT_PRESET, PRESET_NAMES, load

__all__ = ["Cohort", "ImageArray", "Split", "load", "PRESET_NAMES", "DEFAULT_PRESET"]
