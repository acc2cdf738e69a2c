"""AppTests: every page runs without an exception on small cohorts and shows its key parts.

Cohorts: the ``tiny`` phantom preset (when the phantom generator is present), a
12x14x16 HCP-tensor folder written here (images, so the viewer and mean brains run)
and the shared HCP CSV fixture (table only, so pages must cope without images).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import app_helpers  # noqa: E402
from app_helpers import APP, array, chart_specs, rerun, widget  # noqa: E402

SHAPE = (12, 14, 16)
TIMEOUT = 180


def phantom_available() -> bool:
    try:
        from brainlab.data.phantom import load_phantom  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def tensor_folder(tmp_path_factory) -> str:
    """An HCP-tensor cohort of 16 blobs on a 12x14x16 grid, men larger than women."""
    folder = tmp_path_factory.mktemp("tensors")
    rng = np.random.default_rng(0)
    n = 16
    sex = np.arange(n) % 2
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij"))
    radius = np.sqrt((grid ** 2).sum(axis=0))
    images = np.stack([
        (radius < 0.6 + 0.1 * sex[i]) * 800.0 + rng.normal(0, 5, SHAPE) for i in range(n)
    ]).astype(np.float32)
    np.save(folder / "images.npy", images)
    np.save(folder / "sex.npy", sex.astype(np.uint8))
    np.save(folder / "age.npy", (np.arange(n) % 4).astype(np.uint8))
    return str(folder)


@pytest.fixture(params=["tiny", "tensors"])
def image_source(request, tensor_folder) -> str:
    if request.param == "tiny":
        if not phantom_available():
            pytest.skip("brainlab.data.phantom.load_phantom is not available yet")
        return "tiny"
    return tensor_folder


def open_page(source: str, page: str, **params) -> AppTest:
    """Run app.py with ``?cohort=source&...`` and switch to ``app_pages/<page>.py``."""
    return app_helpers.open_page(source, page, timeout=TIMEOUT, **params)


def load_cohort(source: str):
    from brainlab.data import load

    return load(source)


def test_home_shows_cohort_summary_models_and_links(image_source):
    at = open_page(image_source, "home")
    cohort = load_cohort(image_source)
    assert at.title[0].value == "brainlab"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["subjects"] == str(len(cohort))
    women, men = (cohort.table["sex"] == "F").sum(), (cohort.table["sex"] == "M").sum()
    assert metrics["women / men"] == f"{women} / {men}"
    assert metrics["grid"] == "×".join(map(str, cohort.grid_shape))
    assert any(cohort.fingerprint in c.value for c in at.caption)
    # Models: either a table of checkpoints or the hint on how to train them.
    hint = any("python -m brainlab train all" in i.value for i in at.info)
    assert hint or len(at.dataframe) == 1
    assert len(at.get("page_link")) >= 1
    assert at.query_params["cohort"] == [image_source] or at.query_params["cohort"] == image_source


def test_cohort_page_shows_demographics_viewer_means_and_effects(image_source):
    at = open_page(image_source, "cohort")
    cohort = load_cohort(image_source)
    headers = [h.value for h in at.header]
    assert headers == ["Demographics", "Subjects", "Mean brains", "Sex and age effects", "Morphometry"]
    specs = chart_specs(at)
    titles = [(s["layout"].get("title") or {}).get("text") for s in specs]
    assert "Age by sex" in titles and "Subjects by sex and age bin" in titles
    viewer = next(s for s in specs if (s["layout"].get("title") or {}).get("text", "").startswith(cohort.subject_ids[0]))
    heatmaps = [t for t in viewer["data"] if t["type"] == "heatmap"]
    d, h, w = cohort.grid_shape
    assert [array(t["z"]).shape for t in heatmaps] == [(h, d), (w, d), (w, h)]
    assert any("M − F mean difference" == t for t in titles)
    # Every chart has a caption saying what to look for.
    assert len(at.caption) >= len(specs)
    assert at.query_params["subject"] in (cohort.subject_ids[0], [cohort.subject_ids[0]])


def test_cohort_page_subject_and_slices_follow_widgets_and_url(tensor_folder):
    cohort = load_cohort(tensor_folder)
    chosen = cohort.subject_ids[5]
    at = open_page(tensor_folder, "cohort", subject=chosen, z=3)
    assert widget(at.selectbox, "Subject").value == chosen
    assert widget(at.slider, "z: inferior → superior").value == 3
    other = cohort.subject_ids[2]
    widget(at.selectbox, "Subject").set_value(other)
    rerun(at)
    assert not at.exception
    widget(at.slider, "x: left → right").set_value(7)
    rerun(at)
    assert not at.exception
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert params["subject"] == other and params["x"] == "7" and params["z"] == "3"
    viewer = next(s for s in chart_specs(at) if (s["layout"].get("title") or {}).get("text", "").startswith(other))
    axial = array(viewer["data"][0]["z"]).astype(float)
    expected = cohort.images[cohort.index_of(other)][:, :, 3].T
    np.testing.assert_allclose(axial, expected, atol=1e-4)


def test_cohort_page_without_phantom_truth_says_so(tensor_folder):
    at = open_page(tensor_folder, "cohort")
    assert any("No ground-truth effect map" in c.value for c in at.caption)


def test_table_only_cohort_pages_work_without_images(fixture_csv):
    at = open_page(str(fixture_csv), "home")
    assert {m.label: m.value for m in at.metric}["grid"] == "table only"
    at = open_page(str(fixture_csv), "cohort")
    assert any("table-only" in i.value for i in at.info)
    assert "Mean brains" not in [h.value for h in at.header]
    feature = widget(at.selectbox, "Feature")
    assert feature.options and feature.value == feature.options[0]
    feature.set_value(feature.options[3])
    rerun(at)
    assert not at.exception
    scatter = next(s for s in chart_specs(at) if s["layout"]["yaxis"].get("title", {}).get("text") == feature.options[3])
    assert sum(len(array(t["x"])) for t in scatter["data"] if t.get("mode") == "markers") == 54


def test_unknown_cohort_shows_an_error_not_a_traceback():
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["cohort"] = "no-such-cohort"
    rerun(at)
    assert not at.exception
    assert any("no-such-cohort" in e.value for e in at.error)


def test_phantom_cohort_overlays_truth():
    if not phantom_available():
        pytest.skip("brainlab.data.phantom.load_phantom is not available yet")
    at = open_page("tiny", "cohort")
    specs = chart_specs(at)
    differences = [s for s in specs if "mean difference" in (s["layout"].get("title") or {}).get("text", "")]
    assert len(differences) == 1 and len(differences[0]["data"]) == 6  # one effect at a time
    assert differences[0]["layout"]["title"]["text"] == "M − F mean difference"
    widget(at.radio, "Effect").set_value("age")
    rerun(at)
    differences = [s for s in chart_specs(at)
                   if "mean difference" in (s["layout"].get("title") or {}).get("text", "")]
    assert len(differences) == 1 and " − " in differences[0]["layout"]["title"]["text"]
    assert "M − F" not in differences[0]["layout"]["title"]["text"]
    assert at.query_params["effect"] in ("age", ["age"])
    morph = specs[-1]
    assert any("true curve" in t.get("name", "") for t in morph["data"])


def test_path_typed_in_the_sidebar_switches_cohort_and_url(tensor_folder, fixture_csv):
    at = open_page(tensor_folder, "home")
    assert {m.label: m.value for m in at.metric}["subjects"] == "16"
    widget(at.text_input, "…or a path on the server").set_value(str(fixture_csv))
    rerun(at)
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["subjects"] == "54"
    cohort_param = at.query_params["cohort"]
    assert (cohort_param[0] if isinstance(cohort_param, list) else cohort_param) == str(fixture_csv)


def test_consecutive_subject_choices_all_stick(tensor_folder):
    cohort = load_cohort(tensor_folder)
    at = open_page(tensor_folder, "cohort")
    for subject in (cohort.subject_ids[3], cohort.subject_ids[9], cohort.subject_ids[1]):
        widget(at.selectbox, "Subject").set_value(subject)
        rerun(at)
        assert not at.exception
        assert widget(at.selectbox, "Subject").value == subject
        titles = [(s["layout"].get("title") or {}).get("text", "") for s in chart_specs(at)]
        assert any(t.startswith(subject) for t in titles), titles


def _upload_twice(repo_root: str) -> None:
    """AppTest script: one session uploads a table, then replaces it with another."""
    import sys

    sys.path.insert(0, repo_root)
    import streamlit as st

    from app_pages._cohort_picker import _store_upload

    class Upload:  # the part of st.file_uploader's result the picker uses
        def __init__(self, name: str, data: bytes) -> None:
            self.name, self._data = name, data

        def getvalue(self) -> bytes:
            return self._data

    first = _store_upload(Upload("a.csv", b"subject_id,sex,age\ns1,F,30\ns2,M,40\n"))
    second = _store_upload(Upload("b.csv", b"subject_id,sex,age\ns1,F,31\ns2,M,41\n"))
    st.text(first)
    st.text(second)


def test_a_replaced_upload_is_removed_and_the_last_goes_with_the_session():
    import gc
    from pathlib import Path

    at = AppTest.from_function(_upload_twice, args=(str(app_helpers.REPO_ROOT),),
                               default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    first, second = (Path(t.value) for t in at.text)
    from brainlab.data.upload import upload_root

    assert upload_root() in second.parents and second.exists()
    assert not first.exists()  # replaced by the session's next upload
    del at
    gc.collect()
    assert not second.exists()  # the session ended


def test_builds_of_one_source_share_one_load_and_never_block_other_sources(monkeypatch):
    """Two sessions asking for the same cohort wait on one build; another cohort is served
    meanwhile (one lock per source, not one global lock)."""
    import sys
    import threading

    sys.path.insert(0, str(app_helpers.REPO_ROOT))
    from app_pages import _cohort_picker as picker

    picker._store.clear()
    release, calls = threading.Event(), []

    def fake_load(source, progress=None):
        calls.append(source)
        if source == "slow":
            assert release.wait(60), "the slow build was never released"
        return f"cohort {source}"

    monkeypatch.setattr(picker, "load", fake_load)
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("a", picker.get_cohort("slow")))
    first.start()
    while "slow" not in calls:  # the first build has started and holds its lock
        threading.Event().wait(0.01)
    second = threading.Thread(target=lambda: results.setdefault("b", picker.get_cohort("slow")))
    second.start()
    fast = threading.Thread(target=lambda: results.setdefault("fast", picker.get_cohort("fast")))
    fast.start()
    fast.join(10)
    assert results.get("fast") == "cohort fast"  # served while the slow build still runs
    assert "a" not in results and "b" not in results
    release.set()
    first.join(10)
    second.join(10)
    assert results == {"a": "cohort slow", "b": "cohort slow", "fast": "cohort fast"}
    assert calls.count("slow") == 1
    picker._store.clear()


def test_every_cohort_opens_at_its_centre_slices(tensor_folder):
    if not phantom_available():
        pytest.skip("brainlab.data.phantom.load_phantom is not available yet")
    at = open_page("tiny", "cohort")
    centre = [size // 2 for size in SHAPE]
    x, y, z = ("x: left → right", "y: posterior → anterior", "z: inferior → superior")
    assert [widget(at.slider, name).value for name in (x, y, z)] == centre
    widget(at.slider, x).set_value(2)
    rerun(at)
    assert not at.exception and at.query_params["x"] in ("2", ["2"])
    # Another cohort on the same grid: back to the centre, not the old cursor.
    widget(at.text_input, "…or a path on the server").set_value(tensor_folder)
    rerun(at)
    assert not at.exception, [e.value for e in at.exception]
    assert [widget(at.slider, name).value for name in (x, y, z)] == centre
    assert app_helpers.query(at, "x") == str(centre[0])
