"""The app's pages: file, URL path, title, icon and one-line purpose, in menu order.

``app.py`` builds ``st.navigation`` from ``navigation_pages()``; Home links to the
others with ``page_link``. Later work (Train, GAN Lab live, tour) adds a row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

APP_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageInfo:
    """A page: file (relative to app.py), URL path, title, icon, one-line purpose."""

    path: str
    url_path: str
    title: str
    icon: str
    blurb: str


PAGES = (
    PageInfo("app_pages/home.py", "home", "Home", ":material/home:",
             "What brainlab does and what is loaded."),
    PageInfo("app_pages/tour.py", "tour", "Teaching tour", ":material/school:",
             "Eight guided steps for a class, each opening a page in the right state."),
    PageInfo("app_pages/cohort.py", "cohort", "Cohort", ":material/groups:",
             "Demographics, a tri-planar viewer, mean brains, sex and age effects, morphometry."),
    PageInfo("app_pages/reconstructions.py", "reconstructions", "Reconstructions",
             ":material/compare:", "Original vs autoencoder reconstruction and their error."),
    PageInfo("app_pages/latent_space.py", "latent_space", "Latent space", ":material/scatter_plot:",
             "PCA/UMAP maps of each representation and how well they encode sex and age."),
    PageInfo("app_pages/gan_lab.py", "gan_lab", "GAN lab", ":material/science:",
             "Sample, interpolate and edit synthetic brains."),
    PageInfo("app_pages/gan_live.py", "gan_live", "GAN Lab live", ":material/play_circle:",
             "Watch the latent GAN learn: play, pause, step, change its settings live."),
    PageInfo("app_pages/train.py", "train", "Train", ":material/model_training:",
             "Train a model in the background, watch its curves, find it in the pickers."),
    PageInfo("app_pages/classifiers.py", "classifiers", "Classifiers", ":material/fact_check:",
             "Sex and age classifiers on real vs synthetic brains."),
)


def existing_pages() -> list[PageInfo]:
    """The pages in ``PAGES`` whose file exists."""
    return [page for page in PAGES if (APP_ROOT / page.path).is_file()]


def navigation_pages() -> list:
    """``st.Page`` objects for ``st.navigation``; the first is the default (``/``)."""
    return [st.Page(page.path, title=page.title, icon=page.icon, url_path=page.url_path,
                    default=(n == 0)) for n, page in enumerate(existing_pages())]


def page_link(page: PageInfo, **query) -> None:
    """``st.page_link`` to ``page`` carrying ``query`` (e.g. the cohort) in its URL."""
    st.page_link(page.path, label=page.title, icon=page.icon, query_params=query or None)
