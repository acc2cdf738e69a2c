"""Metrics, memorisation and group means on tiny 12x14x16 volumes."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from threadpoolctl import threadpool_limits

from brainlab.analysis.means import difference_map, group_mean_images
from brainlab.analysis.memorisation import memorisation_report, nearest_neighbour_distances
from brainlab.analysis.metrics import (calibration_curve_points, classifier_metrics, diversity,
                                       gan_metrics, pca_frechet, psnr, reconstruction_metrics,
                                       regression_metrics, ssim3d, two_sample_auc)
from brainlab.data.cohort import ImageArray
from brainlab.errors import BrainlabInputError

GRID = (12, 14, 16)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny matrices: threaded BLAS only adds contention on a shared CPU."""
    with threadpool_limits(limits=1):
        yield


def _volumes(n, seed, smooth=1.5, offset=0.0):
    """Smooth random volumes in [0, 1], a stand-in for brains."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, *GRID))
    vols = np.stack([gaussian_filter(v, smooth) for v in noise])
    vols = 0.5 + 2.0 * vols + offset
    return np.clip(vols, 0, 1).astype(np.float32)


def test_ssim_and_psnr():
    a = _volumes(1, 0)[0]
    noisy = np.clip(a + 0.05 * np.random.default_rng(1).normal(size=GRID), 0, 1)
    noisier = np.clip(a + 0.2 * np.random.default_rng(1).normal(size=GRID), 0, 1)
    assert ssim3d(a, a) == pytest.approx(1.0)
    assert 0 < ssim3d(a, noisier) < ssim3d(a, noisy) < 1
    assert ssim3d(a, noisy) == pytest.approx(ssim3d(noisy, a))
    assert psnr(a, a) == float("inf")
    assert psnr(np.zeros(GRID), np.full(GRID, 0.1)) == pytest.approx(20.0)
    assert psnr(a, noisy) > psnr(a, noisier)
    with pytest.raises(BrainlabInputError, match="same shape"):
        ssim3d(a, a.transpose(2, 1, 0))
    with pytest.raises(BrainlabInputError, match="3D volumes"):
        psnr(a[0], a[0])


def test_ssim_of_constant_volumes_matches_formula():
    # Zero variance: SSIM reduces to the luminance term (2 ab + C1) / (a^2 + b^2 + C1).
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.3 * 0.6 + c1) / (0.3**2 + 0.6**2 + c1)
    assert ssim3d(np.full(GRID, 0.3), np.full(GRID, 0.6)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_shifted_copy_is_squared_shift():
    from brainlab.analysis.metrics import _frechet_distance

    x = np.random.default_rng(20).normal(size=(50, 2))
    assert _frechet_distance(x, x + [3.0, 4.0]) == pytest.approx(25.0, rel=1e-6)
    # Same mean, covariance scaled by 4: distance = tr(C) + tr(4C) - 2 tr(2C) = tr(C).
    trace = np.trace(np.cov(x, rowvar=False))
    assert _frechet_distance(x, 2 * (x - x.mean(0)) + x.mean(0)) == pytest.approx(trace, rel=1e-6)


def test_reconstruction_metrics_per_subject():
    originals = _volumes(4, 2)
    recon = originals.copy()
    recon[1] = np.clip(recon[1] + 0.1, 0, 1)
    result = reconstruction_metrics(ImageArray(originals), recon)
    assert result["n"] == 4 and len(result["per_subject_ssim"]) == 4
    assert result["per_subject_ssim"][0] == pytest.approx(1.0)
    assert result["per_subject_ssim"][1] < 1.0
    assert np.isfinite(result["psnr"]) and result["per_subject_psnr"][0] == float("inf")
    assert result["ssim_sd"] > 0
    with pytest.raises(BrainlabInputError, match="equal, non-zero numbers"):
        reconstruction_metrics(originals, recon[:3])


def test_pca_frechet_floor_and_shifted_samples():
    train, heldout = _volumes(40, 3), _volumes(20, 4)
    good = _volumes(20, 5)
    # Mode collapse: every sample is one brain plus a little noise.
    bad = np.clip(train[0] + 0.02 * np.random.default_rng(6).normal(size=(20, *GRID)), 0, 1)
    near = pca_frechet(train, heldout, good, n_components=8)
    far = pca_frechet(train, heldout, bad, n_components=8)
    assert near["frechet_floor"] == far["frechet_floor"] > 0
    assert near["frechet_ratio"] < 3 < far["frechet_ratio"]
    assert near["n_components"] == 8
    capped = pca_frechet(train, heldout, good[:5], n_components=32)
    assert capped["n_components"] == 4 and capped["n_generated"] == 5
    with pytest.raises(BrainlabInputError, match=">= 2 images in each set"):
        pca_frechet(train, heldout, good[:1])
    with pytest.raises(BrainlabInputError, match="voxel counts differ"):
        pca_frechet(train, heldout, good[:, :-1])


def test_two_sample_auc_separates_only_different_sets():
    real = _volumes(30, 7)
    same = _volumes(30, 8)
    different = _volumes(30, 9, smooth=0.7, offset=0.2)
    assert two_sample_auc(real, different) > 0.95
    assert abs(two_sample_auc(real, same) - 0.5) < 0.25
    with pytest.raises(BrainlabInputError, match="need >= 2 real"):
        two_sample_auc(real[:1], same)


def test_diversity():
    varied = _volumes(10, 10)
    copies = np.repeat(varied[:1], 10, axis=0)
    assert diversity(copies) == pytest.approx(0.0, abs=1e-6)
    assert diversity(varied) > 0.05
    subset = diversity(ImageArray(varied), max_samples=5)
    assert subset > 0.05
    with pytest.raises(BrainlabInputError, match=">= 2 volumes"):
        diversity(varied[:1])


def test_nearest_neighbour_distances_chunked():
    reference = _volumes(10, 11)
    queries = reference[[7, 2]] + 0.01
    distances, indices = nearest_neighbour_distances(queries, ImageArray(reference), chunk=3)
    np.testing.assert_array_equal(indices, [7, 2])
    np.testing.assert_allclose(distances, 0.01, atol=1e-4)  # RMS per voxel
    with pytest.raises(BrainlabInputError, match="same grid"):
        nearest_neighbour_distances(queries[:, :-1], reference)


def test_memorisation_detects_planted_copy():
    train, heldout = _volumes(30, 12), _volumes(20, 13)
    generated = _volumes(12, 14)
    generated[5] = train[17]  # the generator copied a training brain
    report = memorisation_report(generated, train, heldout)
    assert report["suspected"][5]
    assert report["generated_nearest_train"][5] == 17
    assert report["generated_distances"][5] == pytest.approx(0.0, abs=1e-4)
    assert report["n_suspected"] == int(report["suspected"].sum()) <= 2
    assert report["heldout_distances"].shape == (20,)
    clean = memorisation_report(_volumes(12, 14), train, heldout)
    assert not clean["suspected"][5]


def test_gan_metrics_is_json_safe():
    import json

    train, heldout, generated = _volumes(24, 15), _volumes(12, 16), _volumes(12, 17)
    result = gan_metrics(train, heldout, generated)
    json.dumps(result)
    for key in ("frechet", "frechet_floor", "frechet_ratio", "two_sample_auc",
                "diversity_generated", "diversity_real", "memorisation_fraction_suspected"):
        assert np.isfinite(result[key]), key
    assert result["n_train"] == 24


def test_classifier_metrics():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    result = classifier_metrics(y, p)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["balanced_accuracy"] == pytest.approx(0.75)
    assert result["roc_auc"] == pytest.approx(15 / 16)
    assert result["n"] == 8 and 0 <= result["ece"] <= 1
    perfect = classifier_metrics([0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0])
    assert perfect["ece"] == pytest.approx(0.0)
    one_class = classifier_metrics([1, 1, 1], [0.9, 0.8, 0.3])
    assert one_class["roc_auc"] is None and "only class 1" in one_class["note"]
    with pytest.raises(BrainlabInputError, match="must be 0/1"):
        classifier_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(BrainlabInputError, match=r"probabilities in \[0, 1\]"):
        classifier_metrics([0, 1], [0.1, 1.2])


def test_calibration_curve_points_skips_empty_bins():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    curve = calibration_curve_points(y, p, n_bins=10)
    np.testing.assert_array_equal(curve["count"], [2, 1, 2])
    np.testing.assert_allclose(curve["mean_predicted"], [0.05, 0.55, 0.95])
    np.testing.assert_allclose(curve["fraction_positive"], [0, 1, 1])


def test_regression_metrics():
    result = regression_metrics([20, 30, 40, 50], [22, 29, 43, 50])
    assert result["mae"] == pytest.approx(1.5)
    assert result["mean_error"] == pytest.approx(1.0)
    assert 0.95 < result["r"] <= 1 and result["n"] == 4
    constant = regression_metrics([20, 30], [25, 25])
    assert constant["r"] is None and "undefined" in constant["note"]
    with pytest.raises(BrainlabInputError, match="same, non-zero length"):
        regression_metrics([1, 2, 3], [1, 2])


def test_group_means_stream_in_chunks():
    images = _volumes(7, 18)
    groups = np.array(["F", "M", "F", None, "M", "F", "M"], dtype=object)
    means = group_mean_images(ImageArray(images), groups, chunk=2)
    assert list(means) == ["F", "M"]
    np.testing.assert_allclose(means["F"], images[[0, 2, 5]].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(means["M"], images[[1, 4, 6]].mean(axis=0), rtol=1e-5)
    assert means["F"].shape == GRID
    diff = difference_map(means["M"], means["F"])
    np.testing.assert_allclose(diff, means["M"] - means["F"])
    bins = group_mean_images(images, np.array([0, 1, 1, 0, np.nan, 1, 0]), chunk=3)
    assert sorted(bins) == [0.0, 1.0]
    with pytest.raises(BrainlabInputError, match="one label per image"):
        group_mean_images(images, groups[:5])
    with pytest.raises(BrainlabInputError, match="same shape"):
        difference_map(means["M"], means["F"][:, :, :-1])


# ---------------------------------------------------------------- calibrated metrics

def _brains(n, seed):
    """Smooth random 'brains' inside an ellipsoid on the 12x14x16 grid, background 0."""
    axes = np.meshgrid(*[np.linspace(-1, 1, s) for s in GRID], indexing="ij")
    inside = sum(a ** 2 for a in axes) < 0.7
    return _volumes(n, seed) * inside


def test_mean_brain_mask_and_masked_ssim_psnr():
    from brainlab.analysis.metrics import mean_brain_mask, psnr_masked, ssim3d_masked

    brains = _brains(6, 30)
    mask = mean_brain_mask(ImageArray(brains), chunk=4)
    assert mask.shape == GRID and 0 < mask.mean() < 0.6
    np.testing.assert_array_equal(mask, mean_brain_mask(brains.mean(axis=0)))
    a = brains[0]
    noisy = np.clip(a + 0.05 * np.random.default_rng(2).normal(size=GRID), 0, 1) * mask
    # Background agrees exactly, so the whole-box SSIM flatters; inside the brain it is lower.
    assert ssim3d_masked(a, noisy, mask) < ssim3d(a, noisy)
    assert ssim3d_masked(a, a, mask) == pytest.approx(1.0)
    assert psnr_masked(a, noisy, mask) < psnr(a, noisy)
    with pytest.raises(BrainlabInputError, match="expected the volume shape"):
        ssim3d_masked(a, noisy, mask[:, :, :-1])
    with pytest.raises(BrainlabInputError, match="mask is empty"):
        psnr_masked(a, noisy, np.zeros(GRID, bool))
    with pytest.raises(BrainlabInputError, match="no voxel of the mean image exceeds"):
        mean_brain_mask(np.zeros((2, *GRID)))


def test_reconstruction_baselines_rank_mean_below_pca():
    from brainlab.analysis.metrics import masked_reconstruction_metrics, reconstruction_baselines

    train, test = _brains(30, 31), _brains(6, 32)
    baselines = reconstruction_baselines(train, test, code_size=8)
    assert baselines["pca_components"] == 8 and baselines["n_train_fit"] == 30
    assert baselines["pca"]["ssim"] > baselines["mean_brain"]["ssim"]
    assert baselines["pca"]["psnr"] > baselines["mean_brain"]["psnr"]
    perfect = masked_reconstruction_metrics(test, test, baselines_mask(train))
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["ssim"] > baselines["pca"]["ssim"]
    capped = reconstruction_baselines(train, test, code_size=64, max_train=10)
    assert capped["pca_components"] == 9 and capped["n_train_fit"] == 10
    with pytest.raises(BrainlabInputError, match="code_size must be >= 1"):
        reconstruction_baselines(train, test, code_size=0)


def baselines_mask(train):
    from brainlab.analysis.metrics import mean_brain_mask

    return mean_brain_mask(train)


def test_normalised_frechet_held_out_real_scores_about_one():
    from brainlab.analysis.metrics import (fit_frechet_space, mean_sd_over_seeds,
                                           normalised_frechet)

    train = _volumes(60, 40)
    heldout, more_real = _volumes(40, 41), _volumes(40, 42)
    collapsed = np.clip(train[0] + 0.02 * np.random.default_rng(43).normal(size=(40, *GRID)), 0, 1)
    real = mean_sd_over_seeds(
        lambda seed: normalised_frechet(train, heldout, _volumes(40, 100 + seed), n_components=6,
                                        seed=seed))
    assert real["n_seeds"] == 5 and len(real["normalised_frechet"]["values"]) == 5
    assert 0.7 < real["normalised_frechet"]["mean"] < 1.4
    assert real["normalised_frechet"]["sd"] > 0
    bad = normalised_frechet(train, heldout, collapsed, n_components=6)
    assert bad["normalised_frechet"] > 3
    # Unequal set sizes are subsampled to the smaller one.
    uneven = normalised_frechet(train, heldout, more_real[:15], n_components=6)
    assert uneven["n_each"] == 15 and uneven["n_components"] == 6
    space = fit_frechet_space(train, n_components=6)
    reused = normalised_frechet(None, heldout, collapsed, space=space)
    assert reused["normalised_frechet"] == pytest.approx(bad["normalised_frechet"])
    with pytest.raises(BrainlabInputError, match=">= 5 seeds"):
        mean_sd_over_seeds(lambda seed: 1.0, seeds=[0, 1])


def test_auc_confidence_interval_matches_sklearn_and_covers():
    from sklearn.metrics import roc_auc_score

    from brainlab.analysis.metrics import auc_confidence_interval, two_sample_auc_ci

    rng = np.random.default_rng(50)
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    scores = rng.normal(size=100) + 1.0 * y
    scores[:5] = scores[60:65]  # some ties
    result = auc_confidence_interval(y, scores)
    assert result["auc"] == pytest.approx(roc_auc_score(y, scores))
    assert result["low"] < result["auc"] < result["high"] and result["se"] > 0
    wide = auc_confidence_interval(y[::4], scores[::4])
    assert wide["high"] - wide["low"] > result["high"] - result["low"]
    same = two_sample_auc_ci(_volumes(30, 51), _volumes(30, 52))
    assert same["low"] < 0.6 and same["n_real"] == same["n_generated"] == 30
    different = two_sample_auc_ci(_volumes(30, 51), _volumes(30, 53, smooth=0.7, offset=0.2))
    assert different["low"] > 0.8
    with pytest.raises(BrainlabInputError, match=">= 2 of each class"):
        auc_confidence_interval([0, 1, 1], [0.1, 0.2, 0.3])


def test_calibrated_memorisation_finds_planted_copies_not_new_brains():
    from brainlab.analysis.memorisation import calibrated_memorisation

    train, heldout = _volumes(40, 60), _volumes(30, 61)
    unseen = _volumes(20, 62)
    copies = np.clip(train[[3, 9, 27]] + 0.01 * np.random.default_rng(63).normal(size=(3, *GRID)),
                     0, 1).astype(np.float32)
    generated = np.concatenate([unseen, copies])
    report = calibrated_memorisation(generated, ImageArray(train), heldout, n_planted=10)
    assert report["planted_recall"] == pytest.approx(1.0) and report["n_planted"] == 10
    assert report["flagged"][-3:].all()
    np.testing.assert_array_equal(report["generated_nearest_train"][-3:], [3, 9, 27])
    assert report["flagged"][:20].mean() <= 0.2
    assert report["n_train"] == 40 and report["heldout_flagged"] <= 0.1
    assert 0 <= report["heldout_smoothed_flagged"] <= 1
    with pytest.raises(BrainlabInputError, match="n_planted must be >= 1"):
        calibrated_memorisation(generated, train, heldout, n_planted=0)
    # Copies rendered the way a model would (here: blurred) are still found; unrelated
    # brains passed off as copies are not.
    rendered = np.stack([gaussian_filter(v, 0.7) for v in train[[1, 5]]])
    found = calibrated_memorisation(generated, train, heldout, planted=(rendered, [1, 5]))
    assert found["planted_recall"] == pytest.approx(1.0) and found["n_planted"] == 2
    fake = calibrated_memorisation(generated, train, heldout, planted=(unseen[:2], [1, 5]))
    assert fake["planted_recall"] == 0.0
    with pytest.raises(BrainlabInputError, match="planted train indices must be in 0..39"):
        calibrated_memorisation(generated, train, heldout, planted=(rendered, [1, 40]))


def test_is_poor_calls_a_constant_predictor_poor():
    from brainlab.analysis.metrics import (is_poor, majority_baseline, mean_predictor_baseline,
                                           regression_metrics)

    rng = np.random.default_rng(70)
    y_train, y_test = rng.integers(0, 2, 80), np.r_[np.zeros(12, int), np.ones(8, int)]
    constant = classifier_metrics(y_test, np.full(len(y_test), 0.4))
    majority = majority_baseline(y_train, y_test)
    assert majority["balanced_accuracy"] == pytest.approx(0.5)
    assert majority["majority_rate"] == pytest.approx(0.6)
    assert is_poor("balanced_accuracy", constant["balanced_accuracy"], majority["balanced_accuracy"])
    good = classifier_metrics(y_test, np.where(y_test == 1, 0.8, 0.2))
    assert not is_poor("balanced_accuracy", good["balanced_accuracy"], majority["balanced_accuracy"])
    ages_train, ages_test = rng.uniform(22, 37, 80), rng.uniform(22, 37, 20)
    mean_only = mean_predictor_baseline(ages_train, ages_test)
    flat_model = regression_metrics(ages_test, np.full(20, 29.8))
    assert is_poor("mae", flat_model["mae"], mean_only["mae"])
    assert not is_poor("mae", regression_metrics(ages_test, ages_test + 0.5)["mae"], mean_only["mae"])
    assert is_poor("roc_auc", None, 0.5)
    with pytest.raises(BrainlabInputError, match="unknown metric 'f1'"):
        is_poor("f1", 0.9, 0.5)


def test_morphometry_baselines_on_the_small_cohort(small_cohort):
    from brainlab.analysis.metrics import morphometry_baselines

    split = small_cohort.split(seed=0)
    train, test = np.r_[split.train, split.val], split.test
    sex = morphometry_baselines(small_cohort, train, test, target="sex")
    assert sex["icv_only"] is None and "no ICV column" in sex["note"]
    assert sex["all_features"]["n"] == len(test) and sex["n_features"] == 3
    age = morphometry_baselines(small_cohort, train, test, target="age")
    assert np.isfinite(age["all_features"]["mae"])
    with pytest.raises(BrainlabInputError, match="target must be 'sex' or 'age'"):
        morphometry_baselines(small_cohort, train, test, target="iq")


def test_age_bin_metrics_beside_majority_rate():
    from brainlab.analysis.metrics import age_bin_metrics

    y = np.array([0, 0, 1, 1, 0, 1, 2, 2, 0, 2, 1, 1])
    sex = np.array(list("FFFFMMMMMMFF"))
    informative = np.eye(3)[y] * 0.7 + 0.1
    result = age_bin_metrics(y, informative, sex)
    assert result["balanced_accuracy"] == pytest.approx(1.0)
    assert result["majority_rate"] == pytest.approx(5 / 12)
    assert result["auc_youngest_vs_oldest_M"] == pytest.approx(1.0)
    assert result["auc_youngest_vs_oldest_F"] is None  # no F subject in the oldest bin
    always_middle = np.tile([0.2, 0.6, 0.2], (12, 1))
    flat = age_bin_metrics(y, always_middle, sex)
    assert flat["accuracy"] == pytest.approx(flat["majority_rate"])
    assert flat["balanced_accuracy"] == pytest.approx(1 / 3)
    assert flat["auc_youngest_vs_oldest_M"] == pytest.approx(0.5)
    with pytest.raises(BrainlabInputError, match="bin codes 0..2"):
        age_bin_metrics(y + 1, informative, sex)
