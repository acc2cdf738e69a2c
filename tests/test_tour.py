"""The teaching tour: its content, the CLI, the page, and every step's link on its page."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from brainlab.__main__ import main
from brainlab.errors import BrainlabInputError
from brainlab.tour import GAN_LAB_PAGE, LIVE_GAN_PAGE, tour_steps

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300
# Where each URL-state helper of app_pages/_state.py takes the query-param name.
NAME_ARGUMENT = {"url_choice": 3, "url_number": 4, "url_slider": 3, "url_checkbox": 2,
                 "query_value": 0}


def catalogue() -> dict:
    pytest.importorskip("streamlit")
    from app_pages._catalog import PAGES

    return {page.url_path: page for page in PAGES}


def live_gan_in_app() -> bool:
    """Whether the app has the live GAN page (its catalogue row and its file)."""
    pytest.importorskip("streamlit")
    from app_pages._catalog import existing_pages

    return LIVE_GAN_PAGE in {page.url_path for page in existing_pages()}


def page_param_names(page_file: str) -> set[str]:
    """Query-param names a page reads: its own URL-state calls and those of the
    ``app_pages._*`` helpers it imports, plus ``cohort`` (the picker in app.py)."""
    names, seen, todo = {"cohort"}, set(), [REPO_ROOT / page_file]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app_pages._"):
                todo.append(REPO_ROOT / (node.module.replace(".", "/") + ".py"))
            if not isinstance(node, ast.Call):
                continue
            function = getattr(node.func, "id", getattr(node.func, "attr", None))
            if function == "sync_query":
                names.update(keyword.arg for keyword in node.keywords if keyword.arg)
            position = NAME_ARGUMENT.get(function)
            if position is not None and len(node.args) > position:
                argument = node.args[position]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    names.add(argument.value)
    return names


# ---------------------------------------------------------------- content

@pytest.mark.parametrize("source", ["hcp-ya", "lifespan", "tiny"])
def test_eight_steps_each_with_text_a_question_and_the_cohort_in_its_link(source):
    steps = tour_steps(source)
    assert [step.number for step in steps] == list(range(1, 9))
    for step in steps:
        assert step.title and step.explanation and step.question.endswith("?")
        assert step.params[0] == ("cohort", source)
        assert step.link("http://host:1/").startswith(f"http://host:1/{step.url_path}?cohort=")


@pytest.mark.parametrize("live_gan", [False, True])
def test_every_target_page_is_in_the_catalogue(live_gan):
    pages = catalogue()
    if live_gan and not live_gan_in_app():
        pytest.skip(f"the app has no {LIVE_GAN_PAGE} page yet")
    for step in tour_steps("hcp-ya", live_gan=live_gan):
        assert step.url_path in pages, (step.number, step.url_path)
    step_6 = tour_steps("hcp-ya", live_gan=live_gan)[5]
    assert step_6.url_path == (LIVE_GAN_PAGE if live_gan else GAN_LAB_PAGE)
    assert bool(step_6.note) is not live_gan  # the fallback says why it is not the live page


@pytest.mark.parametrize("source", ["hcp-ya", "lifespan"])
def test_every_query_param_is_one_its_page_reads(source):
    pages = catalogue()
    for step in tour_steps(source, live_gan=live_gan_in_app()):
        read = page_param_names(pages[step.url_path].path)
        assert set(step.query) <= read, (step.number, set(step.query) - read)


def test_lifespan_ageing_steps_use_bigger_age_contrasts():
    young, lifespan = tour_steps("hcp-ya"), tour_steps("lifespan")
    assert float(lifespan[6].query["strength"]) > float(young[6].query["strength"])
    assert (young[7].query["model"], lifespan[7].query["model"]) == ("sex-clf", "age-model")
    assert "20 to 90" in lifespan[0].explanation


def test_the_tour_needs_a_cohort_source():
    with pytest.raises(BrainlabInputError, match="tour needs a cohort source"):
        tour_steps("  ")


# ---------------------------------------------------------------- CLI

def test_cli_prints_every_step_with_its_deep_link(capsys):
    assert main(["tour", "--cohort", "lifespan", "--base-url", "http://class:9000/"]) == 0
    out = capsys.readouterr().out
    for step in tour_steps("lifespan"):
        assert f"{step.number}. {step.title}" in out
    assert "Open: http://class:9000/cohort?cohort=lifespan&feature=ventricles_cc" in out
    assert "strength=3.0" in out


def test_cli_json_matches_the_steps_and_the_app_catalogue(capsys):
    from brainlab.cli.tour import app_url_paths
    from app_pages._catalog import existing_pages

    assert app_url_paths() == {page.url_path for page in existing_pages()}
    assert main(["tour", "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)
    assert len(steps) == 8
    assert steps[4]["link"] == "http://localhost:8501/gan_lab?cohort=hcp-ya&seed=0&n=8"
    assert steps[5]["page"] == (LIVE_GAN_PAGE if LIVE_GAN_PAGE in app_url_paths() else GAN_LAB_PAGE)
    assert all(step["query"]["cohort"] == "hcp-ya" for step in steps)


# ---------------------------------------------------------------- the page (AppTest, tiny)

def open_page(page: str, **params):
    pytest.importorskip("streamlit")
    import app_helpers

    return app_helpers.open_page("tiny", page, timeout=TIMEOUT, **params)


def test_tour_page_shows_one_step_links_and_moves_on(with_models):
    from app_helpers import query, rerun

    at = open_page("tour")
    assert at.title[0].value == "Teaching tour"
    assert at.header[0].value.startswith("Step 1 of 8")
    assert len(at.main.expander) == 8
    links = at.main.get("page_link")
    assert [(link.proto.page, link.proto.query_string) for link in links] == [
        (step.url_path, step.link("").split("?")[1])
        for step in tour_steps("tiny", live_gan=live_gan_in_app())]
    assert "/cohort?cohort=tiny&feature=icv_cc" in at.main.code[0].value
    next_button = [b for b in at.button if b.label == "Next step"][0]
    next_button.click()
    rerun(at)
    assert at.header[0].value.startswith("Step 2 of 8")
    assert query(at, "step") == "2"
    assert not at.warning  # every model the tour needs is there
    [open_button] = [b for b in at.button if b.label == "Open Cohort"]
    open_button.click()
    rerun(at)
    assert at.title[0].value == "Cohort"  # the button went to the step's page


def test_tour_page_opens_a_step_from_the_url_and_names_missing_models(without_models):
    at = open_page("tour", step=7)
    assert at.header[0].value.startswith("Step 7 of 8")
    warnings = " ".join(w.value for w in at.warning)
    assert "python -m brainlab train gan --cohort tiny" in warnings
    assert "python -m brainlab train age-model --cohort tiny" in warnings


@pytest.mark.parametrize("number", range(1, 9))
def test_each_step_link_opens_its_page_in_that_state(with_models, number):
    from app_helpers import query

    pages = catalogue()
    step = tour_steps("tiny", live_gan=live_gan_in_app())[number - 1]
    params = {k: v for k, v in step.params if k != "cohort"}
    page_file = pages[step.url_path].path
    at = open_page(Path(page_file).stem, **params)  # asserts there is no exception
    assert at.title[0].value == pages[step.url_path].title
    for name, value in params.items():
        assert query(at, name) == value, (number, name)  # accepted, not reset to a default


def test_tour_on_a_table_only_cohort_says_so_instead_of_asking_for_image_models(fixture_csv):
    pytest.importorskip("streamlit")
    import app_helpers

    at = app_helpers.open_page(str(fixture_csv), "tour", timeout=TIMEOUT, step=3)
    warnings = " ".join(w.value for w in at.warning)
    assert "table-only" in warnings
    assert "python -m brainlab train" not in warnings  # image models cannot train here


def test_step_7_edit_settings_take_effect_in_the_attribute_directions_section(with_models):
    """Step 7 opens the walk; its age-edit settings ride in the link and are the ones the
    Attribute directions section uses once the class switches to it."""
    from app_helpers import widget

    step = tour_steps("tiny", live_gan=live_gan_in_app())[6]
    params = {k: v for k, v in step.params if k != "cohort"}
    assert params["section"] == "walk"
    params["section"] = "edit"
    at = open_page("gan_lab", **params)
    assert [h.value for h in at.header] == ["Attribute directions"]
    assert widget(at.radio, "Attribute").value == params["attribute"]
    assert widget(at.checkbox, "Age orthogonal to sex").value is True
    assert widget(at.slider, "Strength").value == float(params["strength"])


@pytest.mark.parametrize("source", ["hcp-ya", "lifespan"])
def test_tour_text_states_no_verdict_of_its_own_about_the_shipped_models(source):
    """Verdicts live in the model cards, which change with every retrain: the tour
    points to the card's figures beside their baselines instead of stating a result
    (it once said the sex CNN was no better than head size after a retrain made it so)."""
    for step in tour_steps(source):
        text = f"{step.explanation} {step.question}".lower()
        for claim in ("no better than", "better than a", "is measured", "beats"):
            assert claim not in text, (step.number, claim)
