"""AppTests of the Reconstructions and Latent space pages on the ``tiny`` phantom.

With the ``tiny_checkpoints`` fixture (every model type, a few steps) and with no
checkpoint at all (the listing points at empty folders): no exception, the key
parts are there, and choosing a subject / representation / projection changes
what the page shows and the URL.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import app_helpers  # noqa: E402
from brainlab.analysis.probes import SEED_COLUMN  # noqa: E402
from app_helpers import (  # noqa: E402
    APP, CHROMIUM, CHROMIUM_ARGS, array, chart_specs, query, rerun, serve_app, wait_until_idle, widget,
)

TIMEOUT = 240


def open_page(page: str, **params) -> AppTest:
    return app_helpers.open_page("tiny", page, timeout=TIMEOUT, **params)


def chart_titled(at: AppTest, start: str) -> dict:
    for spec in chart_specs(at):
        title = (spec["layout"].get("title") or {}).get("text") or ""
        if title.startswith(start):
            return spec
    raise AssertionError(f"no chart titled {start!r}…")


def recon_viewer(at: AppTest) -> dict:
    """The original | reconstruction | error view: 3 rows x 3 planes of heatmaps."""
    views = [s for s in chart_specs(at) if len([t for t in s["data"] if t["type"] == "heatmap"]) == 9]
    assert len(views) == 1, "expected one 3x3 tri-planar reconstruction view"
    return views[0]


# ---------------------------------------------------------------- Reconstructions

def test_reconstructions_with_models(with_models, tiny):
    at = open_page("reconstructions")
    assert [h.value for h in at.header] == ["MRI autoencoder", "Morphometry autoencoder"]
    heldout = tiny.split(0).test
    errors = at.dataframe[0].value
    assert len(errors) == len(heldout) and {"ssim", "psnr", "mean |error|"} <= set(errors.columns)
    assert [m.label for m in at.metric] == ["SSIM (in brain)", "PSNR (in brain)", "mean |error|"]
    first = tiny.subject_ids[heldout[0]]
    assert widget(at.selectbox, "Subject").value == first and query(at, "subject") == first
    assert any(m.value.startswith(f"**{first} · ") for m in at.markdown)
    viewer = recon_viewer(at)
    assert viewer["layout"]["coloraxis3"]["colorbar"]["title"]["text"] == "|error|"
    chart_titled(at, f"{first} · ")  # feature bars name the same subject
    chart_titled(at, "R² per feature")
    assert len(at.caption) >= len(at.get("plotly_chart"))
    # Every card shows its quality verdict.
    verdicts = [e.value for e in list(at.success) + list(at.warning) + list(at.error)]
    assert any("MRI autoencoder" in v for v in verdicts)
    assert any("morphometry autoencoder" in v for v in verdicts)

    # Another held-out subject: metrics, viewer title and URL follow.
    other = tiny.subject_ids[heldout[-1]]
    widget(at.selectbox, "Subject").set_value(other)
    rerun(at)
    assert query(at, "subject") == other
    assert any(m.value.startswith(f"**{other} · ") for m in at.markdown)

    # Slices: one set of sliders moves all three rows.
    widget(at.slider, "z: inferior → superior").set_value(2)
    rerun(at)
    assert query(at, "z") == "2"
    viewer = recon_viewer(at)
    from brainlab.viz import plane_slice
    from brainlab.viz.slices import grid_geometry

    origin, spacing = grid_geometry(tiny.affine)
    assert viewer["layout"]["annotations"][0]["text"] == f"axial z = {origin[2] + 2 * spacing[2]:.0f} mm"
    expected = plane_slice(tiny.images[tiny.index_of(other)], "axial", 2)
    np.testing.assert_allclose(array(viewer["data"][0]["z"], float), expected, rtol=1e-5)
    assert (array(viewer["data"][3]["z"], float).shape == array(viewer["data"][6]["z"], float).shape
            == expected.shape)

    # "any subject" offers every subject.
    widget(at.radio, "Subjects").set_value("all")
    rerun(at)
    assert query(at, "subjects") == "all"
    assert len(widget(at.selectbox, "Subject").options) == len(tiny)


def test_reconstructions_url_selects_subject(with_models, tiny):
    subject = tiny.subject_ids[tiny.split(0).test[1]]
    at = open_page("reconstructions", subject=subject, x=1)
    assert widget(at.selectbox, "Subject").value == subject
    assert widget(at.slider, "x: left → right").value == 1


def test_reconstructions_without_models(without_models):
    at = open_page("reconstructions")
    hints = " ".join(i.value for i in at.info)
    assert "python -m brainlab train mri-ae --cohort tiny" in hints
    assert "python -m brainlab train morph-ae --cohort tiny" in hints
    assert len(at.get("plotly_chart")) == 0


# ---------------------------------------------------------------- Latent space

def test_latent_space_with_models(with_models, tiny):
    at = open_page("latent_space")
    representation = widget(at.selectbox, "Representation")
    assert {"raw MRI voxels (PCA)", "MRI-AE latent", "raw morphometry",
            "morph-AE latent"} <= set(representation.options)
    assert query(at, "rep") == "voxels" and query(at, "proj") == "pca"
    scatter = chart_titled(at, "raw MRI voxels (PCA) · PCA 2D")
    ids = {row[0] for trace in scatter["data"] for row in trace["customdata"]}
    assert ids == set(tiny.subject_ids)
    # The subject panel shows the MRI and its MRI-AE reconstruction.
    views = [s for s in chart_specs(at) if len([t for t in s["data"] if t["type"] == "heatmap"]) == 6]
    assert views, "no MRI + reconstruction view"

    # Switch to the MRI-AE latent, coloured by sex, in 3D.
    representation.set_value("mri-ae")
    widget(at.selectbox, "Colour by").set_value("sex")
    widget(at.radio, "Dimensions").set_value(3)
    rerun(at)
    assert (query(at, "rep"), query(at, "colour"), query(at, "dims")) == ("mri-ae", "sex", "3")
    scatter = chart_titled(at, "MRI-AE latent · PCA 3D")
    assert scatter["data"][0]["type"] == "scatter3d"
    assert {t["name"].split(" (")[0] for t in scatter["data"]} >= {"female", "male"}
    assert any("MRI autoencoder" in e.value for e in list(at.success) + list(at.warning) + list(at.error))

    # Choosing a subject circles it on the map and puts it in the URL.
    subject = tiny.subject_ids[7]
    widget(at.selectbox, "Subject").set_value(subject)
    rerun(at)
    assert query(at, "subject") == subject
    scatter = chart_titled(at, "MRI-AE latent")
    assert scatter["data"][-1]["name"] == f"selected: {subject}"

    # Probes: the button fills the table, with the seed study in its own column. A table
    # already in the result store (another test or `warm` computed it) shows at once.
    def probe_table_shown():
        return any(d.value is not None and "accuracy (5-fold CV)" in getattr(d.value, "columns", [])
                   for d in at.dataframe)

    if not probe_table_shown():
        widget(at.button, "Run probes").click()
        rerun(at)
    problems = [e.value for e in at.error if "Could not run the probes" in e.value]
    if problems:  # tiny's age bins can be too small for stratified folds; the page says so
        assert "class" in problems[0]
    else:
        table = next(d.value for d in at.dataframe if "accuracy (5-fold CV)" in d.value.columns)
        assert set(table["representation"]) == {"raw MRI", "mri-ae latent"}
        assert any(str(v).startswith("0.937") for v in table[SEED_COLUMN])


def test_latent_space_umap_and_ground_truth_colour(with_models, tiny):
    at = open_page("latent_space", rep="morphometry", proj="umap", nn=5, colour="truth: z_icv")
    assert query(at, "proj") == "umap" and widget(at.slider, "UMAP neighbours").value == 5
    scatter = chart_titled(at, "raw morphometry · UMAP 2D")
    assert scatter["layout"]["xaxis"]["title"]["text"] == "UMAP 1"
    colour_bars = [t["marker"]["colorbar"]["title"]["text"] for t in scatter["data"]
                   if "colorbar" in t["marker"]]
    assert colour_bars == ["truth: z_icv"]
    widget(at.radio, "Projection").set_value("pca")
    rerun(at)
    assert query(at, "proj") == "pca" and query(at, "nn") is None


def test_latent_space_without_models(without_models, tiny):
    at = open_page("latent_space", rep="mri-ae")
    assert widget(at.selectbox, "Representation").options == ["raw MRI voxels (PCA)",
                                                              "raw morphometry"]
    assert query(at, "rep") == "voxels"  # an unavailable choice in the URL falls back
    assert any("`mri-ae`" in c.value for c in at.caption)  # how to add the latents
    assert any("python -m brainlab train mri-ae --cohort tiny" in c.value for c in at.caption)
    chart_titled(at, "raw MRI voxels (PCA) · PCA 2D")


def test_table_only_cohort_shows_the_morphometry_part(fixture_csv, monkeypatch, tmp_path):
    """A CSV cohort has no images: only the morph-AE part of Reconstructions, and the
    morphometry representations on Latent space."""
    from brainlab import paths
    from brainlab.data import load
    from brainlab.train_recipes import TRAINERS, RecipeOptions

    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", tmp_path / "no-shipped")
    monkeypatch.setattr(paths, "user_checkpoints", lambda: tmp_path / "checkpoints")
    cohort = load(str(fixture_csv))
    TRAINERS["morph-ae"](cohort, RecipeOptions(out=tmp_path / "checkpoints" / "morph-ae",
                                               epochs=2, batch_size=64, seed=0))
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["cohort"] = str(fixture_csv)
    rerun(at)
    rerun(at.switch_page("app_pages/reconstructions.py"))
    assert not at.exception, [e.value for e in at.exception]
    assert any("table-only" in i.value for i in at.info)
    chart_titled(at, "R² per feature")
    assert len(at.get("plotly_chart")) == 2 and len(at.metric) == 0
    subject = widget(at.selectbox, "Subject")
    assert subject.value in cohort.subject_ids

    rerun(at.switch_page("app_pages/latent_space.py"))
    assert not at.exception, [e.value for e in at.exception]
    assert widget(at.selectbox, "Representation").options == ["raw morphometry", "morph-AE latent"]
    chart_titled(at, "raw morphometry · PCA 2D")
    st.cache_data.clear()


# ---------------------------------------------------------------- real browser

def test_latent_map_click_opens_subject_in_chromium(with_models, tiny):
    """Clicking a point of the 2D map (a real plotly click in chromium) opens that subject."""
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    # The server finds the fixture's checkpoints through the same BRAINLAB_CACHE.
    with serve_app("tiny") as url:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1200})
                page.goto(f"{url}/latent_space?cohort=tiny&rep=morphometry&colour=sex",
                          wait_until="domcontentloaded")
                plot = ".st-key-map_morphometry_pca .js-plotly-plot"
                page.wait_for_selector(plot, timeout=180_000)
                wait_until_idle(page, timeout_s=180)
                # Screen position of a point that is not the current subject.
                point = page.evaluate("""(selector) => {
                    const gd = document.querySelector(selector);
                    const trace = gd._fullData[0], i = trace.x.length - 1;
                    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                    const box = gd.getBoundingClientRect();
                    return {x: box.left + xa._offset + xa.d2p(trace.x[i]),
                            y: box.top + ya._offset + ya.d2p(trace.y[i]),
                            id: trace.customdata[i][0]}; }""", plot)
                assert point["id"] != tiny.subject_ids[0]
                page.mouse.click(point["x"], point["y"])
                page.wait_for_function(
                    "(id) => window.location.search.includes('subject=' + id)", arg=point["id"],
                    timeout=60_000)
                wait_until_idle(page, timeout_s=60)
                strong = page.locator('[data-testid="stMarkdownContainer"] strong').all_inner_texts()
                assert point["id"] in strong
            finally:
                browser.close()
