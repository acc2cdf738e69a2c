"""Train: start a model training in the background, watch it live, find it in the pickers."""

import streamlit as st

from brainlab import jobs
from brainlab.errors import BrainlabInputError
from app_pages._cohort_picker import current_cohort
from app_pages._train_views import display_name, jobs_table, live_view, start_form

REFRESH_SECONDS = 2.0
_FOLLOW_KEY = "train_follow"      # the job this session watches
_REFUSED_KEY = "train_refused"    # the last refusal, shown until the next start

cohort, source = current_cohort()
st.title("Train")
st.markdown("Train a model on a cohort in the background: the job runs the same command "
            "as the terminal (`python -m brainlab train …`), keeps running when you leave "
            "this page, and its checkpoint appears in every model picker when it finishes.")

request = start_form(cohort, source)
if request is not None:
    st.session_state.pop(_REFUSED_KEY, None)
    try:
        started = jobs.start_job(**request)
    except jobs.JobRunningError as error:
        st.session_state[_REFUSED_KEY] = str(error)
    except BrainlabInputError as error:
        st.session_state[_REFUSED_KEY] = str(error)
    else:
        st.session_state[_FOLLOW_KEY] = started["id"]
        st.session_state["train_job_choice"] = started["id"]  # the job picker shows it
        st.toast(f"Started job {started['id']}: {display_name(started['model_type'])} "
                 f"on {started['cohort']}", icon=":material/play_arrow:")
if _REFUSED_KEY in st.session_state:
    st.error(f"Refused: {st.session_state[_REFUSED_KEY]}", icon=":material/block:")

initial = jobs.list_jobs()
active = [job for job in initial if job["status"] not in jobs.FINISHED]


@st.fragment(run_every=REFRESH_SECONDS if active else None)
def job_panel() -> None:
    """The followed job's live view, its Cancel button, and every job on this machine."""
    job_list = jobs.list_jobs()
    if not job_list:
        st.info("No training job on this machine yet: pick a model type and a budget in "
                "the sidebar and press **Start training**.", icon=":material/model_training:")
        return
    running = [job for job in job_list if job["status"] not in jobs.FINISHED]
    ids = [job["id"] for job in job_list]
    follow = st.session_state.get(_FOLLOW_KEY)
    if follow not in ids:
        follow = (running or job_list)[0]["id"]
    # The status is not in the option labels: a keyed select keeps showing the label an
    # option had when it was drawn, so "running" stayed after a cancel.
    labels = {job["id"]: f"{job['id']} · {display_name(job['model_type'])} on {job['cohort']}"
              for job in job_list}
    pick, status = st.columns([3, 1], vertical_alignment="bottom")
    shown = pick.selectbox("Job", ids, index=ids.index(follow), format_func=labels.get,
                           key="train_job_choice")
    st.session_state[_FOLLOW_KEY] = shown
    job = job_list[ids.index(shown)]
    status.markdown(f"**{job['status']}**")
    if job["status"] not in jobs.FINISHED:
        if st.button("Cancel this job", icon=":material/stop:", key=f"cancel_{job['id']}"):
            with st.spinner(f"Stopping job {job['id']} …"):
                jobs.cancel_job(job["id"])
            st.rerun()  # redraw the whole page: the list, and no more polling
    live_view(job)
    st.subheader("All jobs")
    jobs_table(job_list)
    st.caption("Jobs are kept on disk: a reload or another browser sees the same list, and "
               "`python -m brainlab jobs list` prints it. One job runs at a time on a machine.")
    if active and not running:
        st.rerun()  # the last running job ended: redraw the page (and stop polling)


job_panel()
