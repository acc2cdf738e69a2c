"""Sample subjects, warp the template, synthesise T1 images.

The recipe of PHANTOM.md, in order:

1. ``sample_subjects``: sex, age, ICV and correlated structure z-scores per subject,
   turned into target volumes by ``expected_log_volumes`` (literature effect sizes).
2. Target volumes -> warp and tissue parameters:
   - a global scale sets the intracranial volume;
   - white matter changes through a smooth log-Jacobian: a stationary velocity
     field ``v = a * grad(phi)`` with ``laplace(phi) = m`` (``m`` the smoothed WM
     map), so ``div v`` is the log volume change; it is integrated by scaling and
     squaring into a diffeomorphism, together with a random smooth "elastic" field;
   - grey matter per lobe, cerebellum, hippocampus and deep nuclei thins by
     turning a fraction of its GM into CSF in place (sulcal widening, the way
     atrophy looks at 3 mm);
   - the lateral ventricles grow or shrink morphologically: everything closer
     than ``t`` mm to the template's ventricle surface becomes CSF (a warped
     signed-distance map, soft-thresholded for partial volume).
   The map from parameters to volumes is calibrated once per grid by warping the
   template (``WarpBasis``); volumes eaten by ventricle growth are tabulated.
3. The tissue maps (GM, WM, CSF) and the ventricle distance are warped with
   ``grid_sample`` at the native grid, T1 = sum p * mu (with the template's own
   intensity texture), times a smooth bias field, plus Rician noise, masked.

Everything is batched torch on CPU; each subject draws its random fields from its
own seed, so a subject is the same whatever the batch size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from brainlab.config import PhantomConfig
from brainlab.data.phantom.anatomy import LOBES, REGION_ID, REGIONS, Anatomy
from brainlab.data.phantom.presets import RAW_MAX, WM_RAW


# Relative T1 intensities (PHANTOM.md): WM 1, cortical GM 0.73, CSF 0.31; deep nuclei as
# bright as WM (thalamus, pallidum): with the CSF that ageing opens in them and their
# partial volume at 3 mm the mean image shows ≈ 0.95 of WM there (v2: ≈ 0.96).
MU_GM, MU_DEEP, MU_CSF = 0.73, 1.0, 0.31
# Per-subject sd of the GM and CSF levels (myelination, scanner), relative to WM. The GM
# level's spread is most of the thickness proxy's measurement spread (v2: sd 0.08-0.09 mm).
MU_GM_JITTER_SD, MU_CSF_SD = 0.012, 0.01

# Intracranial volume per sex (HCP-YA FreeSurfer, cc) and its within-sex log-sd
# (PHANTOM.md: CV ≈ 8.5%; 0.08 measures as ICV d 1.87, ICV-only sex LR 0.83).
ICV_MEAN = {"F": 1471.0, "M": 1708.0}
ICV_LOG_SD = 0.08
REFERENCE_ICV = ICV_MEAN["F"]

# Allometry of the sampled targets: volume ∝ ICV ** exponent within sex, on top of the
# global scale. The measurement adds head-size dependence of its own (partial-volume WM
# read as GM scales with the brain's surface), so sampled cortex and cerebellum at 0
# measure as GM ∝ ICV^0.69 and GM/ICV 2.1% higher in women (PHANTOM.md v2: ≈ 0.6, 2.8%).
ALLOMETRY = {"cortex": 0.0, "cerebellum": 0.0, "deep": 0.45, "hippocampus": 0.55,
             "amygdala": 0.55, "wm": 0.8, "ventricles": 1.4}
# Men's excess beyond head size (log). The measurement sees about 0.4 of a sampled cortical
# change (in-place thinning next to WM reads partly as WM -> GM), hence the large cortical
# value; with the sds below these measure as the ICV-adjusted d values of PHANTOM.md v2
# (total GM 0.61, cortex 0.62, WM 0.69, cerebellum 0.86, amygdala 0.70, ...), and cortex
# beyond brain volume lower in men (thickness adjusted for brain volume d −0.09). Ventricles:
# their +28% is allometry and this offset, adjusted d ≈ 0.1.
MALE_OFFSET = {"cortex": 0.095, "cerebellum": 0.078, "deep": 0.05, "hippocampus_left": 0.0,
               "hippocampus_right": 0.04, "amygdala": 0.04, "wm": 0.0225, "ventricles": 0.11}
# Phantom baselines relative to the template's own volumes, log: young adults at
# FreeSurfer levels (PHANTOM.md v2 table) with small ventricles.
BASELINE = {"gm": np.log(0.82), "wm": np.log(1.08), "ventricles": np.log(0.35)}
# Regional ageing relative to the global GM rate (frontal/temporal 1.5-2x, PHANTOM.md).
LOBE_AGEING = {"frontal": 1.6, "parietal": 1.0, "temporal": 1.6, "occipital": 0.7,
               "cerebellum": 0.7}
# Young-adult hippocampus, amygdala and deep nuclei relative to the template's ROIs.
BASELINE_HIPPOCAMPUS = np.log(1.28)
BASELINE_DEEP = np.log(0.98)
# Latent factors (standard normal per subject). "brain" is brain size beyond ICV,
# shared by GM and WM: it makes brain/ICV vary and corr(GM, WM | sex, ICV) ≈ +0.5.
# Its loading per structure, then each structure's own sd (log); cortical values are
# large for the reason above (measured cortical residual sd ≈ 0.03).
FACTORS = ("brain", "gm", "wm", "deep", "hippocampus", "amygdala", "ventricles")
BRAIN_LOADING = {"cortex": 0.105, "cerebellum": 0.05, "wm": 0.0115, "deep": 0.02,
                 "hippocampus": 0.015, "amygdala": 0.015, "ventricles": 0.0}
FACTOR_SD = {"brain": 1.0, "gm": 0.06, "wm": 0.034, "deep": 0.025, "hippocampus": 0.02,
             "amygdala": 0.03, "ventricles": 0.75}
LOBE_SD = 0.04      # independent per-lobe GM variation (log)
CEREBELLAR_WM_GROWTH = 1.5  # WM-warp source weight in the cerebellum (1 = as the cerebrum);
# > 1 offsets the compression the cerebral WM growth exerts there (hcp-ya cerebellar WM CV
# 0.158 at 1.0, 0.152 at 1.5 before ANCHOR_MIN_WM 0.18 / ANCHOR_WEIGHT 20; 2.0 flips putamen ageing)
ASYMMETRY_SD = 0.24  # left/right hippocampus asymmetry (log)

# Regions whose GM thins in place; the rest (brainstem, GM next to ventricles) never does.
CONVERTED_REGIONS = tuple(f"{lobe}_{side}" for lobe in LOBES + ("cerebellum", "hippocampus",
                                                                 "amygdala", "subcortical")
                          for side in ("left", "right"))
CORTEX_REGIONS = tuple(r for r in CONVERTED_REGIONS if r.split("_")[0] in LOBES)
PIAL_WM_LIMIT = 0.25  # GM thins only in voxels with less WM than this (linear ramp)
# Images (PHANTOM.md v2): brains sit ≈ 4 mm lower on the grid than v1 (a 4 mm shift), men 0.8 voxel
# lower than women; a finer random field (≈ 12 mm lattice) folds the cortex differently
# in every subject, so the cohort mean blurs into a ribbon.
CENTRE_SHIFT_MM = -4.0
SEX_SHIFT_VOXELS = 0.8
# Residual position after affine registration differs per subject (voxels, z / y / x):
# the sex shift is a difference of means, not a cue that sorts every brain by sex.
POSITION_SD_VOXELS = (0.5, 0.3, 0.3)
FOLD_MM = 1.5
SMOOTH_ELASTIC_SHARE = 0.5  # of config.elastic_mm: the low-frequency shape field


# ---- age and sex effects ---------------------------------------------------------

def _ramp(age, start, stop=None):
    age = np.asarray(age, dtype=float)
    end = np.inf if stop is None else stop
    return np.clip(age, start, end) - start


def age_effects(age, ageing: float = 1.0) -> dict[str, np.ndarray]:
    """Log volume change with age (relative to a young adult) per structure.

    GM −0.27%/y from 20 to 35 (the measurement sees a fraction: cortex ≈ −0.4% per
    4.5 y), −0.2%/y after 35, −0.65%/y after 60; WM inverted-U peaking at 40 (≈ +1% per
    4.5 y measured at 22-37); ventricles +2.1%/y to 40, +1.8%/y after, +3.9%/y after 60;
    hippocampus accelerating to −2.2%/y after 75 (the measurement sees about half);
    deep GM (putamen, accumbens)
    −1.6%/y from 20 to 40 (WM growing into the CSF around them hides much of it from
    the measurement), −0.2%/y after. Young-adult rates are set so that 22-25 vs 31-35
    separate with a within-sex AUC ≈ 0.83 (PHANTOM.md v2).
    """
    age = np.asarray(age, dtype=float)
    effects = {
        "gm": -(0.0027 * _ramp(age, 20, 35) + 0.002 * _ramp(age, 35) + 0.0045 * _ramp(age, 60)),
        "wm": -0.09 * ((age - 40.0) / 30.0) ** 2 + 0.0022 * _ramp(age, 20, 37),
        "ventricles": (0.021 * (np.minimum(age, 40.0) - 25.0) + 0.018 * _ramp(age, 40)
                       + 0.021 * _ramp(age, 60)),
        "hippocampus": -(0.0015 * _ramp(age, 30, 50) + 0.009 * _ramp(age, 50, 65)
                         + 0.016 * _ramp(age, 65, 75) + 0.022 * _ramp(age, 75)),
        "deep": -(0.016 * _ramp(age, 20, 40) + 0.002 * _ramp(age, 40)),
        # GM/WM contrast falls ≈7% from 20 to 80 y: GM gets brighter.
        "mu_gm": 0.02 * np.clip((age - 20.0) / 60.0, 0.0, 1.2),
    }
    return {k: v * ageing for k, v in effects.items()}


_TEMPLATE_SUMS: dict[int, tuple[Anatomy, dict[str, float]]] = {}


def _template_sums(anatomy: Anatomy) -> dict[str, float]:
    """Voxel sums of the template maps the targets are relative to (computed once)."""
    entry = _TEMPLATE_SUMS.get(id(anatomy))
    if entry is None or entry[0] is not anatomy:
        sums = {f"gm_{name}": anatomy.gm_region[REGION_ID[name] - 1].sum() for name in REGIONS}
        sums.update(brain=anatomy.brain.sum(), wm=anatomy.wm.sum(),
                    csf_ventricle=anatomy.csf_ventricle.sum())
        entry = (anatomy, sums)
        _TEMPLATE_SUMS[id(anatomy)] = entry
    return entry[1]


def _template_cc(anatomy: Anatomy, region: str) -> float:
    return float(_template_sums(anatomy)[f"gm_{region}"] * anatomy.voxel_cc)


def expected_log_volumes(anatomy: Anatomy, sex, age, icv, z: dict | None = None,
                         ageing: float = 1.0) -> dict[str, np.ndarray]:
    """Target log volumes (cc) per structure for arrays of sex, age and ICV.

    Keys: ``icv``, ``wm``, ``ventricles``, ``gm_<region>`` for CONVERTED_REGIONS,
    and ``mu_gm`` (relative GM intensity). ``z`` holds latent factors (standard
    normal; zero = the median subject): FACTORS, ``lobe_<region>``, ``asym_hippocampus``.
    """
    sex = np.asarray(sex)
    icv = np.asarray(icv, dtype=float)
    n = len(icv)
    z = z or {}

    def factor(name):
        return np.asarray(z.get(name, np.zeros(n)), dtype=float)

    cc = anatomy.voxel_cc
    head = np.log(icv / REFERENCE_ICV)
    male = (sex == "M").astype(float)
    sums = _template_sums(anatomy)
    to_reference = np.log(REFERENCE_ICV / (sums["brain"] * cc))
    aged = age_effects(age, ageing)
    brain = factor("brain")

    def structure(kind, own):
        """Head size, sex beyond it, shared brain size and the structure's own factor."""
        offset = MALE_OFFSET.get(kind, MALE_OFFSET.get(kind.split("_")[0], 0.0))
        group = kind.split("_")[0]
        return (ALLOMETRY[group] * head + offset * male + BRAIN_LOADING[group] * brain
                + FACTOR_SD[own] * factor(own))

    out = {"icv": np.log(icv)}
    for region in CONVERTED_REGIONS:
        kind, side = region.rsplit("_", 1)
        base = np.log(_template_cc(anatomy, region)) + to_reference
        if kind in LOBE_AGEING:
            group = "cerebellum" if kind == "cerebellum" else "cortex"
            out[f"gm_{region}"] = (base + BASELINE["gm"] + structure(group, "gm")
                                   + LOBE_AGEING[kind] * aged["gm"]
                                   + LOBE_SD * factor(f"lobe_{region}"))
        elif kind == "hippocampus":
            sign = -1.0 if side == "left" else 1.0
            out[f"gm_{region}"] = (base + BASELINE_HIPPOCAMPUS + structure(region, "hippocampus")
                                   + aged["hippocampus"]
                                   + sign * ASYMMETRY_SD * factor("asym_hippocampus") / 2)
        elif kind == "amygdala":
            out[f"gm_{region}"] = (base + BASELINE_HIPPOCAMPUS + structure("amygdala", "amygdala")
                                   + aged["hippocampus"])
        else:  # subcortical (deep) nuclei
            out[f"gm_{region}"] = (base + BASELINE_DEEP + structure("deep", "deep") + aged["deep"])
    out["wm"] = (np.log(sums["wm"] * cc) + to_reference + BASELINE["wm"] + structure("wm", "wm")
                 + aged["wm"])
    out["ventricles"] = (np.log(sums["csf_ventricle"] * cc) + to_reference
                         + BASELINE["ventricles"] + structure("ventricles", "ventricles")
                         + aged["ventricles"])
    out["mu_gm"] = MU_GM + aged["mu_gm"]
    return out


# ---- sampling ----------------------------------------------------------------------

def sample_demographics(config: PhantomConfig) -> pd.DataFrame:
    """subject_id, sex, age, age_bin for ``config`` (exact per-bin counts when given)."""
    rng = np.random.default_rng([config.seed, 1])
    edges = np.asarray(config.age_bin_edges, dtype=float)
    n_bins = len(edges) - 1
    if config.female_counts:
        sexes, bins = [], []
        for b in range(n_bins):
            sexes += ["F"] * config.female_counts[b] + ["M"] * config.male_counts[b]
            bins += [b] * (config.female_counts[b] + config.male_counts[b])
        order = rng.permutation(len(sexes))
        sex = np.asarray(sexes)[order]
        age_bin = np.asarray(bins)[order]
        age = edges[age_bin] + rng.uniform(0, 1, len(sex)) * (edges[age_bin + 1] - edges[age_bin])
    else:
        n = config.n_subjects
        sex = np.where(rng.permutation(n) % 2 == 0, "F", "M")
        # Stratified ages: every stretch of the range is covered even for small n.
        age = edges[0] + (rng.permutation(n) + rng.uniform(0, 1, n)) / n * (edges[-1] - edges[0])
        age_bin = np.clip(np.searchsorted(edges, age, side="right") - 1, 0, n_bins - 1)
    n = len(sex)
    return pd.DataFrame({
        "subject_id": [f"sub-{i + 1:04d}" for i in range(n)],
        "sex": sex,
        "age": np.floor(age * 100.0) / 100.0,  # 2 decimals, never rounded up into the next bin
        "age_bin": age_bin.astype(int),
    })


def sample_subjects(config: PhantomConfig, anatomy: Anatomy) -> pd.DataFrame:
    """Demographics plus latent factors, ICV, imaging parameters and per-subject seeds."""
    table = sample_demographics(config)
    n = len(table)
    rng = np.random.default_rng([config.seed, 2])
    z_icv = rng.standard_normal(n)
    # Standardise head size within each sex so sample means land on the literature
    # means (M +16%); with a few hundred per sex, chance would otherwise move them ±1%.
    for sex in ("F", "M"):
        rows = (table["sex"] == sex).to_numpy()
        if rows.sum() > 2:
            z_icv[rows] = (z_icv[rows] - z_icv[rows].mean()) / z_icv[rows].std()
    icv = np.array([ICV_MEAN[s] for s in table["sex"]]) * np.exp(ICV_LOG_SD * z_icv)
    correlated = rng.standard_normal((n, len(FACTORS)))  # independent; "brain" is shared
    truth = table[["subject_id", "sex", "age"]].copy()
    truth["seed"] = rng.integers(0, 2**31 - 1, n)
    truth["z_icv"] = z_icv
    truth["icv_cc"] = icv
    for i, name in enumerate(FACTORS):
        truth[f"z_{name}"] = correlated[:, i]
    for region in CONVERTED_REGIONS:
        truth[f"z_lobe_{region}"] = rng.standard_normal(n)
    truth["z_asym_hippocampus"] = rng.standard_normal(n)
    truth["snr"] = rng.uniform(*config.snr_range, n)
    truth["bias_amplitude"] = rng.uniform(*config.bias_range, n)
    truth["mu_gm_jitter"] = MU_GM_JITTER_SD * rng.standard_normal(n)
    truth["mu_csf"] = MU_CSF + MU_CSF_SD * rng.standard_normal(n)
    return truth


def latent_dict(truth: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c[2:]: truth[c].to_numpy() for c in truth.columns if c.startswith("z_")}


# ---- warping -------------------------------------------------------------------------

def _identity(shape, batch=1):
    """Normalised (align_corners=True) coordinates (B, D, H, W, 3).

    The last axis is in grid_sample's order (W, H, D), i.e. (z, y, x) for the RAS
    cohort grid; displacement channels use the same order throughout.
    """
    return _identity_grid(tuple(shape)).expand(batch, *shape, 3)


@functools.lru_cache(maxsize=8)
def _identity_grid(shape: tuple[int, ...]) -> torch.Tensor:
    axes = [torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], dim=-1).unsqueeze(0)


def _sample(volume, coords, mode="bilinear"):
    """Sample (B, C, D, H, W) at normalised (B, d, h, w, 3) coords (grid_sample order)."""
    return F.grid_sample(volume, coords, mode=mode, padding_mode="border", align_corners=True)


def _sample_shared(volume: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Sample one (C, D, H, W) volume at B sets of coords -> (B, C, D, H, W).

    The volume is broadcast over the batch (no copy), so grid_sample's 3-D kernel,
    which runs its batch entries in parallel, can use every thread.
    """
    return _sample(volume.unsqueeze(0).expand(coords.shape[0], *volume.shape), coords)


@functools.lru_cache(maxsize=16)
def _linear_weights(coarse: int, n: int) -> torch.Tensor:
    """(n, coarse) weights of 1-D linear interpolation, align_corners=True."""
    weights = torch.zeros(n, coarse, dtype=torch.float64)
    if coarse == 1:
        return weights.add_(1.0).float()
    position = torch.arange(n, dtype=torch.float64) * ((coarse - 1) / max(n - 1, 1))
    low = position.floor().long().clamp(max=coarse - 2)
    share = position - low
    rows = torch.arange(n)
    weights[rows, low] += 1.0 - share
    weights[rows, low + 1] += share
    return weights.float()


def upsample_linear(fields: torch.Tensor, shape) -> torch.Tensor:
    """Trilinear upsampling (align_corners=True) of (B, C, d, h, w) to (B, C, *shape).

    As ``F.interpolate(mode="trilinear", align_corners=True)``, as three matrix
    products (one per axis): a fifth faster than interpolate's CPU kernel here.
    """
    d, h, w = (_linear_weights(c, n) for c, n in zip(fields.shape[2:], shape))
    out = torch.matmul(fields, w.T)                            # (B, C, d, h, W)
    out = torch.matmul(h, out)                                 # (B, C, d, H, W)
    return torch.matmul(d, out.flatten(3)).view(*fields.shape[:2], *shape)  # (B, C, D, H, W)


def _smooth(volume: np.ndarray, sigma_vox) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(np.asarray(volume, dtype=np.float64), sigma_vox, mode="constant")


def _coarse_shape(shape):
    return tuple(max(4, (n + 1) // 2) for n in shape)


def ventricle_fraction(distance, offset_mm, width_mm):
    """Soft ventricle occupancy of voxels at signed ``distance`` for growth ``offset_mm``."""
    return (0.5 + (offset_mm - distance) / width_mm).clamp(0.0, 1.0)


VENTRICLE_OFFSETS = np.linspace(-10.0, 20.0, 301)  # mm; tabulated growth offsets


@dataclass
class WarpBasis:
    """Per-grid precomputation: template channels, velocity basis, calibration."""

    anatomy: Anatomy
    coarse: tuple[int, int, int]
    velocity: torch.Tensor        # (3, d, h, w) WM velocity per unit log-Jacobian, normalised
    channels: torch.Tensor        # (5, D, H, W) GM, WM (+ deep brightness), CSF, ventricle
                                  # distance, GM that may thin (GM x pial weight)
    lobe_membership: torch.Tensor  # (R_c, d, h, w) soft membership of the thinned regions
    cortex_weight: torch.Tensor   # (1, d, h, w) soft cortex membership: where folding varies
    pial_share: torch.Tensor      # (R_c,) share of each region's GM that may thin
    centre: torch.Tensor          # (3,) brain centroid, normalised coords
    mm_per_unit: torch.Tensor     # (3,) mm per normalised unit along W, H, D (grid_sample order)
    ventricle_width_mm: float     # soft-threshold width: the mean voxel size
    calibration: np.ndarray = None  # (C, 2) d log volume / d (a_wm, log scale^3)
    calibration_rows: tuple[str, ...] = ()
    template_log_volumes: np.ndarray = None  # (C,) log cc of the unwarped template
    ventricle_table: dict = None  # per offset: ventricle cc and GM/WM cc it takes over
    brain_reach: torch.Tensor = None  # (1, 1, D, H, W) template brain (P > 0.5) as 0/1

    @classmethod
    def build(cls, anatomy: Anatomy) -> "WarpBasis":
        shape = anatomy.shape
        coarse = _coarse_shape(shape)
        spacing_mm = np.abs(np.diag(anatomy.affine)[:3])
        extent_mm = spacing_mm * (np.array(shape) - 1)
        coarse_spacing = extent_mm / np.maximum(np.array(coarse) - 1, 1)
        mm_per_unit = extent_mm / 2.0
        labels = anatomy.labels

        source = anatomy.wm
        if CEREBELLAR_WM_GROWTH != 1.0:  # cerebellar WM weighted in the WM-growth source
            cerebellar = np.isin(labels, [REGION_ID["cerebellum_left"], REGION_ID["cerebellum_right"]])
            source = source * np.where(cerebellar, CEREBELLAR_WM_GROWTH, 1.0).astype(source.dtype)
        smooth_wm = _smooth(source, 6.0 / spacing_mm)  # ≈6 mm smoothed log-Jacobian shape
        # WM grows at the expense of CSF (not of GM or the background): brain size
        # beyond ICV, and GM keeps its partial-volume make-up as WM changes.
        smooth_csf = _smooth(anatomy.csf_other, 6.0 / spacing_mm)
        smooth_wm = smooth_wm - smooth_csf * (smooth_wm.sum() / max(smooth_csf.sum(), 1e-9))
        coarse_wm = F.interpolate(torch.from_numpy(smooth_wm)[None, None], size=coarse,
                                  mode="trilinear", align_corners=True)[0, 0].numpy()
        velocity = _poisson_velocity(coarse_wm, coarse_spacing) / mm_per_unit[:, None, None, None]
        velocity = torch.from_numpy(velocity[::-1].copy()).float()  # to (W, H, D) order

        gm = anatomy.gm_region
        deep_ids = [REGION_ID[n] - 1 for n in ("subcortical_left", "subcortical_right",
                                                  "ventricle_left", "ventricle_right")]
        deep_gm = gm[deep_ids].sum(0)
        # Warped maps: all GM; WM with the template ventricles filled in (ventricle
        # CSF is redrawn per subject) plus the extra brightness of deep GM over
        # cortical GM; other CSF. Texture premultiplied. Then the ventricle distance.
        tissue = np.stack([gm.sum(0), anatomy.wm + anatomy.csf_ventricle
                           + (MU_DEEP - MU_GM) * deep_gm, anatomy.csf_other])
        tissue = tissue * (1.0 + anatomy.texture)
        # Only GM in voxels with little WM thins (the pial side, next to sulcal CSF):
        # at 3 mm that keeps atrophy a GM -> CSF exchange an intensity analysis can see.
        pial = np.clip(1.0 - anatomy.wm / PIAL_WM_LIMIT, 0.0, 1.0)
        # Deep nuclei are GM mixed with WM tracts at 3 mm: all their GM may thin, or the
        # putamen (WM-rich voxels) could not shrink with age.
        deep_nuclei = np.isin(labels, [REGION_ID["subcortical_left"], REGION_ID["subcortical_right"]])
        pial = np.where(deep_nuclei, 1.0, pial)
        shares = [float((gm[REGION_ID[r] - 1] * pial).sum() / max(gm[REGION_ID[r] - 1].sum(), 1e-6))
                  for r in CONVERTED_REGIONS]
        channels = np.concatenate([tissue, anatomy.ventricle_distance[None],
                                   tissue[:1] * pial])
        # Soft membership: smoothed one-hot of the thinned regions, normalised;
        # GM outside them (brainstem, next to the ventricles) is never thinned.
        member = np.stack([_smooth(labels == REGION_ID[r], 3.0 / spacing_mm)
                           for r in CONVERTED_REGIONS])
        outside = _smooth(~np.isin(labels, [REGION_ID[r] for r in CONVERTED_REGIONS]),
                          3.0 / spacing_mm)
        member = member / np.maximum(member.sum(0) + outside, 1e-6)
        member = F.interpolate(torch.from_numpy(member).float()[None], size=coarse,
                               mode="trilinear", align_corners=True)[0]
        cortex = _smooth(np.isin(labels, [REGION_ID[r] for r in CORTEX_REGIONS]), 4.0 / spacing_mm)
        cortex = F.interpolate(torch.from_numpy(np.clip(cortex, 0, 1)).float()[None, None],
                               size=coarse, mode="trilinear", align_corners=True)[0]
        brain = anatomy.brain
        weights = brain / max(brain.sum(), 1e-9)
        grid = _identity(shape)[0].numpy()
        centre = (grid * weights[..., None]).reshape(-1, 3).sum(0)
        basis = cls(anatomy=anatomy, coarse=coarse, velocity=velocity,
                    channels=torch.from_numpy(channels).float(), lobe_membership=member,
                    cortex_weight=cortex,
                    pial_share=torch.tensor(shares, dtype=torch.float32),
                    centre=torch.from_numpy(centre).float(),
                    mm_per_unit=torch.from_numpy(mm_per_unit[::-1].copy()).float(),
                    ventricle_width_mm=float(np.mean(spacing_mm)))
        basis.brain_reach = torch.from_numpy((brain > 0.5).astype(np.float32))[None, None]
        basis._calibrate()
        basis._tabulate_ventricles()
        return basis

    def _calibration_maps(self) -> tuple[list[str], np.ndarray]:
        anatomy = self.anatomy
        names = ["icv", "wm"] + [f"gm_{r}" for r in CONVERTED_REGIONS]
        maps = [anatomy.brain, anatomy.wm] + [anatomy.gm_region[REGION_ID[r] - 1]
                                              for r in CONVERTED_REGIONS]
        return names, np.stack(maps)

    def _calibrate(self, step: float = 0.3) -> None:
        """Finite-difference d log volume / d a_wm by warping the template."""
        names, maps = self._calibration_maps()
        maps = torch.from_numpy(maps).float()
        coords = self.sampling_coords(torch.tensor([0.0, step]), torch.zeros(2),
                                      torch.zeros(2, 3, *self.coarse))
        warped = _sample(maps.unsqueeze(0).expand(2, -1, -1, -1, -1), coords)
        volumes = np.log(warped.sum(dim=(2, 3, 4)).double().numpy() + 1e-9)
        matrix = np.ones((len(names), 2))
        matrix[:, 0] = (volumes[1] - volumes[0]) / step
        self.calibration = matrix
        self.calibration_rows = tuple(names)
        self.template_log_volumes = volumes[0] + np.log(self.anatomy.voxel_cc)

    def _tabulate_ventricles(self) -> None:
        """Ventricle volume and the GM/WM it displaces for each growth offset (template)."""
        anatomy = self.anatomy
        distance = torch.from_numpy(anatomy.ventricle_distance).reshape(-1)
        # Only voxels closer than the largest offset (+ half the soft edge) are ever
        # occupied; the occupancy of those at every offset, times each map, summed in
        # float64: one matrix product instead of 301 passes over the whole grid.
        near = distance < float(VENTRICLE_OFFSETS.max()) + self.ventricle_width_mm / 2
        gm = anatomy.gm_region[[REGION_ID[r] - 1 for r in CONVERTED_REGIONS]]
        maps = np.concatenate([anatomy.brain[None], (anatomy.wm + anatomy.csf_ventricle)[None], gm])
        maps = torch.from_numpy(maps.reshape(len(maps), -1))[:, near].double()
        offsets = torch.from_numpy(VENTRICLE_OFFSETS).float().view(-1, 1)
        occupied = ventricle_fraction(distance[near].view(1, -1), offsets, self.ventricle_width_mm)
        sums = (occupied.double() @ maps.T).numpy()  # (offsets, 2 + R_c)
        table = {"ventricles": sums[:, 0], "wm": sums[:, 1], "gm": sums[:, 2:]}
        cc = anatomy.voxel_cc
        self.ventricle_table = {
            "offset": VENTRICLE_OFFSETS,
            "ventricles": np.maximum.accumulate(np.array(table["ventricles"]) * cc),
            "wm": np.array(table["wm"]) * cc,
            "gm": np.stack(table["gm"]) * cc,  # (offsets, R_c)
        }

    def sampling_fields(self, jacobian: torch.Tensor, log_scale3: torch.Tensor,
                        elastic: torch.Tensor, extra: torch.Tensor | None = None,
                        squarings: int = 4, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Coarse fields (B, 3 + E, d, h, w): the displacement from identity to the
        template coords each subject voxel samples (normalised, grid_sample order),
        then the ``extra`` template-space fields carried along the warp.

        jacobian (B,) WM log-Jacobian amplitude, log_scale3 (B,) log of the volume
        scale, elastic (B, 3, d, h, w) extra velocity in normalised units. ``extra``
        (B, E, d, h, w): smooth template-space fields on the coarse grid.
        ``shift`` (B, 3): translation of the subject on the grid, normalised units.
        """
        batch = jacobian.shape[0]
        velocity = jacobian.view(-1, 1, 1, 1, 1) * self.velocity.unsqueeze(0) + elastic
        # psi = Exp(-v) maps subject space into the template; det ≈ exp(-div v).
        disp = -velocity / (2 ** squarings)
        ident = _identity(self.coarse, batch)
        for _ in range(squarings):
            disp = disp + _sample(disp, ident + disp.permute(0, 2, 3, 4, 1))
        scale = torch.exp(log_scale3 / 3.0).view(batch, 1, 1, 1, 1)
        centre = self.centre.view(1, 1, 1, 1, 3)
        scaled = centre + (ident - centre) / scale
        if shift is not None:  # sampling the template at p - t moves the brain by +t
            scaled = scaled - shift.view(batch, 1, 1, 1, 3)
        carried = disp if extra is None else torch.cat([disp, extra], 1)
        sampled = _sample(carried, scaled)
        total = (scaled - ident).permute(0, 4, 1, 2, 3) + sampled[:, :3]
        return torch.cat([total, sampled[:, 3:]], 1)

    def sampling_coords(self, jacobian: torch.Tensor, log_scale3: torch.Tensor,
                        elastic: torch.Tensor, extra: torch.Tensor | None = None,
                        squarings: int = 4, shift: torch.Tensor | None = None):
        """Template coords (B, D, H, W, 3) sampled by each subject voxel, and with
        ``extra`` the carried fields upsampled to the full grid, (B, E, D, H, W)
        (arguments as ``sampling_fields``)."""
        fields = self.sampling_fields(jacobian, log_scale3, elastic, extra, squarings, shift)
        full = F.interpolate(fields, size=self.anatomy.shape, mode="trilinear", align_corners=True)
        coords = _identity(self.anatomy.shape, fields.shape[0]) + full[:, :3].permute(0, 2, 3, 4, 1)
        return coords if extra is None else (coords, full[:, 3:])

    def solve(self, targets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Parameters that realise target log volumes (first order, two passes).

        Returns ``jacobian`` (B,) WM log-Jacobian, ``log_scale3`` (B,), ``offset``
        (B,) ventricle growth in template mm, ``conversion`` (B, R_c) fraction of
        each region's GM turned into CSF.
        """
        rows = self.calibration_rows
        base = self.template_log_volumes
        table = self.ventricle_table
        icv, wm = targets["icv"], targets["wm"]
        eaten_wm = np.zeros_like(icv)
        system = np.linalg.inv(self.calibration[:2])
        for _ in range(3):  # the ventricles take over WM; re-solve with what they take
            wanted = np.stack([icv - base[0], np.log(np.exp(wm) + eaten_wm) - base[1]], 1)
            jacobian, log_scale3 = (wanted @ system.T).T
            scale3 = np.exp(log_scale3)
            # Ventricles are redrawn in template space, so their volume scales with scale^3.
            template_cc = np.exp(targets["ventricles"]) / scale3
            offset = np.interp(template_cc, table["ventricles"], table["offset"])
            eaten_wm = np.interp(offset, table["offset"], table["wm"]) * scale3
        conversion = []
        for r, region in enumerate(CONVERTED_REGIONS):
            row = rows.index(f"gm_{region}")
            reached = np.exp(base[row] + jacobian * self.calibration[row, 0] + log_scale3)
            reached = reached - np.interp(offset, table["offset"], table["gm"][:, r]) * scale3
            conversion.append(1.0 - np.exp(targets[f"gm_{region}"]) / np.maximum(reached, 1e-3))
        return {"jacobian": jacobian, "log_scale3": log_scale3, "offset": offset,
                "conversion": np.clip(np.stack(conversion, 1), -0.4, 0.8)}


def _poisson_velocity(source: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """v = grad(phi), laplace(phi) = source - mean (periodic), in mm: (3, d, h, w)."""
    spectrum = np.fft.fftn(source - source.mean())
    eig = np.zeros(source.shape)
    for axis, (n, h) in enumerate(zip(source.shape, spacing)):
        freq = 2.0 * (np.cos(2.0 * np.pi * np.fft.fftfreq(n)) - 1.0) / h**2
        shape = [1, 1, 1]
        shape[axis] = n
        eig = eig + freq.reshape(shape)
    eig[0, 0, 0] = 1.0
    phi_hat = spectrum / eig
    phi_hat[0, 0, 0] = 0.0
    phi = np.real(np.fft.ifftn(phi_hat))
    grads = [(np.roll(phi, -1, axis) - np.roll(phi, 1, axis)) / (2.0 * h)
             for axis, h in enumerate(spacing)]
    return np.stack(grads)


_BASES: dict[tuple, WarpBasis] = {}


def warp_basis(anatomy: Anatomy) -> WarpBasis:
    key = (id(anatomy), anatomy.shape)
    if key not in _BASES:
        _BASES[key] = WarpBasis.build(anatomy)
    return _BASES[key]


# ---- synthesis -----------------------------------------------------------------------

def subject_parameters(basis: WarpBasis, truth: pd.DataFrame, config: PhantomConfig,
                       sexes=None, ages=None) -> dict:
    """Targets and warp parameters for the subjects in ``truth`` (sex/age overridable)."""
    sex = truth["sex"].to_numpy() if sexes is None else np.asarray(sexes)
    age = truth["age"].to_numpy() if ages is None else np.asarray(ages, dtype=float)
    targets = expected_log_volumes(basis.anatomy, sex, age, truth["icv_cc"].to_numpy(),
                                   latent_dict(truth), config.ageing)
    return {"targets": targets, "sex": sex, **basis.solve(targets)}


def synthesize(basis: WarpBasis, truth: pd.DataFrame, config: PhantomConfig,
               noise: bool = True, sexes=None, ages=None, restrict: bool = True) -> torch.Tensor:
    """Raw T1 images (B, D, H, W) float32, WM ≈ 1000, background 0, for ``truth`` rows.

    ``restrict``: render only the voxels the batch's brains can reach (the same
    values, a fraction of the work); False renders the whole grid.
    """
    params = subject_parameters(basis, truth, config, sexes, ages)
    batch = len(truth)
    shape = basis.anatomy.shape
    generators = [torch.Generator().manual_seed(int(s)) for s in truth["seed"].to_numpy()]
    elastic_mm = SMOOTH_ELASTIC_SHARE * config.elastic_mm if noise else 0.0
    lattice = tuple(max(2, n // 12) for n in shape)
    elastic = torch.stack([torch.randn((3,) + lattice, generator=g) for g in generators])
    elastic = F.interpolate(elastic, size=basis.coarse, mode="trilinear", align_corners=True)
    elastic = elastic * (elastic_mm / basis.mm_per_unit).view(1, 3, 1, 1, 1)
    # Folding: a finer field on the cortex only (deep structures stay where the atlas
    # expects them, so small-structure volumes keep a small measurement error).
    fine = tuple(max(2, n // 4) for n in shape)
    fold = torch.stack([torch.randn((3,) + fine, generator=g) for g in generators])
    fold = F.interpolate(fold, size=basis.coarse, mode="trilinear", align_corners=True)
    fold_mm = FOLD_MM if noise else 0.0
    elastic = elastic + fold * basis.cortex_weight * (fold_mm / basis.mm_per_unit).view(1, 3, 1, 1, 1)
    male = torch.tensor((np.asarray(params["sex"]) == "M").astype(np.float32))
    voxel_z = float(abs(basis.anatomy.affine[2, 2]))
    shift_mm = CENTRE_SHIFT_MM - SEX_SHIFT_VOXELS * voxel_z * (male - 0.5)
    shift = torch.zeros(batch, 3)
    shift[:, 0] = shift_mm / basis.mm_per_unit[0]  # grid_sample order: channel 0 is z
    if noise:
        # Channel c moves affine axis 2 - c (as the sex shift above: channel 0 is z).
        voxel_mm = torch.tensor(np.abs(np.diag(basis.anatomy.affine)[:3])[::-1].copy(),
                                dtype=torch.float32)
        jitter = torch.stack([torch.randn(3, generator=g) for g in generators])
        shift = shift + (jitter * torch.tensor(POSITION_SD_VOXELS) * voxel_mm
                         / torch.as_tensor(basis.mm_per_unit, dtype=torch.float32))
    # Fraction of GM lost per region (it becomes CSF), as a smooth template-space
    # field carried along with the warp; plus the log bias field.
    conversion = torch.from_numpy(params["conversion"]).float() / basis.pial_share.clamp(min=0.05)
    lost = torch.einsum("br,rdhw->bdhw", conversion.clamp(-1.0, 1.0),
                        basis.lobe_membership).unsqueeze(1)
    bias = torch.stack([torch.randn((1, 4, 4, 4), generator=g) for g in generators])
    bias = F.interpolate(bias, size=basis.coarse, mode="trilinear", align_corners=True)
    peak = bias.abs().amax(dim=(1, 2, 3, 4), keepdim=True).clamp(min=1e-6)
    amplitude = torch.tensor(truth["bias_amplitude"].to_numpy(), dtype=torch.float32)
    log_bias = torch.log1p(amplitude).view(-1, 1, 1, 1, 1) * bias / peak
    fields = basis.sampling_fields(
        torch.from_numpy(params["jacobian"]).float(),
        torch.from_numpy(params["log_scale3"]).float(), elastic,
        extra=torch.cat([lost, log_bias], 1), shift=shift)
    region = synthesis_region(basis, fields) if restrict else None
    if region is not None:
        image = _render(basis, truth, params, fields, generators, noise, region)
        if image is not None:
            return image
    return _render(basis, truth, params, fields, generators, noise, None)


def synthesis_region(basis: WarpBasis, fields: torch.Tensor) -> torch.Tensor:
    """Voxels (D, H, W) bool where a subject of the batch may have brain.

    The template's brain is looked up at the coarse subject coords (with one
    template voxel of slack from the bilinear lookup), the union over the batch is
    dilated by one coarse voxel and taken to the full grid. Outside it nothing is
    rendered: a brain covers about a quarter of the grid, so most of a build's
    warping and arithmetic would go to background. ``_render`` checks the result.
    """
    batch = fields.shape[0]
    coords = _identity(basis.coarse, batch) + fields[:, :3].permute(0, 2, 3, 4, 1)
    reach = _sample(basis.brain_reach.expand(batch, -1, -1, -1, -1), coords) > 0
    reach = F.max_pool3d(reach.any(0, keepdim=True).float(), 3, 1, 1)
    return F.interpolate(reach, size=basis.anatomy.shape, mode="nearest")[0, 0] > 0


def _render(basis: WarpBasis, truth: pd.DataFrame, params: dict, fields: torch.Tensor,
            generators: list, noise: bool, region: torch.Tensor | None) -> torch.Tensor | None:
    """Raw images (B, D, H, W) of the warp ``fields``, rendered at every voxel of
    ``region`` (all voxels when None; background elsewhere).

    Returns None when a brain reaches the region's edge, i.e. may extend past it
    (the caller then renders the whole grid). Every step is per voxel, so a
    region voxel gets the value a whole-grid rendering gives it.
    """
    batch = fields.shape[0]
    shape = basis.anatomy.shape
    voxels = int(np.prod(shape))
    full = upsample_linear(fields, shape).reshape(batch, fields.shape[1], voxels)
    points = _identity(shape).reshape(voxels, 3)
    if region is not None:
        index = torch.nonzero(region.reshape(-1)).squeeze(1)
        full, points = full[:, :, index], points[index]
    coords = points.unsqueeze(0) + full[:, :3].transpose(1, 2)
    carried = full[:, 3:]
    n = coords.shape[1]
    warped = _sample_shared(basis.channels.reshape(1, -1, *shape)[0],
                            coords.view(batch, 1, 1, n, 3)).view(batch, -1, n)
    # In place on the freshly sampled channels (same arithmetic, fewer full-size copies).
    gm, wm, csf = warped[:, 0], warped[:, 1], warped[:, 2]
    brain = gm + wm + csf
    if region is not None:
        edge = region & (F.max_pool3d((~region).float()[None, None], 3, 1, 1)[0, 0] > 0)
        on_edge = edge.reshape(-1)[index]
        if bool((brain[:, on_edge] > 0.5).any()):
            return None  # before the noise draws: the subjects' random streams are untouched
    # Ventricles: everything within ``offset`` mm of the template surface is CSF.
    offset = torch.from_numpy(params["offset"]).float().view(-1, 1)
    ventricle = ventricle_fraction(warped[:, 3], offset, basis.ventricle_width_mm)
    torch.minimum(ventricle, brain, out=ventricle)
    keep = torch.div(ventricle, brain.clamp(min=1e-3)).neg_().add_(1.0)  # 1 - ventricle / brain
    gm.mul_(keep)
    wm.mul_(keep)
    csf.mul_(keep).add_(ventricle)
    thinned = warped[:, 4].mul_(keep).mul_(carried[:, 0])
    torch.maximum(thinned, csf.neg(), out=thinned)
    gm.sub_(thinned)
    csf.add_(thinned)

    mu_gm = params["targets"]["mu_gm"] + (truth["mu_gm_jitter"].to_numpy() if noise else 0.0)
    mu_csf = truth["mu_csf"].to_numpy() if noise else np.full(batch, MU_CSF)

    def per_subject(values):
        return torch.tensor(np.asarray(values, dtype=np.float32)).view(-1, 1)

    image = gm.mul_(per_subject(mu_gm)).add_(wm).add_(csf.mul_(per_subject(mu_csf))).mul_(WM_RAW)
    if noise:
        image.mul_(torch.exp(carried[:, 1]))
        sigma = per_subject(WM_RAW / truth["snr"].to_numpy())
        # Each subject's stream draws real, then imaginary parts for the whole grid,
        # so a region voxel gets the same noise as in a whole-grid rendering.
        real = torch.empty(batch, voxels)
        imag = torch.empty(batch, voxels)
        for i, g in enumerate(generators):
            torch.randn(shape, generator=g, out=real[i].view(shape))
        for i, g in enumerate(generators):
            torch.randn(shape, generator=g, out=imag[i].view(shape))
        if region is not None:
            real, imag = real[:, index], imag[:, index]
        # Rician magnitude: sqrt((image + sigma * real)^2 + (sigma * imag)^2)
        image = real.mul_(sigma).add_(image).pow_(2).add_(imag.mul_(sigma).pow_(2)).sqrt_()
    image.mul_(brain > 0.5).clamp_(0.0, RAW_MAX)
    if region is None:
        return image.view(batch, *shape)
    out = torch.zeros(batch, voxels)
    out[:, index] = image
    return out.view(batch, *shape)


# ---- truth and noise-free references ---------------------------------------------------

def template_image(anatomy: Anatomy) -> np.ndarray:
    """The template itself rendered noise-free, raw scale (D, H, W) float32.

    Deep nuclei at their brighter level, no texture, bias or noise: the image the
    morphometry scales its thickness proxy on.
    """
    gm = anatomy.gm_region
    deep = [REGION_ID[n] - 1 for n in ("subcortical_left", "subcortical_right",
                                        "ventricle_left", "ventricle_right")]
    other = [i for i in range(len(REGIONS)) if i not in deep]
    brain = anatomy.brain
    return WM_RAW * (MU_GM * gm[other].sum(0) + MU_DEEP * gm[deep].sum(0)
                     + anatomy.wm + MU_CSF * anatomy.csf) * (brain > 0.5)


def truth_volumes(basis: WarpBasis, truth: pd.DataFrame, config: PhantomConfig) -> pd.DataFrame:
    """Sampled target volumes (cc) and warp parameters, named like the measured columns."""
    params = subject_parameters(basis, truth, config)
    targets = {k: np.exp(v) for k, v in params["targets"].items() if k != "mu_gm"}
    anatomy = basis.anatomy
    out = {}
    for region in CORTEX_REGIONS:
        out[f"gm_{region}_cc"] = targets[f"gm_{region}"]
    out["cortical_gm_cc"] = sum(targets[f"gm_{r}"] for r in CORTEX_REGIONS)
    out["cerebellum_gm_cc"] = targets["gm_cerebellum_left"] + targets["gm_cerebellum_right"]
    for side in ("left", "right"):
        out[f"hippocampus_{side}_cc"] = targets[f"gm_hippocampus_{side}"]
        out[f"subcortical_gm_{side}_cc"] = targets[f"gm_subcortical_{side}"]
    out["hippocampus_cc"] = out["hippocampus_left_cc"] + out["hippocampus_right_cc"]
    out["amygdala_cc"] = targets["gm_amygdala_left"] + targets["gm_amygdala_right"]
    out["subcortical_gm_cc"] = out["subcortical_gm_left_cc"] + out["subcortical_gm_right_cc"]
    scale3 = np.exp(params["log_scale3"])
    # GM that never thins (brainstem, next to the ventricles) just scales with the head.
    fixed = [REGION_ID[n] - 1 for n in ("brainstem", "ventricle_left", "ventricle_right")]
    other = anatomy.gm_region[fixed].sum() * anatomy.voxel_cc * scale3
    out["gm_cc"] = sum(targets[f"gm_{r}"] for r in CONVERTED_REGIONS) + other
    out["wm_cc"] = targets["wm"]
    out["ventricles_cc"] = targets["ventricles"]
    out["csf_cc"] = targets["icv"] - out["gm_cc"] - out["wm_cc"]
    # Thickness: cortical GM volume / area, area ∝ scale^2 (2.7 mm on the template).
    template_cortex = sum(_template_cc(anatomy, r) for r in CORTEX_REGIONS)
    out["cortical_thickness_mm"] = 2.7 * out["cortical_gm_cc"] / (template_cortex * scale3 ** (2 / 3))
    out["scale"] = scale3 ** (1 / 3)
    out["log_jacobian_wm"] = params["jacobian"]
    out["ventricle_growth_mm"] = params["offset"]
    for r, name in enumerate(CONVERTED_REGIONS):
        out[f"thinning_{name}"] = params["conversion"][:, r]
    out["mu_gm"] = params["targets"]["mu_gm"] + truth["mu_gm_jitter"].to_numpy()
    return pd.DataFrame(out)


def expected_truth(truth: pd.DataFrame, sex, age) -> pd.DataFrame:
    """``truth`` rows re-cast to ``sex`` and ``age`` (ICV follows the sex)."""
    recast = truth.copy()
    recast["sex"] = np.broadcast_to(np.asarray(sex), (len(truth),)).copy()
    recast["age"] = np.broadcast_to(np.asarray(age, dtype=float), (len(truth),)).copy()
    icv_mean = np.array([ICV_MEAN[s] for s in recast["sex"]])
    recast["icv_cc"] = icv_mean * np.exp(ICV_LOG_SD * recast["z_icv"].to_numpy())
    return recast
