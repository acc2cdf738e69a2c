"""Command groups of ``python -m brainlab``; see ``brainlab/__main__.py``."""
