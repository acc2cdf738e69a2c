"""The slice cursor: one set of x/y/z sliders driving every tri-planar view of a page.

A volume opens at its centre slices; the position is kept in ``?x=&y=&z=`` and per
grid shape, so a cohort with another grid starts at its own centre.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages._state import query_value, sync_query

AXIS_NAMES = ("x: left → right", "y: posterior → anterior", "z: inferior → superior")


def centre_slices(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The middle voxel index along each axis."""
    return tuple(int(size) // 2 for size in shape)


def slice_cursor(shape: tuple[int, int, int], container=None) -> tuple[int, int, int]:
    """Three sliders (x, y, z voxel index), starting at the URL's or the centre slices."""
    columns = (container or st).columns(3)
    cursor = []
    for axis, (column, name, size, centre) in enumerate(zip(columns, AXIS_NAMES, shape,
                                                            centre_slices(shape))):
        key = f"slice_{'xyz'[axis]}_{'x'.join(map(str, shape))}"
        if key not in st.session_state:
            start = query_value("xyz"[axis], centre, int)
            st.session_state[key] = int(np.clip(start, 0, size - 1))
        cursor.append(int(column.slider(name, 0, int(size) - 1, key=key)))
    sync_query(x=cursor[0], y=cursor[1], z=cursor[2])
    return tuple(cursor)
