"""The interpolation viewer of GAN lab: frame slider, frame, animation, strip, downloads."""

from __future__ import annotations

import numpy as np
import streamlit as st

from brainlab.analysis.gan_walks import frames_to_png_strip
from brainlab.viz import triplanar_figure
from brainlab.viz.gan_plots import animation_figure, thumbnail_strip_figure
from app_pages._gan_computations import nifti_bytes
from app_pages._state import url_number


@st.fragment
def frame_viewer(frames: np.ndarray, path: np.ndarray, render_seconds: float, affine,
                 plane: str) -> None:
    """The chosen frame, the animation and the strip; reruns alone when the frame moves."""
    n_frames = len(frames)
    if st.session_state.get("url_frame", 0) > n_frames - 1:
        st.session_state["url_frame"] = n_frames - 1
    frame = url_number(st.slider, "Frame", 0, n_frames - 1, "frame", 0)
    view_col, anim_col = st.columns([3, 2])
    with view_col:
        st.plotly_chart(triplanar_figure(frames[frame], affine, value_range=(0.0, 1.0),
                                         title=f"frame {frame} of {n_frames - 1} "
                                               f"(t = {frame / (n_frames - 1):.2f}, |z| = "
                                               f"{np.linalg.norm(path[frame]):.1f})",
                                         row_height=280),
                        width="stretch", key="walk_frame")
        st.caption("The brain at the chosen frame: look for a smooth change of anatomy from "
                   "start to end, without jumps or frames that stop looking like a brain.")
    with anim_col:
        st.plotly_chart(animation_figure(frames, affine, plane=plane, height=330),
                        width="stretch", key="walk_animation")
        st.caption("Press ▶ play to watch the walk; a good latent space morphs smoothly.")
    st.plotly_chart(thumbnail_strip_figure(frames, plane=plane, current=frame),
                    width="stretch", key="walk_strip")
    st.caption("Every frame's mid-slice; the yellow frame is the one shown above. "
               f"The {n_frames} frames were decoded once in {render_seconds * 1000:.0f} ms "
               f"({render_seconds * 1000 / n_frames:.1f} ms per frame) and are cached.")


def walk_downloads(frames: np.ndarray, affine, walk_key: tuple, stem: str) -> None:
    """The walk as a 4D NIfTI and as a PNG strip."""
    downloads = st.columns(2)
    downloads[0].download_button(
        "Download 4D NIfTI", nifti_bytes(walk_key, frames, affine), file_name=f"{stem}.nii.gz",
        mime="application/gzip", on_click="ignore",
        help="Frames as the 4th dimension, on the cohort grid with its MNI affine.")
    downloads[1].download_button("Download PNG strip", frames_to_png_strip(frames),
                                 file_name=f"{stem}.png", mime="image/png", on_click="ignore")
