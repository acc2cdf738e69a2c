"""Teaching tour: eight guided steps, each opening a page of the app in the right state."""

import streamlit as st

from brainlab.registry import model_spec
from brainlab.tour import LIVE_GAN_PAGE, tour_steps, train_command
from app_pages._catalog import existing_pages
from app_pages._cohort_picker import current_cohort, source_label
from app_pages._models import checkpoints_for
from app_pages._state import url_choice

cohort, source = current_cohort()
pages = {page.url_path: page for page in existing_pages()}
steps = tour_steps(source, live_gan=LIVE_GAN_PAGE in pages)
by_number = {step.number: step for step in steps}

st.title("Teaching tour")
st.markdown(f"Eight steps through brainlab for a class, on **{source_label(source)}**. "
            "Each step says what to look at, gives one question to ask, and opens its page "
            "in the right state (the state is in the link, so it can go on a slide).")
with st.sidebar:
    st.markdown("### Tour")
    number = url_choice(st.radio, "Step", list(by_number), "step", 1,
                        format_func=lambda n: f"{n}. {by_number[n].title}")


def model_status(model_types) -> tuple[list[str], list[str]]:
    """``(missing, other_cohort)``: display names of the needed models not trained for
    this cohort, and of those found only for another cohort."""
    missing, other = [], []
    for model_type in model_types:
        if cohort.images is None and model_spec(model_type).needs_images:
            continue  # the page explains that it needs images
        entries = checkpoints_for(model_type, cohort)
        if not entries:
            missing.append(model_type)
        elif not any(entry["exact"] for entry in entries):
            other.append(model_type)
    return missing, other


def app_address() -> str:
    """This app's address (``http://host:port``), from the tour page's own URL."""
    url = (st.context.url or "").split("?")[0].rstrip("/")
    return url.rsplit("/", 1)[0] if url.endswith("/tour") else url


def page_of(step):
    """The step's page in this app's catalogue, or None after saying it is missing."""
    page = pages.get(step.url_path)
    if page is None:
        st.warning(f"Page `{step.url_path}` is not in this app.")
    return page


step = by_number[number]
st.header(f"Step {step.number} of {len(steps)}: {step.title}")
left, right = st.columns([3, 2])
with left:
    st.markdown(step.explanation)
    st.info(f"**Ask the class:** {step.question}", icon=":material/forum:")
    if step.note:
        st.caption(step.note)
    if cohort.images is None and step.url_path != "cohort":
        st.warning(f"Cohort **{cohort.name}** is table-only (no images): this step's page "
                   "can show little. Pick a phantom preset in the sidebar.")
with right, st.container(border=True):
    page = page_of(step)
    if page is not None and st.button(f"Open {page.title}", icon=page.icon, type="primary",
                                      width="stretch", key=f"open_{step.number}"):
        st.switch_page(page.path, query_params=step.query)
    st.caption("Or copy the link, e.g. for a slide:")
    st.code(step.link(app_address()), language=None, wrap_lines=True)
    missing, other = model_status(step.models)
    for model_type in missing:
        st.warning(f"No {model_spec(model_type).display_name} for this cohort yet. "
                   f"Train it with:\n\n```\n{train_command(model_type, source)}\n```",
                   icon=":material/model_training:")
    if other:
        st.caption("Using models trained on another cohort: "
                   + ", ".join(model_spec(t).display_name for t in other)
                   + ". Their cards describe that cohort, not this one.")
    if step.models and not missing and not other:
        st.caption("Models needed: " + ", ".join(model_spec(t).display_name for t in step.models)
                   + " — all found.")

previous, following, _ = left.columns([1, 1, 1])
previous.button("Previous step", icon=":material/arrow_back:", width="stretch",
                disabled=number == 1,
                on_click=lambda: st.session_state.update(url_step=max(1, number - 1)))
following.button("Next step", icon=":material/arrow_forward:", width="stretch",
                 disabled=number == len(steps),
                 on_click=lambda: st.session_state.update(url_step=min(len(steps), number + 1)))

st.subheader("All steps")
for other_step in steps:
    with st.expander(f"{other_step.number}. {other_step.title}"):
        st.markdown(other_step.explanation)
        st.markdown(f"**Ask:** {other_step.question}")
        other_page = page_of(other_step)
        if other_page is not None:
            st.page_link(other_page.path, label=f"Open {other_page.title}", icon=other_page.icon,
                         query_params=other_step.query)
st.caption("The same tour on the command line, with full links: "
           f"`python -m brainlab tour --cohort {source}`. On `lifespan` the ageing steps "
           "use bigger age contrasts.")
