"""brainlab app: page config, navigation, and the cohort picker shared by every page."""

import streamlit as st

from app_pages._catalog import navigation_pages
from app_pages._cohort_picker import cohort_sidebar

st.set_page_config(page_title="brainlab", page_icon=":material/neurology:", layout="wide")
page = st.navigation(navigation_pages())
cohort_sidebar()
page.run()
