"""``python -m brainlab bench explorer``: speed of the explorer's analyses and paths.

Measured in one process on the default cohort and the checkpoints a page picks:
- projections of 1113 points: PCA, UMAP cold (first fit, JIT) vs warm (later fits);
- GAN interpolation: a 16-frame walk (one batch, bf16 autocast where the CPU has it)
  vs the same frames in the model's precision and one frame per call (baselines);
- the full probe table: every representation (raw MRI, MRI-AE, raw morphometry,
  morph-AE, GAN encoder) x sex/age x 4 models, 5-fold, rows on 2 processes; the
  features come from the result store (computed once, timed when they are);
- the Classifiers page: 64 GAN samples + the real-vs-synthetic comparison;
- reading a stored result back (what a page pays once ``warm`` has run).
Goals (issue 9 goal 6, issue 5): probe table <= 20 s, UMAP warm <= 3 s, Classifiers
<= 5 s; <= 50 ms per frame, 16 frames <= 0.5 s. The load average is printed with
the figures: on a shared machine every absolute figure scales with it.
"""

from __future__ import annotations

import time

import numpy as np


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


def run(preset: str = "hcp-ya") -> dict:
    """Measure the explorer's speed figures; returns seconds and ratios."""
    import torch

    from brainlab.analysis.latents import morphometry_features
    from brainlab.analysis.projections import project
    from brainlab.data import load

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cohort = load(preset)
    features = morphometry_features(cohort)
    result: dict = {"preset": preset, "n_subjects": len(cohort), "n_features": features.shape[1]}
    result["pca_s"], _ = _timed(project, features, method="pca", n_components=2)
    result["umap_cold_s"], _ = _timed(project, features, method="umap", n_components=2, seed=0)
    result["umap_warm_s"], _ = _timed(project, features, method="umap", n_components=2, seed=1)
    result["umap_cold_over_warm"] = result["umap_cold_s"] / result["umap_warm_s"]
    result.update(_interpolation_figures(cohort))
    result.update(_analysis_figures(cohort))
    result["load_average_end"] = _load_average()
    return result


def _load_average() -> float | None:
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _analysis_figures(cohort) -> dict:
    """Probe table, Classifiers comparison and store reads on ``cohort``."""
    import tempfile

    from brainlab.analysis import derived_results
    from brainlab.analysis.latent_maps import REPRESENTATIONS, available_representations
    from brainlab.analysis.probe_runs import probe_labels
    from brainlab.analysis.probes import probe_table, reduce_wide_features
    from brainlab.errors import BrainlabInputError
    from brainlab.result_store import ResultStore

    figures: dict = {"load_average_start": _load_average()}
    checkpoints = derived_results.default_checkpoints(cohort)
    features, latents_s = {}, 0.0
    skipped = []
    for key in available_representations(cohort, checkpoints):
        rep = REPRESENTATIONS[key]
        try:
            seconds, features[rep.probe_name] = _timed(
                derived_results.latents, cohort, key,
                checkpoints.get(rep.model_type) if rep.model_type else None)
        except BrainlabInputError:  # a shipped checkpoint older than its architecture
            skipped.append(rep.probe_name)
            continue
        latents_s += seconds
    figures["probe_skipped"] = skipped
    figures["probe_representations"] = list(features)
    from brainlab.analysis.projections import project, umap_input

    if "raw MRI" in features:  # the voxel map's PCA-50, once per cohort and process
        figures["umap_voxel_reduction_s"], _ = _timed(umap_input, features["raw MRI"], 0)
    for name in ("mri-ae latent", "raw MRI"):
        if name in features:  # a page's UMAP of a latent / of voxels (PCA-50 first), warm
            figures[f"umap_warm_{name.replace(' ', '_').replace('-', '_')}_s"], _ = _timed(
                project, features[name], method="umap", n_components=2, seed=0)
    figures["latents_s"] = latents_s  # ~0 when already in the store
    if "raw MRI" in features:
        figures["voxel_reduction_s"], _ = _timed(reduce_wide_features, features["raw MRI"])
    figures["probe_table_s"], table = _timed(probe_table, features, probe_labels(cohort),
                                             n_splits=5, n_jobs=2)
    figures["probe_rows"] = len(table)
    figures["probe_over_goal"] = figures["probe_table_s"] / 20.0
    gan, classifier = checkpoints.get("gan"), checkpoints.get("sex-clf")
    with tempfile.TemporaryDirectory(prefix="brainlab-bench-") as folder:
        store = ResultStore(folder)
        try:
            if gan is not None and classifier is not None:
                gan.model, classifier.model  # loaded before the clock starts, as on a warm page
        except BrainlabInputError as error:  # shipped checkpoints older than the architecture
            figures["classifiers_note"] = str(error)[:200]
            gan = classifier = None
        if gan is not None and classifier is not None and cohort.images is not None:
            derived_results.gan_samples(gan, 2, seed=99, store=store)  # kernel warm-up
            figures["classifiers_s"], _ = _timed(derived_results.real_vs_synthetic, cohort,
                                                 classifier, gan, store=store)
            figures["classifiers_over_goal"] = figures["classifiers_s"] / 5.0
            figures["classifiers_stored_read_s"], _ = _timed(
                derived_results.real_vs_synthetic, cohort, classifier, gan,
                store=ResultStore(folder))
        store.put(derived_results.probe_table_key(cohort, "voxels"), table)
        figures["probe_stored_read_s"], _ = _timed(
            ResultStore(folder).get, derived_results.probe_table_key(cohort, "voxels"))
    return figures


def _interpolation_figures(cohort, n_frames: int = 16) -> dict:
    from brainlab.analysis.gan_walks import render_frames, seed_latent, walk
    from brainlab.analysis.interpolation import interpolation_path
    from brainlab.checkpoints import available, load_checkpoint
    from brainlab.errors import BrainlabInputError

    gans = [entry for entry in available() if entry.get("model_type") == "gan"]
    if not gans:
        return {"interpolation": "no GAN checkpoint; train one with `python -m brainlab train gan`"}
    try:
        gan, _ = load_checkpoint(gans[0]["path"])
        note = None
    except BrainlabInputError as error:  # e.g. a shipped card older than the architecture
        from brainlab.models.gan import LatentGan

        # Decode time does not depend on the weights: time an untrained GAN of the default
        # config on the cohort's grid, and say so.
        gan, note = LatentGan.from_cohort(cohort).eval(), f"untrained default GAN ({error})"
    path = interpolation_path(seed_latent(gan, 0), seed_latent(gan, 1), n_frames)
    render_frames(gan, path[:2])  # warm-up: first call pays allocator and kernel setup
    render_frames(gan, path[:2], bf16="auto")
    fp32_s, _ = _timed(render_frames, gan, path)  # the model's own precision (before)
    batched_s, _ = _timed(walk, gan, path[0], path[-1], n_frames)  # what a walk renders
    single_s, _ = _timed(lambda: [render_frames(gan, path[i:i + 1]) for i in range(n_frames)])
    return {
        "frames": n_frames, "frames_model_note": note,
        "frames_batched_s": batched_s,
        "ms_per_frame_batched": 1000 * batched_s / n_frames,
        "frames_batched_fp32_s": fp32_s,
        "frames_one_by_one_s": single_s,
        "batched_speedup": single_s / batched_s,
        "walk_over_fp32": fp32_s / batched_s,
    }


def format_report(result: dict) -> str:
    """Human-readable lines of the figures from ``run``."""
    lines = [f"explorer benchmark on {result['preset']} ({result['n_subjects']} subjects, "
             f"{result['n_features']} features)"]
    lines.append(f"  PCA 2D:            {result['pca_s']:.3f} s")
    lines.append(f"  UMAP 2D cold:      {result['umap_cold_s']:.2f} s (first fit, numba JIT)")
    lines.append(f"  UMAP 2D warm:      {result['umap_warm_s']:.2f} s  (target <= 3 s; "
                 f"cold/warm {result['umap_cold_over_warm']:.1f}x)")
    if result.get("frames_model_note"):
        lines.append(f"  GAN walk timed on an {result['frames_model_note'][:160]}")
    if "frames_batched_s" in result:
        lines.append(f"  GAN walk, {result['frames']} frames batched: {result['frames_batched_s']:.3f} s "
                     f"({result['ms_per_frame_batched']:.1f} ms/frame; target <= 50 ms, 16 <= 0.5 s)")
        lines.append(f"  same frames batched in the model's precision (before): "
                     f"{result['frames_batched_fp32_s']:.3f} s (walk {result['walk_over_fp32']:.1f}x faster)")
        lines.append(f"  one frame per call: {result['frames_one_by_one_s']:.3f} s "
                     f"(batched {result['batched_speedup']:.1f}x faster)")
    else:
        lines.append(f"  interpolation: {result['interpolation']}")
    for name in ("mri_ae_latent", "raw_MRI"):
        if f"umap_warm_{name}_s" in result:
            lines.append(f"  UMAP 2D warm, {name.replace('_', ' ')}: {result[f'umap_warm_{name}_s']:.2f} s "
                         "(target <= 3 s)")
    if "umap_voxel_reduction_s" in result:
        lines.append(f"    raw MRI's PCA-50 before UMAP (once per cohort, then cached): "
                     f"{result['umap_voxel_reduction_s']:.2f} s")
    if "probe_table_s" in result:
        lines.append(f"  full probe table:  {result['probe_table_s']:.1f} s for {result['probe_rows']} "
                     f"rows ({len(result['probe_representations'])} representations x sex/age, 5-fold, "
                     f"2 processes; goal <= 20 s, {result['probe_over_goal']:.2f}x the goal)")
        if result.get("probe_skipped"):
            lines.append(f"    not in the table (checkpoint does not load): {', '.join(result['probe_skipped'])}")
        if "voxel_reduction_s" in result:
            lines.append(f"    of which the once-per-table voxel PCA: {result['voxel_reduction_s']:.1f} s")
        lines.append(f"    features: {result['latents_s']:.1f} s (from the result store when warm)")
        lines.append(f"    stored probe table read back: {1000 * result['probe_stored_read_s']:.0f} ms")
    if "classifiers_s" in result:
        lines.append(f"  Classifiers page (64 GAN samples + comparison): {result['classifiers_s']:.1f} s "
                     f"(goal <= 5 s, {result['classifiers_over_goal']:.2f}x the goal); "
                     f"stored: {1000 * result['classifiers_stored_read_s']:.0f} ms")
    if result.get("classifiers_note"):
        lines.append(f"  Classifiers page: not timed ({result['classifiers_note']})")
    if result.get("load_average_start") is not None:
        lines.append(f"  load average (1 min) {result['load_average_start']} at the analyses, "
                     f"{result.get('load_average_end')} at the end (2 cores: above 2 means "
                     "every figure above is inflated)")
    return "\n".join(lines)
