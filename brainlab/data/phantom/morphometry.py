"""Re-measure morphometry from T1 images, the way a simple analysis would.

The phantom's table is not its sampled truth: it is what this measurement sees in
the generated images, so it carries realistic measurement error (partial volume,
noise, residual bias, an atlas that only follows the head size).

Per image:
1. brain mask = non-zero voxels (the images are skull-stripped); ICV = its volume;
2. atlas alignment: the template's region labels are scaled by the cube root of the
   ICV ratio about the brain centroid (an "affine registration" of 1 parameter + shift);
3. bias correction: a smooth field fitted to the intensity of core white matter;
4. tissue fractions by two-class linear unmixing along CSF - GM - WM
   (deep nuclei use their brighter GM level, as an atlas prior would);
5. volumes per region; lateral ventricles as clear CSF inside the ventricle ROI;
   deep structures (nuclei, putamen, accumbens, hippocampus, amygdala) as the tissue
   (non-CSF) volume of their atlas ROI, the way FreeSurfer's labels count a whole
   structure (its SubCortGray = nuclei + hippocampus + amygdala); a cortical
   thickness proxy = cortical GM volume / a cortical area from the tissue volume
   (``CORTEX_AREA_EXPONENT``).
"""

from __future__ import annotations

import functools
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from brainlab.data.phantom.anatomy import CORTICAL_REGIONS, REGION_ID, REGIONS, Anatomy
from brainlab.errors import BrainlabInputError

# Intensities the measurement assumes, relative to the measured WM level.
ASSUMED_GM, ASSUMED_DEEP, ASSUMED_CSF = 0.73, 0.97, 0.31
# Mean cortical thickness the proxy reads on the template: set so that the hcp-ya
# cohort reads ≈ 2.63 mm (F) / 2.64 mm (M) as FreeSurfer does on HCP-YA.
TEMPLATE_THICKNESS_MM = 2.95
# Cortical surface area grows faster than brain volume^(2/3): folding makes bigger
# brains' extra cortex mostly area (hyperscaling; MRI studies of adults put the exponent
# between ≈ 0.8 and 1). At 3 mm no surface can follow the folds, so the thickness proxy
# takes the area from the measured tissue volume (GM + WM) by this law; the mask's
# surface (∝ ICV^(2/3)) put men's extra cortex into thickness (raw sex d 0.7 against
# HCP-YA's 0.13). Caveat: atrophy shrinks the tissue too, so on ``lifespan`` the proxy
# thins by ≈ 0.02 mm per decade where FreeSurfer sees 0.08-0.10.
CORTEX_AREA_EXPONENT = 0.94
# Ventricle CSF counts only where the voxel is clearly darker than WM, so noise and
# residual bias in the periventricular WM add no floor to small ventricles.
VENTRICLE_MAX_RELATIVE = 0.9
BIAS_EPS = 0.02  # shrinkage of the bias field towards 1 where core WM is sparse
# Extra bias-field anchors where core WM is sparse (cerebellar WM CV 0.24 -> 0.12).
ANCHOR_REGIONS = ("cerebellum_left", "cerebellum_right")
ANCHOR_MIN_WM = 0.18
ANCHOR_WEIGHT = 20.0


def _sub_rois(anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Putamen and accumbens as parts of the deep-nuclei ROI, by MNI coordinates."""
    grids = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in anatomy.shape), indexing="ij")
    x, y, z = (anatomy.affine[a, a] * grids[a] + anatomy.affine[a, 3] for a in range(3))
    deep = np.isin(anatomy.labels, [REGION_ID["subcortical_left"], REGION_ID["subcortical_right"]])
    putamen = deep & (np.abs(x) >= 22.0) & (z < 14.0)
    accumbens = deep & (np.abs(x) < 16.0) & (y > 6.0) & (z < 0.0)
    return putamen, accumbens


def _identity(shape, batch):
    """Normalised coords (B, D, H, W, 3), last axis in grid_sample order (W, H, D)."""
    return _identity_grid(tuple(shape)).expand(batch, *shape, 3)


@functools.lru_cache(maxsize=8)
def _identity_grid(shape: tuple[int, ...]) -> torch.Tensor:
    axes = [torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], dim=-1).unsqueeze(0)


class Morphometer:
    """Measures a batch of raw images (B, D, H, W) on one anatomy's grid."""

    def __init__(self, anatomy: Anatomy, reference: np.ndarray | None = None,
                 thickness_scale: float | None = None):
        """``reference``: a noise-free raw image of the template itself (the generator's
        rendering, WM ≈ 1000), on which the thickness proxy is scaled to
        ``TEMPLATE_THICKNESS_MM``; or give ``thickness_scale`` directly."""
        if (reference is None) == (thickness_scale is None):
            raise BrainlabInputError("Morphometer needs exactly one of reference (a template "
                                     "image) or thickness_scale")
        self.anatomy = anatomy
        shape = anatomy.shape
        brain = anatomy.brain
        self.template_icv_vox = float((brain > 0.5).sum())
        ident = _identity(shape, 1)[0].numpy()
        weights = (brain > 0.5).astype(np.float64)
        self.template_centre = torch.from_numpy(
            (ident * weights[..., None]).reshape(-1, 3).sum(0) / weights.sum()).float()
        wm_core = (anatomy.wm > 0.85) & np.isin(anatomy.labels, [
            REGION_ID[n] for n in CORTICAL_REGIONS + ("subcortical_left", "subcortical_right")])
        # One atlas code per voxel: label (< 32) + 32 * ventricle ROI + 64 * core WM,
        # with a zero slab past the end of every axis that stands for "outside the
        # template" (grid_sample's zero padding). Lookups move whole codes, weighted
        # by their trilinear shares, so each map comes back as a soft weight.
        putamen, accumbens = _sub_rois(anatomy)
        code = (anatomy.labels.astype(np.int16) + np.int16(32) * anatomy.ventricle_roi
                + np.int16(64) * wm_core + np.int16(128) * putamen
                + np.int16(256) * accumbens).astype(np.int16)
        self.atlas = F.pad(torch.from_numpy(code), [0, 1, 0, 1, 0, 1])
        # Extra bias anchors where core WM is sparse: WM-rich voxels (no sulcal CSF)
        # of these regions, each read against its expected template intensity
        # (WM + GM mix), i.e. an atlas prior on intensity.
        extra = (np.isin(anatomy.labels, [REGION_ID[n] for n in ANCHOR_REGIONS])
                 & (anatomy.wm > ANCHOR_MIN_WM) & ~wm_core)
        expected = (anatomy.wm + ASSUMED_GM * anatomy.gm_region.sum(0)
                    + ASSUMED_CSF * anatomy.csf) / np.maximum(anatomy.brain, 1e-3)
        self.anchor = F.pad(torch.from_numpy((extra * expected).astype(np.float32)), [0, 1, 0, 1, 0, 1])
        total_gm = anatomy.gm_region.sum(0)
        spill = []
        for side in ("left", "right"):
            r = REGION_ID[f"hippocampus_{side}"]
            share = anatomy.gm_region[r - 1] / np.maximum(total_gm, 1e-6)
            spill.append(np.where((anatomy.labels != r) & (total_gm > 1e-6), share, 0.0))
        self.spill = F.pad(torch.from_numpy(np.stack(spill).astype(np.float32)), [0, 1, 0, 1, 0, 1])
        self._axes = [torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1) for n in shape]
        spacing = np.abs(np.diag(anatomy.affine)[:3])
        self.spacing = spacing
        self.face_mm2 = np.array([spacing[1] * spacing[2], spacing[0] * spacing[2],
                                  spacing[0] * spacing[1]])
        self.bias_pool = tuple(int(max(2, round(24.0 / s))) for s in spacing)
        self.thickness_scale = 1.0
        if thickness_scale is None:
            image = torch.from_numpy(np.asarray(reference, dtype=np.float32)[None])
            raw = self.measure(image)["cortical_thickness_mm"][0]
            thickness_scale = TEMPLATE_THICKNESS_MM / raw
        self.thickness_scale = float(thickness_scale)

    def _face_area(self, mask: torch.Tensor) -> np.ndarray:
        """Outer surface (mm²) of bool volumes (B, D, H, W): their voxel faces."""
        area = np.zeros(mask.shape[0])
        for axis in range(3):
            diff = (mask.narrow(axis + 1, 1, mask.shape[axis + 1] - 1)
                    != mask.narrow(axis + 1, 0, mask.shape[axis + 1] - 1))
            faces = diff.sum(dim=(1, 2, 3)).double().numpy()
            faces += mask.select(axis + 1, 0).sum(dim=(1, 2)).double().numpy()
            faces += mask.select(axis + 1, -1).sum(dim=(1, 2)).double().numpy()
            area += faces * self.face_mm2[axis]
        return area

    def _align_atlas(self, mask: torch.Tensor, points: torch.Tensor, centre: torch.Tensor):
        """Atlas codes in each subject's space at ``points`` (N,) flat voxel indices, as
        trilinear (soft) weights: the 8 neighbouring template codes of every point and
        their weights, (8, B, N) each (codes outside the template are 0); then the bias
        anchors' expected intensity and weight (B, N) and the hippocampal GM share of
        each point (2, B, N). ``mask`` (B, N) is the brain at the points (no brain voxel
        lies elsewhere) and ``centre`` (B, 3) its centroid, normalised coords.

        The alignment is a scale and a shift per axis, so the template position of
        every subject voxel is one index per axis (1-D lookups).
        """
        count = mask.sum(dim=1).clamp(min=1.0)
        scale = (count / self.template_icv_vox) ** (1.0 / 3.0)
        scale = scale.view(-1, 1).expand(-1, 3)
        shape = self.anatomy.shape
        along = [points // (shape[1] * shape[2]), (points // shape[2]) % shape[1], points % shape[2]]
        batch = mask.shape[0]
        codes = torch.empty(8, batch, points.numel(), dtype=torch.int16)
        anchor_expected = torch.zeros(batch, points.numel())
        anchor_weight = torch.zeros(batch, points.numel())
        spill = torch.zeros(2, batch, points.numel())
        weights = torch.empty(8, batch, points.numel())
        padded = self.atlas.shape  # the atlas maps' shape, one slab past every axis
        for b in range(batch):
            lows, shares = [], []
            for axis, lin in enumerate(self._axes):
                k = 2 - axis
                coord = self.template_centre[k] + (lin - centre[b, k]) / scale[b, k]
                size = lin.shape[0]
                pos = ((coord + 1) / 2) * (size - 1)
                low = torch.floor(pos)
                share = pos - low
                pair = []
                for idx in (low, low + 1):
                    outside = (idx < 0) | (idx > size - 1)
                    pair.append(torch.where(outside, torch.full_like(idx, size), idx).long()[along[axis]])
                lows.append(pair)
                shares.append(share[along[axis]])
            c = 0
            for a in (0, 1):
                wa = shares[0] if a else 1.0 - shares[0]
                for bb in (0, 1):
                    wb = shares[1] if bb else 1.0 - shares[1]
                    for cc in (0, 1):
                        wc = shares[2] if cc else 1.0 - shares[2]
                        corner = (lows[0][a] * padded[1] + lows[1][bb]) * padded[2] + lows[2][cc]
                        codes[c, b] = self.atlas.view(-1)[corner]
                        weights[c, b] = wa * wb * wc
                        e = self.anchor.view(-1)[corner]
                        anchor_expected[b] += weights[c, b] * e
                        anchor_weight[b] += weights[c, b] * (e > 0)
                        spill[:, b] += weights[c, b] * self.spill.view(2, -1)[:, corner]
                        c += 1
        return codes, weights, (anchor_expected, anchor_weight, spill)

    def _bias_field(self, values, mask, core, points, anchor_expected, anchor_weight):
        """Smooth multiplicative field fitted to core-WM intensity and to the anchors'
        intensity against their expected level, at the points (B, N)."""
        pool = self.bias_pool
        batch, shape = values.shape[0], self.anatomy.shape
        # soft anchor weight 1 only where all 8 neighbours are anchors (no edge mixing)
        anchor = ((anchor_weight * mask) > 0.999).float() * ANCHOR_WEIGHT
        expected = anchor_expected / anchor_weight.clamp(min=1e-6)
        ratio = torch.where(anchor > 0, values / expected.clamp(min=0.5), values)
        weight = core * mask + anchor
        full = torch.zeros(2, batch, int(np.prod(shape)))
        full[0][:, points] = ratio * weight
        full[1][:, points] = weight
        full = full.view(2 * batch, 1, *shape)
        pooled = F.avg_pool3d(full, pool, pool, ceil_mode=True)
        for _ in range(2):  # spread into regions without core WM
            pooled = F.avg_pool3d(pooled, 3, 1, 1, count_include_pad=False)
        num, den = pooled[:batch], pooled[batch:]
        level = (num.sum(dim=(1, 2, 3, 4)) / den.sum(dim=(1, 2, 3, 4)).clamp(min=1e-6))
        level = level.view(-1, 1, 1, 1, 1)
        eps = BIAS_EPS
        field = (num + eps * level) / (den + eps) / level
        field = F.interpolate(field, size=shape, mode="trilinear", align_corners=False)
        return field.view(batch, -1)[:, points], level.view(-1)

    @torch.no_grad()
    def measure(self, images: torch.Tensor) -> pd.DataFrame:
        """Morphometry table (one row per image) of raw images (B, D, H, W)."""
        images = images.float()
        batch = images.shape[0]
        cc = self.anatomy.voxel_cc
        full_mask = images > 0
        # Everything below is per voxel of the brain, so it runs on the voxels where
        # any image of the batch has brain (a quarter of the grid or so).
        points = torch.nonzero(full_mask.any(0).reshape(-1)).squeeze(1)
        if points.numel() == 0:
            points = torch.zeros(1, dtype=torch.long)
        ident = _identity_grid(tuple(self.anatomy.shape)).reshape(-1, 3)[points]
        values = images.reshape(batch, -1)[:, points]
        mask = (values > 0).float()
        # float64 sums over the batch's union of voxels: a subject measures the same
        # alone or in any batch (float32 sums round differently with the union's size).
        count = mask.double().sum(dim=1).clamp(min=1.0)
        centre = ((mask.double() @ ident.double()) / count.unsqueeze(-1)).float()
        codes, corner_w, anchors = self._align_atlas(mask, points, centre)
        corner_labels = torch.bitwise_and(codes, 31).long()

        def soft_bit(shift):
            bit = torch.bitwise_and(torch.bitwise_right_shift(codes, shift), 1).float()
            return (bit * corner_w).sum(0)

        ventricle_roi, core, putamen, accumbens = (soft_bit(k) for k in (5, 6, 7, 8))
        is_deep = ((corner_labels == REGION_ID["subcortical_left"])
                   | (corner_labels == REGION_ID["subcortical_right"])).float()
        deep_w = (is_deep * corner_w).sum(0)

        anchor_expected, anchor_weight, hippocampal_share = anchors
        bias, _ = self._bias_field(values, mask, core, points, anchor_expected, anchor_weight)
        corrected = values / bias.clamp(min=0.3)
        core_mask = core * mask
        wm_level = ((corrected.double() * core_mask.double()).sum(dim=1)
                    / core_mask.double().sum(dim=1).clamp(min=1.0)).float()
        wm_level = torch.where(wm_level > 0, wm_level, corrected.amax(dim=1))
        relative = corrected / wm_level.view(-1, 1)

        deep = deep_w > 0.5
        gm_level = ASSUMED_GM + (ASSUMED_DEEP - ASSUMED_GM) * deep_w
        upper = ((relative - gm_level) / (1.0 - gm_level)).clamp(0.0, 1.0)
        lower = ((relative - ASSUMED_CSF) / (gm_level - ASSUMED_CSF)).clamp(0.0, 1.0)
        above = relative >= gm_level
        zeros = torch.zeros_like(relative)
        wm = torch.where(above, upper, zeros) * mask
        gm = torch.where(above, 1.0 - upper, lower) * mask
        csf = torch.where(above, zeros, 1.0 - lower) * mask
        # Around the ventricles (outside the deep nuclei) tissue is CSF or WM.
        periventricular = (ventricle_roi * (1.0 - deep_w)).clamp(0.0, 1.0)
        csf_wm = ((1.0 - relative) / (1.0 - ASSUMED_CSF)).clamp(0.0, 1.0) * mask
        csf_wm = torch.where(relative > VENTRICLE_MAX_RELATIVE, zeros, csf_wm)
        csf = periventricular * csf_wm + (1.0 - periventricular) * csf
        wm = periventricular * (mask - csf_wm) + (1.0 - periventricular) * wm
        gm = (1.0 - periventricular) * gm

        n_labels = len(REGIONS) + 1
        offsets = (torch.arange(batch) * n_labels).view(-1, 1)
        flat_labels = [(corner_labels[c] + offsets).reshape(-1) for c in range(len(corner_labels))]

        def per_label(values):
            # bincount adds in voxel order in float64, like a sequential index_add_.
            out = 0.0
            for c, flat in enumerate(flat_labels):
                out = out + torch.bincount(flat, weights=(values * corner_w[c]).reshape(-1).double(),
                                           minlength=batch * n_labels)
            return (out.view(batch, n_labels) * cc).numpy()

        gm_l, wm_l, csf_l = per_label(gm), per_label(wm), per_label(csf)
        # The hippocampus as a probabilistic label: the hippocampal share of the GM of
        # neighbouring voxels (the 1-mm label's partial volume on the grid) moves to it.
        for k, side in enumerate(("left", "right")):
            moved = per_label(gm * hippocampal_share[k])  # hippocampal GM counted in other labels
            gm_l = gm_l - moved
            gm_l[:, REGION_ID[f"hippocampus_{side}"]] += moved.sum(1)
        tissue_l = gm_l + wm_l

        def pick(table, *names):
            return sum(table[:, REGION_ID[n]] for n in names)

        features: dict[str, np.ndarray] = {}
        icv = mask.sum(dim=1).double().numpy() * cc
        features["icv_cc"] = icv
        features["gm_cc"] = gm_l.sum(1)
        features["wm_cc"] = wm_l.sum(1)
        features["csf_cc"] = csf_l.sum(1)
        features["brain_cc"] = features["gm_cc"] + features["wm_cc"]
        features["gm_fraction"] = features["gm_cc"] / icv
        features["wm_fraction"] = features["wm_cc"] / icv
        features["csf_fraction"] = features["csf_cc"] / icv
        features["cortical_gm_cc"] = pick(gm_l, *CORTICAL_REGIONS)
        for region in CORTICAL_REGIONS:
            features[f"gm_{region}_cc"] = pick(gm_l, region)
        for region in CORTICAL_REGIONS:
            features[f"wm_{region}_cc"] = pick(wm_l, region)
        # Deep structures: tissue volume of the ROI (SubCortGray-like, per hemisphere).
        for side in ("left", "right"):
            features[f"subcortical_gm_{side}_cc"] = pick(
                tissue_l, f"subcortical_{side}", f"hippocampus_{side}", f"amygdala_{side}")
        features["subcortical_gm_cc"] = (features["subcortical_gm_left_cc"]
                                         + features["subcortical_gm_right_cc"])
        features["hippocampus_left_cc"] = pick(tissue_l, "hippocampus_left")
        features["hippocampus_right_cc"] = pick(tissue_l, "hippocampus_right")
        features["hippocampus_cc"] = features["hippocampus_left_cc"] + features["hippocampus_right_cc"]
        features["amygdala_cc"] = pick(tissue_l, "amygdala_left", "amygdala_right")
        tissue = (gm + wm) * mask
        # The sub-ROIs as voxels mostly inside them (majority of the 8 weights).
        putamen, accumbens = (putamen > 0.5).float(), (accumbens > 0.5).float()
        features["putamen_cc"] = (tissue.double() * putamen.double()).sum(dim=1).numpy() * cc
        features["accumbens_cc"] = (tissue.double() * accumbens.double()).sum(dim=1).numpy() * cc
        features["cerebellum_gm_cc"] = pick(gm_l, "cerebellum_left", "cerebellum_right")
        features["cerebellum_wm_cc"] = pick(wm_l, "cerebellum_left", "cerebellum_right")
        features["brainstem_cc"] = pick(gm_l, "brainstem") + pick(wm_l, "brainstem")
        cerebral = CORTICAL_REGIONS + ("subcortical_left", "subcortical_right",
                                       "ventricle_left", "ventricle_right")
        features["cerebral_wm_cc"] = pick(wm_l, *cerebral)

        # Lateral ventricles: CSF inside the ROI; left = below the subject's mid-plane.
        vent_csf = csf * ventricle_roi
        lateral = ident[:, 2]  # x: left-right
        left = lateral.unsqueeze(0) < centre[:, 2].view(-1, 1)  # mid-plane: the brain's centroid
        features["ventricles_cc"] = vent_csf.double().sum(dim=1).numpy() * cc
        features["ventricle_left_cc"] = (vent_csf.double() * left).sum(dim=1).numpy() * cc
        features["ventricle_right_cc"] = features["ventricles_cc"] - features["ventricle_left_cc"]
        features["sulcal_csf_cc"] = features["csf_cc"] - features["ventricles_cc"]
        hemi = {"left": [f"{r}_left" for r in ("frontal", "parietal", "temporal", "occipital",
                                                 "subcortical", "hippocampus", "amygdala",
                                                 "cerebellum")]}
        hemi["right"] = [n.replace("_left", "_right") for n in hemi["left"]]
        for side in ("left", "right"):
            features[f"gm_{side}_cc"] = pick(gm_l, *hemi[side])
            features[f"wm_{side}_cc"] = pick(wm_l, *hemi[side])

        # Surface area of the brain mask (voxel faces). The thickness proxy divides
        # cortical GM by a cortical area that follows the brain's tissue volume, not
        # the head: area ∝ volume^CORTEX_AREA_EXPONENT.
        features["brain_surface_cm2"] = self._face_area(full_mask) / 100.0
        tissue_cc = features["gm_cc"] + features["wm_cc"]
        area = np.maximum(tissue_cc, 1.0) ** CORTEX_AREA_EXPONENT
        features["cortical_thickness_mm"] = (self.thickness_scale * features["cortical_gm_cc"]
                                             / area)

        # Image-level descriptors: WM level (raw) and GM/WM contrast.
        features["wm_intensity"] = wm_level.double().numpy()
        pure_gm = (gm > 0.8) & ~deep & (values > 0)
        pure_count = pure_gm.sum(dim=1).clamp(min=1)
        gm_mean = ((relative.double() * pure_gm).sum(dim=1) / pure_count).numpy()
        features["gm_wm_contrast"] = 1.0 - gm_mean
        return pd.DataFrame(features)


MORPHOMETRY_UNITS = {"_cc": "cc", "_mm": "mm", "_cm2": "cm²", "_fraction": "fraction of ICV"}
