"""The phantom's anatomy: nilearn's ICBM152 2009 templates on a cohort grid.

nilearn ships the 1 mm T1, GM, WM and brain-mask templates (no download). CSF is
``mask * clip(1 - GM - WM, 0, 1)`` (PHANTOM.md). No parcellation is shipped, so
regions are drawn geometrically in MNI millimetres: hemispheres by ``x``, lobes by
coordinate planes, hippocampi as tilted ellipsoids in the medial temporal lobe, the
lateral ventricles as the large central CSF components.

Downsampling to the cohort grid is a box average (each 1 mm voxel is counted in
the cohort voxel whose centre is nearest), so every cohort voxel holds the tissue
*fractions* of its volume: partial volume comes for free. The result is cached per
grid under ``cache_root()/templates``.

Before that, at 1 mm, the cerebrum is drawn back from the mask's surface
(``_draw_back_cerebrum``): the mask stays the intracranial volume, the brain sits
inside it with CSF around it, as in a real head (PHANTOM.md v2: brain extent ≈ 10%
under v1's, tissue volumes at FreeSurfer levels, ≈ 0.76 of eTIV).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from brainlab.atomic import atomic_write
from brainlab.data.grid import mni_affine
from brainlab.paths import cache_root

# Bump when region definitions or downsampling change: it keys the template cache.
ANATOMY_VERSION = 7

# The brain inside the skull (PHANTOM.md v2: brain extent ≈ 10% smaller than the mask
# of v1, volumes at FreeSurfer levels): the template fills its mask with tissue (0.89
# of it), while FreeSurfer's tissue sums are ≈ 0.76 of eTIV, the rest being CSF around
# the brain. So the cerebrum is drawn back from the mask's surface by SHELL_MM: its outer
# layer (cortex) moves inward whole, keeping its thickness and giving up area; the
# shift fades out across the white matter between SHELL_INNER_MM and SHELL_DEEP_MM deep,
# so deep structures keep their place and size. The mask (ICV) is unchanged: the gap is
# CSF. Cerebellum, brainstem and the medial temporal structures stay where they are.
SHELL_MM = 6.0
SHELL_INNER_MM, SHELL_DEEP_MM = 4.0, 30.0
SHELL_SMOOTH_MM = 3.0  # smoothing of the depth map whose gradient gives "inward"

# Region ids in the label maps; 0 is outside the brain.
REGIONS = (
    "frontal_left", "frontal_right", "parietal_left", "parietal_right",
    "temporal_left", "temporal_right", "occipital_left", "occipital_right",
    "subcortical_left", "subcortical_right", "hippocampus_left", "hippocampus_right",
    "cerebellum_left", "cerebellum_right", "brainstem",
    "ventricle_left", "ventricle_right", "amygdala_left", "amygdala_right",
)
REGION_ID = {name: i + 1 for i, name in enumerate(REGIONS)}
LOBES = ("frontal", "parietal", "temporal", "occipital")
CORTICAL_REGIONS = tuple(f"{lobe}_{side}" for lobe in LOBES for side in ("left", "right"))


@dataclass(frozen=True)
class Anatomy:
    """Template tissue fractions and region labels on one cohort grid.

    All maps are (D, H, W) on ``shape`` with ``affine`` (MNI mm).
    ``gm_region`` is (R, D, H, W): GM fraction of each region in ``REGIONS``.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    gm_region: np.ndarray        # (R, D, H, W) float32 GM fraction per region
    wm: np.ndarray               # WM fraction (cerebrum, cerebellum and brainstem)
    csf_ventricle: np.ndarray    # CSF fraction inside the lateral ventricles
    csf_other: np.ndarray        # all other CSF (sulcal, cisterns)
    labels: np.ndarray           # int16 majority region id per voxel (0 outside)
    ventricle_roi: np.ndarray    # bool: where ventricles may be (grown by up to 12 mm into deep tissue)
    ventricle_distance: np.ndarray  # mean signed distance (mm) to the ventricle surface, < 0 inside
    t1: np.ndarray               # template T1 box-averaged, WM ≈ 1
    texture: np.ndarray          # multiplicative T1 detail not explained by tissue classes

    @property
    def voxel_cc(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @property
    def gm(self) -> np.ndarray:
        return self.gm_region.sum(0)

    @property
    def csf(self) -> np.ndarray:
        return self.csf_ventricle + self.csf_other

    @property
    def brain(self) -> np.ndarray:
        """Fraction of each voxel inside the brain mask (GM + WM + CSF)."""
        return self.gm + self.wm + self.csf


def _load_templates_1mm():
    """(gm, wm, csf, mask, t1, affine) at 1 mm, float32, from nilearn (offline)."""
    from nilearn import datasets

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    mask = (np.asarray(mask_img.dataobj) > 0).astype(np.float32)
    scale = 1.0 / 255.0 if np.asarray(mask_img.dataobj).dtype == np.uint8 else 1.0
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, np.float32) * scale * mask
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, np.float32) * scale * mask
    t1 = np.asarray(datasets.load_mni152_template(resolution=1).dataobj, np.float32) * scale * mask
    # Renormalise where GM + WM exceed 1 so fractions stay a partition of the voxel.
    excess = np.maximum(gm + wm, 1.0)
    gm, wm = gm / excess, wm / excess
    csf = mask * np.clip(1.0 - gm - wm, 0.0, 1.0)
    return gm, wm, csf, mask, t1, mask_img.affine


def _region_labels_1mm(shape, affine, csf, mask):
    """Geometric region id per 1 mm voxel (see module docstring)."""
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    x = affine[0, 0] * i + affine[0, 3]
    y = affine[1, 1] * j + affine[1, 3]
    z = affine[2, 2] * k + affine[2, 3]
    left = x < 0
    labels = np.zeros(shape, np.int16)

    def put(where, base_name):
        """Label ``where`` (not yet labelled) as <base>_left/_right by hemisphere."""
        free = where & (labels == 0) & (mask > 0)
        labels[free & left] = REGION_ID[f"{base_name}_left"]
        labels[free & ~left] = REGION_ID[f"{base_name}_right"]

    # Lateral ventricles: large CSF components in the central box.
    central = (np.abs(x) < 32) & (y > -50) & (y < 35) & (z > -8) & (z < 32)
    components, count = ndimage.label((csf > 0.5) & central & (mask > 0))
    sizes = ndimage.sum(np.ones(shape), components, index=np.arange(1, count + 1))
    ventricles = np.isin(components, 1 + np.flatnonzero(sizes >= 1500))
    put(ventricles, "ventricle")

    # Amygdalae: ellipsoids in front of the hippocampal heads (they take the overlap).
    for side, sign in (("left", -1.0), ("right", 1.0)):
        inside = (((x - sign * 24.0) / 8.0) ** 2 + ((y + 1.0) / 8.0) ** 2
                  + ((z + 19.0) / 7.0) ** 2) <= 1.0
        labels[inside & (labels == 0) & (mask > 0)] = REGION_ID[f"amygdala_{side}"]

    # Hippocampi: ellipsoids along y, tilted so the tail rises posteriorly.
    tilt = np.deg2rad(25.0)
    for side, sign in (("left", -1.0), ("right", 1.0)):
        dx, dy, dz = x - sign * 28.0, y + 22.0, z + 12.0
        along = dy * np.cos(tilt) - dz * np.sin(tilt)
        up = dy * np.sin(tilt) + dz * np.cos(tilt)
        inside = (dx / 8.0) ** 2 + (along / 20.0) ** 2 + (up / 8.0) ** 2 <= 1.0
        labels[inside & (labels == 0) & (mask > 0)] = REGION_ID[f"hippocampus_{side}"]

    # Cerebellum below the tentorium, which slopes down posteriorly; brainstem medial.
    tentorium = np.where(y > -50, -12.0, -5.0 - 0.6 * (-50.0 - y))
    brainstem = (np.abs(x) < 12) & (y > -42) & (y < -8) & (z < -8)
    labels[brainstem & (z < -12) & (labels == 0) & (mask > 0)] = REGION_ID["brainstem"]
    put((y < -35) & (z < tentorium), "cerebellum")

    # Deep grey nuclei (caudate, putamen, pallidum, thalamus): ellipsoids per side.
    for side, sign in (("left", -1.0), ("right", 1.0)):
        deep = (((x - sign * 17.0) / 16.0) ** 2 + ((y + 4.0) / 29.0) ** 2
                + ((z - 5.0) / 17.0) ** 2) <= 1.0
        labels[deep & (labels == 0) & (mask > 0)] = REGION_ID[f"subcortical_{side}"]
    labels[(brainstem) & (labels == 0) & (mask > 0)] = REGION_ID["brainstem"]

    # Lobes: temporal below the Sylvian line, occipital behind y = -72, parietal
    # behind a central sulcus tilted back with height, frontal the rest.
    sylvian = np.where(y < 0, -2.0 - 0.25 * y, -2.0)
    temporal = (((np.abs(x) > 28) | (z < -12)) & (z < sylvian) & (y > -75)
                & ((y < 8) | (z < -22)))
    put(temporal, "temporal")
    put(y < -72, "occipital")
    put(y < -5.0 - 0.3 * z, "parietal")
    put(mask > 0, "frontal")
    return labels


def _draw_back_cerebrum(gm, wm, t1, labels, mask):
    """Tissue maps and labels with the cerebrum drawn back from the mask's surface
    (``SHELL_MM``, see above), all at 1 mm on the same array; CSF fills the gap.

    Pull-back sampling: the content at depth d came from depth d - shift(d), along the
    outward normal (the gradient of the smoothed depth map), shift = SHELL_MM down to
    SHELL_INNER_MM deep, then fading linearly to 0 at SHELL_DEEP_MM, and weighted by a
    smooth cerebrum membership (0 in the cerebellum, brainstem, hippocampi and amygdalae).
    """
    inside = mask > 0
    depth = ndimage.distance_transform_edt(inside).astype(np.float32)  # mm (1 mm voxels)
    smooth = ndimage.gaussian_filter(depth, SHELL_SMOOTH_MM)
    normal = np.stack(np.gradient(smooth))
    normal /= np.maximum(np.sqrt((normal ** 2).sum(0)), 1e-3)
    fade = np.clip((SHELL_DEEP_MM - depth) / (SHELL_DEEP_MM - SHELL_INNER_MM), 0.0, 1.0)
    kept = np.isin(labels, [REGION_ID[n] for n in (
        "cerebellum_left", "cerebellum_right", "brainstem", "hippocampus_left",
        "hippocampus_right", "amygdala_left", "amygdala_right")])
    kept = ndimage.binary_dilation(kept, iterations=4)  # their surroundings too: whole ROIs stay
    # Normalised by the smoothed mask, so the weight stays 1 up to the mask's surface.
    cerebrum = (ndimage.gaussian_filter((inside & ~kept).astype(np.float32), 4.0)
                / np.maximum(ndimage.gaussian_filter(inside.astype(np.float32), 4.0), 1e-3))
    shift = SHELL_MM * fade * cerebrum
    grid = np.indices(mask.shape, dtype=np.float32)
    source = grid - shift[None] * normal  # outward: where this voxel's content came from
    del grid

    def pull(volume, order=1):
        return ndimage.map_coordinates(volume, source, order=order, mode="constant", cval=0.0)

    inside_source = pull(inside.astype(np.float32)) > 0.5
    gm_new = pull(gm) * inside
    wm_new = pull(wm) * inside
    t1_new = pull(t1) * inside
    # The gap (no tissue drawn into it) keeps the label of where it lies.
    labels_new = np.where(inside_source, pull(labels, order=0), labels).astype(np.int16)
    labels_new[~inside] = 0
    excess = np.maximum(gm_new + wm_new, 1.0)
    gm_new, wm_new = gm_new / excess, wm_new / excess
    csf_new = mask * np.clip(1.0 - gm_new - wm_new, 0.0, 1.0)
    # T1 in the gap: CSF's (the template's darkest in-mask level).
    pure_csf = inside & (gm + wm < 0.05)
    csf_t1 = float(np.median(t1[pure_csf])) if pure_csf.any() else 0.0
    t1_new = np.where(inside & ~inside_source, csf_t1, t1_new) * inside
    return gm_new.astype(np.float32), wm_new.astype(np.float32), csf_new.astype(np.float32), \
        t1_new.astype(np.float32), labels_new


def _save_npz(path: Path, values: dict) -> None:
    """Write ``values`` to ``path`` atomically (a unique temporary name, then a rename)."""
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:
            np.savez(stream, **values)

    atomic_write(path, write)


def _box_downsample(values_1mm, labels_1mm, target_index, n_target, n_labels):
    """Sum ``values`` per (target voxel, label) pair: (n_labels, n_target) float64."""
    key = labels_1mm.astype(np.int64) * n_target + target_index
    return np.bincount(key, weights=values_1mm, minlength=n_labels * n_target).reshape(
        n_labels, n_target)


def _template_voxels_1mm() -> dict:
    """In-mask 1 mm template voxels: MNI mm coordinates, tissue, T1 and region id.

    Cached (uint8 tissue values as nilearn ships them) so later grids skip nilearn.
    """
    root = cache_root() / "templates"
    path = root / f"mni152_1mm_voxels_v{ANATOMY_VERSION}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                values = {k: data[k] for k in ("mm", "gm", "wm", "csf", "t1", "labels",
                                               "ventricle_distance")}
                grid = {k: data[k] for k in ("grid_shape", "grid_affine")}
            if len({len(v) for v in values.values()}) == 1:
                return {**values, **grid}
        except (OSError, KeyError, ValueError):
            pass  # unreadable: rebuild
    gm, wm, csf, mask, t1, src_affine = _load_templates_1mm()
    # Regions and distances on the mask's bounding box only (every voxel kept lies in
    # the mask, the ventricles well inside it): the same values, half the voxels.
    # The crop's affine shifts the origin by whole voxels, so coordinates are exact.
    corner = np.array([np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))).min()
                       for axis in range(3)])
    far = np.array([np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))).max()
                    for axis in range(3)]) + 1
    box = tuple(slice(int(lo), int(hi)) for lo, hi in zip(corner, far))
    box_affine = np.array(src_affine, dtype=np.float64)
    box_affine[:3, 3] += np.diag(box_affine)[:3] * corner
    labels = _region_labels_1mm(mask[box].shape, box_affine, csf[box], mask[box])
    full_labels = np.zeros(mask.shape, np.int16)
    full_labels[box] = labels
    # On the whole array: the mask's cut at the field of view's edge is no surface.
    gm, wm, csf, t1, full_labels = _draw_back_cerebrum(gm, wm, t1, full_labels, mask)
    labels = full_labels[box]
    ventricles = np.isin(labels, [REGION_ID["ventricle_left"], REGION_ID["ventricle_right"]])
    distance = (ndimage.distance_transform_edt(~ventricles)
                - ndimage.distance_transform_edt(ventricles)).astype(np.float32)
    keep = mask[box] > 0
    ijk = np.stack(np.nonzero(keep), 1) + corner
    mm = (ijk * np.diag(src_affine)[:3] + src_affine[:3, 3]).astype(np.float32)
    values = {"mm": mm, "gm": gm[box][keep], "wm": wm[box][keep], "csf": csf[box][keep],
              "t1": t1[box][keep], "labels": labels[keep], "ventricle_distance": distance[keep],
              "grid_shape": np.array(gm.shape), "grid_affine": np.asarray(src_affine, dtype=np.float64)}
    _save_npz(path, values)
    return values


def build_anatomy(shape: tuple[int, int, int]) -> Anatomy:
    """Resample the templates and regions onto ``shape`` (MNI affine), uncached."""
    voxels = _template_voxels_1mm()
    affine = mni_affine(shape)
    spacing = np.diag(affine)[:3]
    # Cohort voxel of every 1 mm voxel (nearest centre); outside the grid -> dropped.
    target = np.rint((voxels["mm"] - affine[:3, 3]) / spacing).astype(np.int64)
    keep = np.all((target >= 0) & (target < np.array(shape)), axis=1)
    target = target[keep]
    index = (target[:, 0] * shape[1] + target[:, 1]) * shape[2] + target[:, 2]
    lab = voxels["labels"][keep]
    n_target = int(np.prod(shape))
    n_labels = len(REGIONS) + 1

    # How many 1 mm voxels (brain or not) fall in each cohort voxel: separable per axis.
    # Dividing by it (not by the nominal voxel volume) avoids a lattice of 3-vs-4 rows.
    counts = []
    for axis, n in enumerate(shape):
        src = voxels["grid_affine"]
        mm = src[axis, axis] * np.arange(int(voxels["grid_shape"][axis])) + src[axis, 3]
        which = np.rint((mm - affine[axis, 3]) / spacing[axis]).astype(np.int64)
        which = which[(which >= 0) & (which < n)]
        counts.append(np.bincount(which, minlength=n).astype(np.float64))
    per_voxel = (counts[0][:, None, None] * counts[1][None, :, None]
                 * counts[2][None, None, :]).reshape(-1)
    per_voxel = np.maximum(per_voxel, 1.0)

    def fraction(name):
        values = voxels[name][keep].astype(np.float64)
        return _box_downsample(values, lab, index, n_target, n_labels) / per_voxel

    gm_lab = fraction("gm")
    wm_lab = fraction("wm")
    csf_lab = fraction("csf")
    t1_sum = fraction("t1").sum(0)
    brain_lab = gm_lab + wm_lab + csf_lab

    vent = [REGION_ID["ventricle_left"], REGION_ID["ventricle_right"]]
    gm_region = gm_lab[1:].reshape((len(REGIONS),) + tuple(shape)).astype(np.float32)
    wm_map = wm_lab.sum(0).reshape(shape).astype(np.float32)
    csf_vent = csf_lab[vent].sum(0).reshape(shape).astype(np.float32)
    csf_other = (csf_lab.sum(0) - csf_lab[vent].sum(0)).reshape(shape).astype(np.float32)
    brain = brain_lab.sum(0).reshape(shape)
    labels = np.where(brain > 0.05, brain_lab.argmax(0).reshape(shape), 0).astype(np.int16)
    # Mean distance to the ventricle surface per cohort voxel (in-brain 1 mm voxels).
    in_brain = np.bincount(index, minlength=n_target).astype(np.float64)
    distance = np.bincount(index, weights=voxels["ventricle_distance"][keep].astype(np.float64),
                           minlength=n_target)
    far = 50.0
    distance = np.where(in_brain > 0, distance / np.maximum(in_brain, 1.0), far)
    distance = np.minimum(distance, far).reshape(shape).astype(np.float32)
    # Where (grown) lateral ventricles can be: near them, in deep tissue, not cortex.
    vent_core = np.isin(labels, vent) | (csf_vent.reshape(shape) > 0.25)
    deep_ids = [REGION_ID[n] for n in ("subcortical_left", "subcortical_right")] + vent
    deep_ok = np.isin(labels, deep_ids) | ((wm_map > 0.5) & (np.abs(
        _mm_coordinates(shape, affine)[0]) < 30))
    ventricle_roi = vent_core | ((distance < 12.0) & deep_ok)

    # Template T1 relative to WM, and its detail beyond a tissue-class model.
    t1_map = (t1_sum.reshape(shape) / np.maximum(brain, 1e-3)).astype(np.float32)
    frac = [gm_region.sum(0), wm_map, csf_vent + csf_other]
    solid = brain > 0.9
    design = np.stack([f[solid] / brain[solid] for f in frac], 1)
    coef, *_ = np.linalg.lstsq(design, t1_map[solid], rcond=None)
    wm_level = coef[1]
    t1_map = t1_map / wm_level
    predicted = sum(c * f for c, f in zip(coef / wm_level, frac)) / np.maximum(brain, 1e-3)
    texture = np.where(brain > 0.5, t1_map / np.maximum(predicted, 0.2) - 1.0, 0.0)
    texture = np.clip(texture, -0.08, 0.08).astype(np.float32)
    return Anatomy(tuple(shape), affine, gm_region, wm_map, csf_vent, csf_other,
                   labels, ventricle_roi, distance, (t1_map * (brain > 0.05)).astype(np.float32), texture)


def _mm_coordinates(shape, affine):
    grids = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    return [affine[a, a] * grids[a] + affine[a, 3] for a in range(3)]


_MEMORY: dict[tuple, Anatomy] = {}


def load_anatomy(shape: tuple[int, int, int]) -> Anatomy:
    """The template anatomy on ``shape``: from memory, the on-disk cache, or built."""
    shape = tuple(int(n) for n in shape)
    root = cache_root() / "templates"
    key = (str(root), shape)
    if key in _MEMORY:
        return _MEMORY[key]
    path = root / f"mni152_v{ANATOMY_VERSION}_{shape[0]}x{shape[1]}x{shape[2]}.npz"
    anatomy = None
    if path.exists():
        try:
            with np.load(path) as data:
                anatomy = Anatomy(
                    shape=shape, affine=data["affine"], gm_region=data["gm_region"],
                    wm=data["wm"], csf_ventricle=data["csf_ventricle"],
                    csf_other=data["csf_other"], labels=data["labels"],
                    ventricle_roi=data["ventricle_roi"],
                    ventricle_distance=data["ventricle_distance"], t1=data["t1"], texture=data["texture"])
            if anatomy.gm_region.shape[1:] != shape:
                anatomy = None
        except (OSError, KeyError, ValueError):
            anatomy = None  # unreadable cache: rebuild below
    if anatomy is None:
        anatomy = build_anatomy(shape)
        _save_npz(path, dict(
            affine=anatomy.affine, gm_region=anatomy.gm_region, wm=anatomy.wm,
            csf_ventricle=anatomy.csf_ventricle, csf_other=anatomy.csf_other,
            labels=anatomy.labels, ventricle_roi=anatomy.ventricle_roi,
            ventricle_distance=anatomy.ventricle_distance, t1=anatomy.t1, texture=anatomy.texture))
    _MEMORY[key] = anatomy
    return anatomy


def describe(anatomy: Anatomy) -> dict:
    """Template volumes in cc, for checks and documentation."""
    cc = anatomy.voxel_cc
    out = {"brain_cc": anatomy.brain.sum() * cc, "gm_cc": anatomy.gm.sum() * cc,
           "wm_cc": anatomy.wm.sum() * cc, "csf_cc": anatomy.csf.sum() * cc,
           "ventricles_cc": anatomy.csf_ventricle.sum() * cc}
    for name, gm in zip(REGIONS, anatomy.gm_region):
        out[f"gm_{name}_cc"] = gm.sum() * cc
    return {k: round(float(v), 2) for k, v in out.items()}


if __name__ == "__main__":  # python -m brainlab.data.phantom.anatomy: print template volumes
    print(json.dumps(describe(load_anatomy((58, 70, 58))), indent=1))
