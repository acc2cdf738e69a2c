"""Walks through a GAN's latent space: endpoints, frames, and their export.

Shared by the GAN lab page and ``python -m brainlab interpolate`` so both give
the same frames for the same endpoints.
"""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import torch

from brainlab.analysis.interpolation import interpolation_path
from brainlab.data.cohort import Cohort
from brainlab.errors import BrainlabInputError
from brainlab.precision import autocast, resolve_bf16, to_channels_last

# Walk frames decoded per forward pass: a whole 64-frame walk fits in memory at 58x70x58.
WALK_BATCH = 64


def seed_latent(gan, seed: int) -> np.ndarray:
    """The GAN's latent for an integer seed: (latent_dim,), reproducible."""
    return np.asarray(gan.sample_latent(1, int(seed)), dtype=np.float32)[0]


def subject_latent(encoder, cohort: Cohort, subject_id: str, refine_steps: int = 0) -> np.ndarray:
    """Invert a real subject into the GAN latent with the encoder (+ refinement)."""
    if cohort.images is None:
        raise BrainlabInputError(f"cohort {cohort.name!r} has no images to encode")
    volume = torch.from_numpy(cohort.images[cohort.index_of(subject_id)])[None, None]
    z = encoder.invert(volume, refine_steps=int(refine_steps))
    return z.detach().float().numpy()[0]


def parse_endpoint(spec: str, gan, cohort: Cohort | None = None, encoder=None,
                   refine_steps: int = 0) -> np.ndarray:
    """An endpoint given as an integer seed, or as a subject id (needs cohort + encoder)."""
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        return seed_latent(gan, int(text))
    if cohort is None or encoder is None:
        raise BrainlabInputError(
            f"endpoint {text!r} is not an integer seed; a subject id needs a cohort with "
            f"images and an encoder checkpoint")
    return subject_latent(encoder, cohort, text, refine_steps)


@torch.inference_mode()
def render_frames(gan, latents: np.ndarray, batch_size: int = 16,
                  bf16: str | bool = "off") -> np.ndarray:
    """Decode latents (n, latent_dim) to volumes (n, D, H, W) float32 in [0, 1].

    ``bf16`` ("auto"/"on"/"off", see ``brainlab.precision``): decode under bf16 autocast
    where the CPU has native bf16, 2-3x faster. Frames that are only looked at (walks,
    edits) use "auto"; samples that feed metrics stay in the model's own precision
    ("off"), so their numbers do not move with the machine. The decoder's weights are
    put in channels_last_3d either way (the same numbers, faster 3D convs on CPU).
    """
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2 or latents.shape[1] != gan.latent_dim:
        raise BrainlabInputError(
            f"latents must be (n, {gan.latent_dim}); found shape {latents.shape}")
    if int(batch_size) < 1:
        raise BrainlabInputError(f"batch_size must be >= 1; found {batch_size}")
    device = getattr(gan, "device", torch.device("cpu"))
    if isinstance(gan, torch.nn.Module):  # stand-ins (a replay of stored volumes) have no weights
        to_channels_last(gan)
    frames = None
    with autocast(device, resolve_bf16(bf16, device)):
        for start in range(0, len(latents), int(batch_size)):
            batch = gan.generate(torch.from_numpy(latents[start:start + int(batch_size)]))
            batch = batch.float()[:, 0].cpu().numpy()
            if frames is None:  # filled in place: no list of batches to concatenate
                frames = np.empty((len(latents), *batch.shape[1:]), dtype=np.float32)
            frames[start:start + len(batch)] = batch
    return frames


def walk(gan, z_start: np.ndarray, z_end: np.ndarray, n_frames: int,
         method: str = "slerp") -> tuple[np.ndarray, np.ndarray]:
    """Frames along the path from ``z_start`` to ``z_end``: (latents, volumes).

    Decoded in one batch under bf16 autocast where the CPU allows (frames to look at).
    """
    if n_frames < 2:
        raise BrainlabInputError(f"need at least 2 frames for a walk; found {n_frames}")
    path = interpolation_path(z_start, z_end, n_frames, method=method)
    return path, render_frames(gan, path, batch_size=WALK_BATCH, bf16="auto")


def frames_to_nifti_bytes(frames: np.ndarray, affine: np.ndarray, compress: bool = True) -> bytes:
    """A 4D NIfTI (D, H, W, n_frames) with ``affine``, as bytes (gzipped unless told not to)."""
    data = np.moveaxis(np.asarray(frames, dtype=np.float32), 0, -1)
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=5) if compress else raw


def frames_to_png_strip(frames: np.ndarray, axis: int = 2, index: int | None = None,
                        scale: int = 3) -> bytes:
    """A PNG of one slice per frame side by side (axial by default), as bytes.

    Slices are shown in radiological convention-free RAS: anterior / superior up.
    """
    from PIL import Image

    frames = np.asarray(frames, dtype=np.float32)
    index = frames.shape[axis + 1] // 2 if index is None else int(index)
    slices = [np.take(frame, index, axis=axis) for frame in frames]
    # Rows of the image are the second remaining axis, flipped so that it points up.
    tiles = [np.flipud(s.T) for s in slices]
    strip = np.concatenate(tiles, axis=1)
    pixels = (np.clip(strip, 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels).resize(
        (pixels.shape[1] * scale, pixels.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
