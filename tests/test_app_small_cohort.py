"""Five real-looking NIfTI brains (what a user uploads) on every page: a useful view or a
specific message, never a traceback, a numpy repr, or a black first slice.

The five brains are the ``tiny`` phantom exported to NIfTI (as ``python -m brainlab
cohort export tiny`` does) with the first five subjects kept. The loader resamples
them to the default 58x70x58 grid, so the shipped checkpoints fit; none of them was
trained on this cohort, so pages judge them on all five subjects.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402

import app_helpers  # noqa: E402
from app_helpers import query, rerun, widget  # noqa: E402

TIMEOUT = 300
NUMPY_REPR = re.compile(r"np\.(int|float|str|bool)\w*\(|array\(")


@pytest.fixture(scope="module")
def five_brains(tmp_path_factory) -> str:
    try:
        from brainlab.data import load
        tiny = load("tiny")
    except ImportError:
        pytest.skip("the phantom generator is not available")
    from brainlab.data.export import export_cohort

    exported = export_cohort(tiny, tmp_path_factory.mktemp("export"))
    folder = tmp_path_factory.mktemp("five")
    participants = (exported / "participants.tsv").read_text().splitlines()
    (folder / "participants.tsv").write_text("\n".join(participants[:6]) + "\n")
    for line in participants[1:6]:
        name = line.split("\t")[0]
        shutil.copy(next(exported.glob(f"{name}_*.nii*")), folder)
    return str(folder)


@pytest.fixture
def fresh_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def messages(at) -> list[str]:
    return [e.value for kind in ("error", "warning", "info", "caption", "markdown", "subheader")
            for e in getattr(at, kind)]


def open_five(source: str, page: str, **params):
    at = app_helpers.open_page(source, page, timeout=TIMEOUT, **params)
    bad = [m for m in messages(at) if NUMPY_REPR.search(m)]
    assert not bad, bad
    return at


def charts(at) -> dict[str, dict]:
    return {chart.proto.id.rsplit("-", 1)[-1]: json.loads(chart.proto.spec)
            for chart in at.get("plotly_chart")}


def assert_centre_slices(at, shape=(58, 70, 58)) -> None:
    sliders = [widget(at.slider, name).value for name in
               ("x: left → right", "y: posterior → anterior", "z: inferior → superior")]
    assert sliders == [size // 2 for size in shape]


def test_home_and_cohort(five_brains, fresh_caches):
    at = open_five(five_brains, "home")
    assert {m.label: m.value for m in at.metric}["subjects"] == "5"
    at = open_five(five_brains, "cohort")
    assert_centre_slices(at)
    assert "viewer" in charts(at)
    notes = " ".join(i.value for i in at.info)
    assert "No age effect: the oldest bin (" in notes and "no morphometry" in notes


def test_reconstructions_list_and_judge_all_five(five_brains, fresh_caches):
    at = open_five(five_brains, "reconstructions")
    assert any(h.value.startswith("Judged on all 5 subjects") for h in at.subheader)
    assert len(at.dataframe[0].value) == 5
    assert len(widget(at.selectbox, "Subject").options) == 5
    assert_centre_slices(at)
    viewer = charts(at)["recon_viewer"]
    original = app_helpers.array(viewer["data"][0]["z"], float)
    assert original.max() > 0  # the centre slice shows brain, not black background
    assert query(at, "z") == "29"
    # No morphometry in five NIfTI files: said so, not a command that would fail.
    assert any("has no morphometry columns" in i.value for i in at.info)
    assert not any("train morph-ae" in i.value for i in at.info)


def test_latent_space_maps_five_and_explains_probes(five_brains, fresh_caches):
    at = open_five(five_brains, "latent_space")
    scatter = next(s for s in charts(at).values()
                   if (s["layout"].get("title") or {}).get("text", "").startswith("raw MRI"))
    assert sum(len(t["customdata"]) for t in scatter["data"] if t.get("customdata")) >= 5
    assert not any("morph-ae" in c.value for c in at.caption)  # no latent without morphometry
    widget(at.button, "Run probes").click()
    rerun(at)
    assert not at.exception
    problem = next(e.value for e in at.error if "Could not run the probes" in e.value)
    assert "on 5 subjects" in problem and not NUMPY_REPR.search(problem)


def test_gan_lab_samples_walks_and_edits_five(five_brains, fresh_caches):
    drawn = set()
    for section in ("samples", "walk", "edit"):
        drawn |= set(charts(open_five(five_brains, "gan_lab", section=section)))
    assert {"sample_grid", "walk_frame", "edit_brains"} <= drawn


def test_classifiers_judge_all_five(five_brains, fresh_caches):
    at = open_five(five_brains, "classifiers", n=8)
    assert any("Judged on all 5 subjects" in c.value and "not this one" in c.value
               for c in at.caption)
    assert "distributions" in charts(at)
    assert any("not trained on this cohort" in c.value for c in at.caption)  # no copy check
    names = [t["name"] for t in charts(at)["distributions"]["data"]]
    assert any("(n=5)" in name for name in names), names
