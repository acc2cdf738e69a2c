"""Mean brains of a cohort per sex and per age bin, and the sex and age contrasts.

The Cohort page shows these; they are plain functions so the CLI and tests can use
them too. Cells are sex × age bin, averaged once; the per-sex and per-bin means are
pooled from the cells weighted by their counts.
"""

from __future__ import annotations

import numpy as np

from brainlab.analysis.means import difference_map, group_mean_images
from brainlab.data import Cohort
from brainlab.errors import BrainlabInputError


def age_bin_label(cohort: Cohort, code: int) -> str:
    """The cohort's label for ordinal age bin ``code`` (``"bin 3"`` when it has none)."""
    labels = cohort.age_bin_labels or ()
    return str(labels[code]) if 0 <= code < len(labels) else f"bin {code}"


def sex_and_age_means(cohort: Cohort, chunk: int = 64) -> dict:
    """Mean brains by sex, by age bin and by both.

    Returns ``{"sex": {"F": vol, "M": vol}, "age_bin": {label: vol},
    "sex_by_age_bin": {"<bin label>|<sex>": vol}, "age_bin_counts": {label: n},
    "sex_counts": {sex: n}}`` with (D, H, W) float32 volumes; bins in ascending order.
    """
    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images (table-only); "
                                 "expected a cohort with brain images")
    table = cohort.table
    bins = table["age_bin"].astype(int).to_numpy()
    sexes = table["sex"].astype(str).to_numpy()
    cells = group_mean_images(cohort.images, np.char.add(np.char.add(sexes, "|"), bins.astype(str)),
                              chunk=chunk)
    counts = {label: int(np.sum((sexes == label.split("|")[0]) & (bins == int(label.split("|")[1]))))
              for label in cells}

    def pooled(labels: list[str]) -> np.ndarray:
        total = sum(counts[label] for label in labels)
        return sum(cells[label] * (counts[label] / total) for label in labels).astype(np.float32)

    by_sex = {sex: pooled([c for c in cells if c.startswith(sex + "|")])
              for sex in ("F", "M") if any(c.startswith(sex + "|") for c in cells)}
    codes = sorted(set(bins.tolist()))
    by_bin = {age_bin_label(cohort, code): pooled([c for c in cells if c.endswith(f"|{code}")])
              for code in codes}
    by_both = {f"{age_bin_label(cohort, int(c.split('|')[1]))}|{c.split('|')[0]}": v
               for c, v in cells.items()}
    return {"sex": by_sex, "age_bin": by_bin, "sex_by_age_bin": by_both,
            "age_bin_counts": {age_bin_label(cohort, code): int((bins == code).sum()) for code in codes},
            "sex_counts": {sex: int((sexes == sex).sum()) for sex in by_sex}}


def sex_contrast(means: dict) -> np.ndarray | None:
    """Mean male minus mean female brain, or None when one sex is absent."""
    males, females = means["sex"].get("M"), means["sex"].get("F")
    return None if males is None or females is None else difference_map(males, females)


def age_contrast(means: dict) -> tuple[str, str, np.ndarray] | None:
    """``(oldest, youngest, map)``: oldest minus youngest bin, within each sex then averaged.

    The oldest and youngest bins can hold very different shares of women (HCP: 9/13
    vs 84/231), so the contrast is taken within each sex, or sex would pose as ageing.
    None with fewer than two bins or no sex present in both.
    """
    bins = list(means["age_bin"])
    if len(bins) < 2:
        return None
    old, young = bins[-1], bins[0]
    cells = means["sex_by_age_bin"]
    within = [difference_map(cells[f"{old}|{sex}"], cells[f"{young}|{sex}"])
              for sex in ("F", "M") if f"{old}|{sex}" in cells and f"{young}|{sex}" in cells]
    if not within:
        return None
    return old, young, np.mean(within, axis=0).astype(np.float32)


def age_contrast_problem(means: dict) -> str:
    """Why ``age_contrast(means)`` is None, in one sentence naming the bins."""
    bins = list(means["age_bin"])
    if len(bins) < 2:
        return (f"No age effect: every subject is in one age bin ({bins[0] if bins else 'none'}); "
                "expected at least two bins.")
    cells = means["sex_by_age_bin"]

    def sexes(label: str) -> str:
        present = [{"F": "women", "M": "men"}[s] for s in ("F", "M") if f"{label}|{s}" in cells]
        return " and ".join(present) or "nobody"

    return (f"No age effect: the oldest bin ({bins[-1]}) holds only {sexes(bins[-1])} and the "
            f"youngest ({bins[0]}) only {sexes(bins[0])}, so ageing cannot be told apart from sex; "
            "a cohort with both sexes in its youngest and oldest bins shows it.")
