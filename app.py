"""brainlab app: page config and navigation only; each page lives in pages/."""

import streamlit as st

from pages._shared import existing_pages

st.set_page_config(page_title="brainlab", page_icon=":material/neurology:", layout="wide")
st.navigation([st.Page(page.path, title=page.title, icon=page.icon, default=(n == 0))
               for n, page in enumerate(existing_pages())]).run()
