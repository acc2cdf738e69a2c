"""Does a generator copy its training images? Nearest-neighbour distances in voxel space.

Each generated sample's distance to its nearest training image is compared with
the same distance for held-out real images (which the generator never saw and
which are, by construction, not copies). A sample closer to a training image
than almost all held-out images are (below the 5th percentile of their
distances) is flagged as a suspected copy.

Distances are the root-mean-square voxel difference (L2 / sqrt(voxels)), so they
read on the intensity scale ([0, 1]) whatever the grid.
"""

from __future__ import annotations

import numpy as np

from brainlab.errors import BrainlabInputError

# Training images compared per block: bounds memory to chunk x voxels x 8 bytes.
REFERENCE_CHUNK = 64


def flatten_volumes(images, what: str = "images") -> np.ndarray:
    """(n, ...) volumes (array or ImageArray) -> (n, voxels) float32, checked finite."""
    array = np.asarray(images, dtype=np.float32)
    if array.ndim < 2 or len(array) == 0:
        raise BrainlabInputError(f"{what} must be a non-empty stack (n, ...); found shape {array.shape}")
    flat = array.reshape(len(array), -1)
    if not np.isfinite(flat).all():
        raise BrainlabInputError(f"{what} contain NaN or infinite values")
    return flat


def nearest_neighbour_distances(queries, reference, chunk: int = REFERENCE_CHUNK
                                ) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the RMS distance to and index of its nearest reference volume.

    ``queries`` (n, ...) is loaded whole; ``reference`` (m, ...) (an array, memmap
    or ImageArray) is read ``chunk`` volumes at a time. Returns (distances (n,),
    indices (n,) into reference).

    The search runs as float32 matrix products (||q||^2 + ||r||^2 - 2 q.r, after
    shifting both sets by the queries' mean so the products do not cancel) over the
    voxels where some volume of the block is non-zero (skull-stripped brains leave
    three quarters of the box empty); a query's energy elsewhere is added as it is.
    The winner's distance is then recomputed exactly in float64, so an exact copy
    still gives 0 and every reported distance is the true one.
    """
    q = flatten_volumes(queries, "queries")
    if isinstance(reference, (list, tuple)):
        reference = np.asarray(reference, dtype=np.float32)
    m = len(reference)
    if m == 0:
        raise BrainlabInputError("reference stack is empty; expected at least one volume")
    if chunk < 1:
        raise BrainlabInputError(f"chunk must be >= 1; found {chunk}")
    offset = q.mean(axis=0, dtype=np.float64).astype(np.float32)
    query_energy = np.einsum("ij,ij->i", q, q, dtype=np.float64)
    best = np.full(len(q), np.inf)  # approximate squared distances decide the winner
    best_exact = np.full(len(q), np.inf)
    best_index = np.zeros(len(q), dtype=np.int64)
    for start in range(0, m, chunk):
        block = flatten_volumes(reference[start:start + chunk], "reference")
        if block.shape[1] != q.shape[1]:
            raise BrainlabInputError(
                f"queries have {q.shape[1]} voxels but reference has {block.shape[1]}; "
                f"expected the same grid")
        active = np.flatnonzero((block != 0).any(axis=0))
        # Where the whole block is zero, ||q - r||^2 is the query's own energy there.
        queries_here = q[:, active]
        outside = query_energy - np.einsum("ij,ij->i", queries_here, queries_here, dtype=np.float64)
        queries_here -= offset[active]
        shifted_block = block[:, active] - offset[active]  # a copy, never the caller's array
        squared = (np.einsum("ij,ij->i", queries_here, queries_here, dtype=np.float64)[:, None]
                   + np.einsum("ij,ij->i", shifted_block, shifted_block, dtype=np.float64)
                   - 2.0 * (queries_here @ shifted_block.T).astype(np.float64)
                   + outside[:, None])
        nearest = squared.argmin(axis=1)
        nearest_squared = squared[np.arange(len(q)), nearest]
        closer = np.flatnonzero(nearest_squared < best)
        best[closer] = nearest_squared[closer]
        best_index[closer] = nearest[closer] + start
        for i in closer:  # the new winner's true distance, while its block is in memory
            difference = q[i].astype(np.float64) - block[nearest[i]]
            best_exact[i] = np.sqrt(difference @ difference)
    return best_exact / np.sqrt(q.shape[1]), best_index


def memorisation_report(generated, real_train, real_heldout, percentile: float = 5.0,
                        heldout_nearest: tuple | None = None) -> dict:
    """Nearest-training-image distances of generated samples vs held-out real images.

    Returns per-sample arrays (``generated_distances``, ``generated_nearest_train``,
    ``heldout_distances``, ``heldout_nearest_train``, ``suspected`` bool mask) and
    a summary: ``threshold`` (the ``percentile`` of held-out distances),
    ``fraction_suspected`` / ``n_suspected`` (samples below it; about
    percentile/100 is expected by chance), medians and their ratio
    (< 1: samples sit closer to the training set than new real brains do).
    """
    if not 0 < percentile < 100:
        raise BrainlabInputError(f"percentile must be in (0, 100); found {percentile}")
    generated_distances, generated_nearest = nearest_neighbour_distances(generated, real_train)
    # ``heldout_nearest``: (distances, indices) of the held-out images computed before
    # against the same ``real_train``; they do not depend on the generator.
    if heldout_nearest is None:
        heldout_nearest = nearest_neighbour_distances(real_heldout, real_train)
    heldout_distances, heldout_nearest = (np.asarray(a) for a in heldout_nearest)
    threshold = float(np.percentile(heldout_distances, percentile))
    suspected = generated_distances < threshold
    median_generated = float(np.median(generated_distances))
    median_heldout = float(np.median(heldout_distances))
    return {
        "threshold": threshold,
        "percentile": float(percentile),
        "fraction_suspected": float(suspected.mean()),
        "n_suspected": int(suspected.sum()),
        "suspected": suspected,
        "median_generated": median_generated,
        "median_heldout": median_heldout,
        "median_ratio": median_generated / median_heldout if median_heldout > 0 else float("nan"),
        "generated_distances": generated_distances,
        "generated_nearest_train": generated_nearest,
        "heldout_distances": heldout_distances,
        "heldout_nearest_train": heldout_nearest,
        "n_generated": int(len(generated_distances)),
        "n_heldout": int(len(heldout_distances)),
    }


# Light smoothing applied to every set before distances: without it the check rewards
# smoothness (a blurred unseen brain sits closer to everything than a noisy one).
MEMORISATION_SMOOTHING = 1.0
# Planted near-copies: a training brain plus this much Gaussian noise (RMS, [0, 1] scale).
PLANTED_NOISE = 0.02


def _smoothed(images, sigma: float, chunk: int = REFERENCE_CHUNK):
    """Stack smoothed with a Gaussian of ``sigma`` voxels per volume (float32); as is for 0."""
    from scipy.ndimage import gaussian_filter

    if sigma <= 0:
        return images

    class _Lazy:  # smooth blocks on demand, so a memmapped training split stays on disk
        def __init__(self, stack):
            self.stack = stack

        def __len__(self):
            return len(self.stack)

        def __getitem__(self, index):
            block = np.asarray(self.stack[index], dtype=np.float32)
            # One call for the block: sigma 0 along the stack axis leaves volumes apart.
            return gaussian_filter(block, (0.0,) + (sigma,) * (block.ndim - 1))

    return _Lazy(images)


def calibrated_memorisation(generated, real_train, real_heldout, n_planted: int = 20,
                            percentile: float = 5.0, smoothing: float = MEMORISATION_SMOOTHING,
                            planted_noise: float = PLANTED_NOISE, seed: int = 0,
                            planted=None) -> dict:
    """Copy detection against the FULL training split, calibrated two ways.

    Every set is lightly smoothed (``smoothing`` voxels), then each volume's RMS
    distance to its nearest training volume is found (all of ``real_train``,
    read in chunks). The threshold is the ``percentile`` of held-out real
    distances, so about percentile/100 of unseen real brains are flagged by
    construction. Two calibration figures sit beside the generator's
    ``fraction_flagged``:

    - ``planted_recall``: share of ``n_planted`` near-copies (training brains plus
      ``planted_noise`` Gaussian noise) that are flagged: how often a real copy is caught;
    - ``heldout_smoothed_flagged``: share of held-out brains, smoothed once more by
      1 voxel, that are flagged: should stay near percentile/100 (the check must not
      flag smoothness).

    ``planted=(images, train_indices)`` replaces the noisy copies with copies as the
    model would render them (e.g. the autoencoder's reconstructions of those
    training brains: what a decoder that memorised them would output); a copy counts
    as found when it is flagged and its nearest training brain is the one it copies.
    """
    if not 0 < percentile < 100:
        raise BrainlabInputError(f"percentile must be in (0, 100); found {percentile}")
    if n_planted < 1:
        raise BrainlabInputError(f"n_planted must be >= 1; found {n_planted}")
    m = len(real_train)
    if m == 0:
        raise BrainlabInputError("real_train is empty; expected the training split")
    rng = np.random.default_rng(seed)
    if planted is None:
        planted_index = np.sort(rng.choice(m, min(n_planted, m), replace=False))
        planted = np.asarray(real_train[planted_index], dtype=np.float32)
        planted = np.clip(planted + rng.normal(0.0, planted_noise, planted.shape), 0.0, 1.0
                          ).astype(np.float32)
    else:
        planted, planted_index = planted
        planted = np.asarray(planted, dtype=np.float32)
        planted_index = np.asarray(planted_index, dtype=np.int64)
        if planted.ndim != 4 or len(planted) != len(planted_index) or len(planted) == 0:
            raise BrainlabInputError(
                f"planted must be (images (n, D, H, W), train indices (n,)); found shapes "
                f"{planted.shape} and {planted_index.shape}")
        if planted_index.min() < 0 or planted_index.max() >= m:
            raise BrainlabInputError(
                f"planted train indices must be in 0..{m - 1}; found {int(planted_index.min())}"
                f"..{int(planted_index.max())}")
    heldout = np.asarray(real_heldout, dtype=np.float32)
    from scipy.ndimage import gaussian_filter

    heldout_blurred = np.stack([gaussian_filter(v, 1.0) for v in heldout]).astype(np.float32)
    # One pass over the (smoothed) training split for every query set.
    queries = [np.asarray(_smoothed(stack, smoothing)[slice(None)], dtype=np.float32)
               for stack in (generated, heldout, planted, heldout_blurred)]
    sizes = np.cumsum([0] + [len(q) for q in queries])
    all_distances, all_nearest = nearest_neighbour_distances(
        np.concatenate(queries), _smoothed(real_train, smoothing))
    (generated_distances, heldout_distances, planted_distances, blurred_distances) = [
        all_distances[a:b] for a, b in zip(sizes, sizes[1:])]
    generated_nearest = all_nearest[sizes[0]:sizes[1]]
    planted_nearest = all_nearest[sizes[2]:sizes[3]]
    threshold = float(np.percentile(heldout_distances, percentile))
    flagged = generated_distances < threshold
    planted_found = (planted_distances < threshold) & (planted_nearest == planted_index)
    return {
        "threshold": threshold, "percentile": float(percentile), "smoothing": float(smoothing),
        "fraction_flagged": float(flagged.mean()), "n_flagged": int(flagged.sum()),
        "flagged": flagged,
        "planted_recall": float(planted_found.mean()), "n_planted": int(len(planted_index)),
        "heldout_flagged": float((heldout_distances < threshold).mean()),
        "heldout_smoothed_flagged": float((blurred_distances < threshold).mean()),
        "median_generated": float(np.median(generated_distances)),
        "median_heldout": float(np.median(heldout_distances)),
        "generated_distances": generated_distances,
        "generated_nearest_train": generated_nearest,
        "heldout_distances": heldout_distances,
        "n_generated": int(len(generated_distances)), "n_train": int(m),
        "n_heldout": int(len(heldout_distances)),
    }
