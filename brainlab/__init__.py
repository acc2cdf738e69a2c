"""brainlab: explore generative models of brain MRI.

The core package never imports streamlit; the app in ``app.py`` and ``app_pages/``
only calls into it, and everything it does is reachable from ``python -m brainlab``.
"""

__version__ = "0.1.0"
