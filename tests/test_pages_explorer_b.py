"""AppTests of the GAN lab and Classifiers pages on the ``tiny`` phantom.

With the ``tiny_checkpoints`` fixture (every model type, a few steps) and with no
checkpoint at all: no exception, the key parts are there, selections land in the
URL, and moving a slider changes what the page shows.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import app_helpers  # noqa: E402
from app_helpers import query, rerun, widget  # noqa: E402

TIMEOUT = 300


def open_page(page: str, **params) -> AppTest:
    return app_helpers.open_page("tiny", page, timeout=TIMEOUT, **params)


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly specs by widget key (the key ends the element id)."""
    return {chart.proto.id.rsplit("-", 1)[-1]: json.loads(chart.proto.spec)
            for chart in at.get("plotly_chart")}


# ---------------------------------------------------------------- GAN lab

SECTION_CHARTS = {
    "samples": ("Samples", ("sample_grid",)),
    "generate": ("Generate: sex, age", ("conditioned_grid", "conditioned_swap", "sweep_generated",
                                        "sweep_true", "sweep_maps")),
    "walk": ("Interpolation", ("walk_frame", "walk_animation", "walk_strip")),
    "edit": ("Attribute directions", ("edit_brains", "edit_effectiveness", "edit_difference")),
}


@pytest.mark.parametrize("section", list(SECTION_CHARTS))
def test_gan_lab_sections_with_models(with_models, section):
    at = open_page("gan_lab", section=section)
    header, keys = SECTION_CHARTS[section]
    assert [h.value for h in at.header] == [header]  # one section per run
    specs = charts(at)
    assert set(specs) == set(keys), f"section {section!r} drew {sorted(specs)}"
    assert len(at.caption) >= len(specs)
    assert query(at, "section") == section


def test_gan_lab_opens_on_samples_and_switches_section(with_models):
    at = open_page("gan_lab")
    assert [h.value for h in at.header] == ["Samples"]
    labels = {m.label for m in at.metric}
    calibrated = {"Normalised Fréchet", "Two-sample AUC", "Diversity", "Flagged as copies"}
    assert calibrated <= labels or {"Fréchet ratio (uncalibrated)", "Two-sample AUC"} <= labels
    assert query(at, "seed") == "0"
    widget(at.radio, "Section").set_value("walk")
    rerun(at)
    assert [h.value for h in at.header] == ["Interpolation"]
    assert len(charts(at)["walk_animation"]["frames"]) == widget(at.slider, "Frames").value
    assert [b.label for b in at.get("download_button")] == ["Download 4D NIfTI", "Download PNG strip"]
    assert query(at, "method") == "slerp" and query(at, "section") == "walk"
    widget(at.radio, "Section").set_value("generate")
    rerun(at)
    assert [b.label for b in at.get("download_button")] == ["Download the sweep (4D NIfTI)"]
    widget(at.radio, "Section").set_value("edit")
    rerun(at)
    assert "Correlation with the true effect (this brain)" in {m.label for m in at.metric}


@pytest.mark.parametrize("params, section", [
    (dict(strength=-1.5), "edit"), (dict(method="lerp", frames=5), "walk"),
    (dict(csex="F"), "generate"), (dict(seed=3), "samples")])
def test_a_link_without_a_section_opens_the_one_its_settings_belong_to(with_models, params,
                                                                        section):
    at = open_page("gan_lab", **params)
    assert widget(at.radio, "Section").value == section
    assert query(at, "section") == section


def test_gan_lab_sliders_change_the_output(with_models):
    at = open_page("gan_lab", section="walk")
    before = charts(at)
    widget(at.slider, "Frame").set_value(3)
    after = charts(rerun(at))
    assert after["walk_frame"]["layout"]["title"]["text"].startswith("frame 3 of")
    assert after["walk_frame"]["data"][0]["z"] != before["walk_frame"]["data"][0]["z"]
    assert query(at, "frame") == "3"
    at = open_page("gan_lab", section="edit")
    before = charts(at)
    widget(at.slider, "Strength").set_value(-1.5)
    after = charts(rerun(at))
    assert after["edit_brains"]["data"][3]["z"] != before["edit_brains"]["data"][3]["z"]
    assert query(at, "strength") == "-1.5"


def test_gan_lab_url_reproduces_the_view(with_models):
    params = dict(seed=5, n=4, method="lerp", frames=5, attribute="sex")
    at = open_page("gan_lab", section="samples", **params)
    assert widget(at.number_input, "Seed").value == 5
    assert widget(at.slider, "Samples").value == 4
    at = open_page("gan_lab", section="walk", **params)
    assert widget(at.radio, "Path").value == "lerp"
    assert len(charts(at)["walk_animation"]["frames"]) == 5
    assert query(at, "attribute") == "sex"  # another section's setting stays in the link
    at = open_page("gan_lab", section="edit", **params)
    assert widget(at.radio, "Attribute").value == "sex"
    assert widget(at.number_input, "Sample seed").value == 5  # follows the Samples seed


def test_gan_lab_with_real_subject_endpoints(with_models, tiny):
    first, second = tiny.subject_ids[:2]
    params = dict(ends="subjects", refine=0, estart="subject", **{"from": first, "to": second})
    at = open_page("gan_lab", section="walk", **params)
    assert widget(at.selectbox, "From subject").value == first
    assert "walk_frame" in charts(at)
    assert "edit_brains" in charts(open_page("gan_lab", section="edit", **params))


def test_gan_lab_without_models(without_models):
    at = open_page("gan_lab")
    assert any("python -m brainlab train gan --cohort tiny" in i.value for i in at.info)
    assert not at.get("plotly_chart")


# ---------------------------------------------------------------- Classifiers

def test_classifiers_with_models(with_models):
    at = open_page("classifiers")
    specs = charts(at)
    for key in ("distributions", "fractions", "confusion", "calibration", "memorisation",
                "gallery_most", "gallery_least"):
        assert key in specs, f"chart {key!r} missing; found {sorted(specs)}"
    labels = {m.label for m in at.metric}
    assert {"Two-sample AUC", "Suspected copies"} <= labels
    assert len(at.dataframe) == 1  # nearest training subject per sample
    assert len(at.caption) >= len(specs)
    assert query(at, "model") == "sex-clf"


def test_classifiers_slider_and_model_choice_change_the_output(with_models):
    at = open_page("classifiers", n=16)
    before = charts(at)["distributions"]
    assert "(n=16)" in before["data"][1]["name"]
    widget(at.slider, "GAN samples").set_value(24)
    after = charts(rerun(at))["distributions"]
    assert "(n=24)" in after["data"][1]["name"]
    widget(at.radio, "Model").set_value("age-model")
    specs = charts(rerun(at))
    assert specs["distributions"]["layout"]["xaxis"]["title"]["text"] == "predicted age"
    assert query(at, "model") == "age-model" and query(at, "n") == "24"


def test_classifiers_without_models(without_models):
    at = open_page("classifiers")
    assert any("python -m brainlab train sex-clf --cohort tiny" in i.value for i in at.info)
    assert not at.get("plotly_chart")
