"""``python -m brainlab bench explorer``: speed of the explorer's interactive paths.

Measured in one process on the default cohort and shipped models:
- projections of 1113 points: PCA, UMAP cold (first fit, JIT) vs warm (later fits);
- GAN interpolation: 16 frames rendered batched vs one frame per call (baseline);
- probe table on raw morphometry.
Targets (issue 5): UMAP warm <= 3 s, <= 50 ms per frame, 16 frames <= 0.5 s.
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
    result.update(_interpolation_figures())
    return result


def _interpolation_figures(n_frames: int = 16) -> dict:
    from brainlab.analysis.gan_walks import render_frames, seed_latent
    from brainlab.analysis.interpolation import interpolation_path
    from brainlab.checkpoints import available, load_checkpoint

    gans = [entry for entry in available() if entry.get("model_type") == "gan"]
    if not gans:
        return {"interpolation": "no GAN checkpoint; train one with `python -m brainlab train gan`"}
    gan, _ = load_checkpoint(gans[0]["path"])
    path = interpolation_path(seed_latent(gan, 0), seed_latent(gan, 1), n_frames)
    render_frames(gan, path[:2])  # warm-up: first call pays allocator and kernel setup
    batched_s, _ = _timed(render_frames, gan, path)
    single_s, _ = _timed(lambda: [render_frames(gan, path[i:i + 1]) for i in range(n_frames)])
    return {
        "frames": n_frames,
        "frames_batched_s": batched_s,
        "ms_per_frame_batched": 1000 * batched_s / n_frames,
        "frames_one_by_one_s": single_s,
        "batched_speedup": single_s / batched_s,
    }


def format_report(result: dict) -> str:
    """Human-readable lines of the figures from ``run``."""
    lines = [f"explorer benchmark on {result['preset']} ({result['n_subjects']} subjects, "
             f"{result['n_features']} features)"]
    lines.append(f"  PCA 2D:            {result['pca_s']:.3f} s")
    lines.append(f"  UMAP 2D cold:      {result['umap_cold_s']:.2f} s (first fit, numba JIT)")
    lines.append(f"  UMAP 2D warm:      {result['umap_warm_s']:.2f} s  (target <= 3 s; "
                 f"cold/warm {result['umap_cold_over_warm']:.1f}x)")
    if "frames_batched_s" in result:
        lines.append(f"  GAN walk, {result['frames']} frames batched: {result['frames_batched_s']:.3f} s "
                     f"({result['ms_per_frame_batched']:.1f} ms/frame; target <= 50 ms, 16 <= 0.5 s)")
        lines.append(f"  one frame per call: {result['frames_one_by_one_s']:.3f} s "
                     f"(batched {result['batched_speedup']:.1f}x faster)")
    else:
        lines.append(f"  interpolation: {result['interpolation']}")
    return "\n".join(lines)
