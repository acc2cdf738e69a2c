"""Pages of the brainlab Streamlit app (registered in app.py)."""
