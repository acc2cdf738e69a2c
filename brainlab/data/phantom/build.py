"""Build a phantom cohort: synthesise, store and re-measure every subject.

The only module that uses both the generator (images from sampled truth) and the
morphometry (a table from images), so neither imports the other.

Subjects are made in chunks (``IN_FLIGHT`` subjects over all workers) by ``workers``
threads, each running torch single-threaded (torch releases the GIL, so the threads
use separate cores).
Every chunk's images go straight to their place in ``images.npy`` (positional
writes into a preallocated file), so memory holds only the chunks in flight.
Each subject draws its random fields from its own seed: the cohort does not
depend on the chunk size or the number of workers.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainlab.config import PhantomConfig, config_to_dict
from brainlab.data.phantom import generator
from brainlab.data.phantom.anatomy import Anatomy, load_anatomy
from brainlab.data.phantom.morphometry import Morphometer
from brainlab.data.phantom.presets import PHANTOM_VERSION, RAW_MAX, fingerprint
from brainlab.data.progress import CountProgress, ProgressCallback, report

# Subjects in flight over all workers (tens of MB of temporaries each at 58x70x58),
# split into one chunk per worker: 2 workers x 8 peaked at 1.3-1.6 GB on hcp-ya (freed
# buffers stay in the heap for the next chunk, see ``_heap_reuse``). Results do not
# depend on it.
IN_FLIGHT = 16


def default_workers() -> int:
    """Threads for a build: the CPUs this process may use, at most 4 (memory)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


_MORPHOMETERS: dict[tuple, tuple[Anatomy, Morphometer]] = {}


def morphometer(anatomy: Anatomy) -> Morphometer:
    """The shared Morphometer of an anatomy (its thickness scale is calibrated once)."""
    key = (id(anatomy), anatomy.shape)
    entry = _MORPHOMETERS.get(key)
    if entry is None or entry[0] is not anatomy:
        entry = (anatomy, Morphometer(anatomy, reference=generator.template_image(anatomy)))
        _MORPHOMETERS[key] = entry
    return entry[1]


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The bytes of an .npy (version 1.0) header for a C-ordered array."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": tuple(shape)})
    return buffer.getvalue()


class _Chunks:
    """Makes chunks of subjects: images written in place, table rows returned."""

    def __init__(self, config: PhantomConfig, anatomy: Anatomy, truth: pd.DataFrame,
                 fd: int, header_bytes: int, dtype: np.dtype):
        self.config, self.truth, self.fd, self.dtype = config, truth, fd, dtype
        self.basis = generator.warp_basis(anatomy)
        self.meter = morphometer(anatomy)
        self.header_bytes = header_bytes
        self.subject_bytes = int(np.prod(anatomy.shape)) * dtype.itemsize

    def make(self, start: int, stop: int) -> tuple[int, pd.DataFrame, pd.DataFrame]:
        rows = self.truth.iloc[start:stop]
        with torch.no_grad():
            raw = generator.synthesize(self.basis, rows, self.config)
            if self.dtype == np.uint16:
                rounded = raw.round()
                stored = rounded.numpy().astype(np.uint16)
                measured_from = rounded  # the same values as the stored uint16
            else:
                stored = raw.numpy().astype(self.dtype)
                measured_from = torch.from_numpy(stored.astype(np.float32))
            self._write(start, np.ascontiguousarray(stored))
            # Measure what is stored, so the table can be re-derived from the file.
            measured = self.meter.measure(measured_from)
        targets = generator.truth_volumes(self.basis, rows, self.config)
        return start, measured, targets

    def _write(self, start: int, stored: np.ndarray) -> None:
        view = memoryview(stored).cast("B")
        offset = self.header_bytes + start * self.subject_bytes
        while view:
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written


def _release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc), so peaks do not add up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


@contextlib.contextmanager
def _heap_reuse():
    """Keep freed buffers in the heap while a build runs (glibc).

    By default glibc serves every buffer over 32 MB with a fresh ``mmap`` and
    unmaps it on free, so each chunk's temporaries were page-faulted in anew: a
    quarter of a build's CPU time was the kernel zeroing pages. Restored (and the
    heap trimmed) afterwards, so the process does not keep the build's peak.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        yield
        return
    mmap_threshold, trim_threshold = -3, -1  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    mallopt(mmap_threshold, 1 << 30)
    mallopt(trim_threshold, 1 << 30)
    try:
        yield
    finally:
        mallopt(mmap_threshold, 128 * 1024)  # glibc's defaults
        mallopt(trim_threshold, 128 * 1024)
        _release_free_memory()


def _single_threaded_torch() -> None:
    torch.set_num_threads(1)


def build_into(folder: Path, config: PhantomConfig, progress: ProgressCallback,
               workers: int | None = None, chunk: int | None = None) -> dict:
    """Synthesise every subject into ``folder``; returns the manifest extras.

    ``progress`` gets set-up stages, then ``"subjects k/n · elapsed · ETA"``.
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    chunk = max(1, IN_FLIGHT // workers) if chunk is None else max(1, int(chunk))
    report(progress, 0.0, "template anatomy")
    anatomy = load_anatomy(config.grid_shape)
    _release_free_memory()  # a first build resamples the 1 mm template: ~1 GB of temporaries
    report(progress, 0.02, "warp basis and morphometry atlas")
    generator.warp_basis(anatomy)
    morphometer(anatomy)
    demographics = generator.sample_demographics(config)
    truth = generator.sample_subjects(config, anatomy)
    n = len(truth)
    shape = (n,) + tuple(config.grid_shape)
    dtype = np.dtype(np.uint16 if config.storage == "uint16" else np.float16)
    header = _npy_header(shape, dtype)
    path = Path(folder) / "images.npy"
    with open(path, "wb") as stream:
        stream.write(header)
        stream.truncate(len(header) + int(np.prod(shape)) * dtype.itemsize)
    starts = list(range(0, n, chunk))
    tracker = CountProgress(progress, n, "subjects", start=0.05, stop=0.98)
    tracker.update(0)
    fd = os.open(path, os.O_WRONLY)
    threads_before = torch.get_num_threads()
    results = {}
    try:
        with _heap_reuse():
            chunks = _Chunks(config, anatomy, truth, fd, len(header), dtype)
            if workers == 1:
                for start in starts:
                    _, measured, targets = chunks.make(start, min(start + chunk, n))
                    results[start] = (measured, targets)
                    tracker.update(sum(len(m) for m, _ in results.values()))
            else:
                results = _run_threaded(chunks, starts, chunk, n, workers, tracker)
    finally:
        os.close(fd)
        torch.set_num_threads(threads_before)
    measured = [results[s][0] for s in starts]
    targets = [results[s][1] for s in starts]
    table = pd.concat([demographics.reset_index(drop=True),
                       pd.concat(measured, ignore_index=True)], axis=1)
    truth = pd.concat([truth.reset_index(drop=True), pd.concat(targets, ignore_index=True)], axis=1)
    table.to_csv(Path(folder) / "table.csv", index=False)
    truth.to_csv(Path(folder) / "truth.csv", index=False)
    report(progress, 0.99, "checksums")
    return {"fingerprint": fingerprint(config), "shape": list(shape), "dtype": dtype.name,
            "raw_max": RAW_MAX, "config": config_to_dict(config), "phantom_version": PHANTOM_VERSION}


def _run_threaded(chunks: _Chunks, starts: list[int], chunk: int, n: int, workers: int,
                  tracker: CountProgress) -> dict:
    results: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}
    lock = threading.Lock()
    with ThreadPoolExecutor(workers, thread_name_prefix="phantom-build",
                            initializer=_single_threaded_torch) as pool:
        pending = {pool.submit(chunks.make, s, min(s + chunk, n)) for s in starts}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                start, measured, targets = future.result()
                with lock:
                    results[start] = (measured, targets)
            tracker.update(sum(len(m) for m, _ in results.values()))
    return results


# ---- noise-free truth for the app ----------------------------------------------------

def noise_free_truth(config: PhantomConfig, draws: int = 32, curve_points: int = 15) -> dict:
    """Effect maps (sex, age) and expected feature curves vs age, all noise-free."""
    anatomy = load_anatomy(config.grid_shape)
    basis = generator.warp_basis(anatomy)
    meter = morphometer(anatomy)
    truth = generator.sample_subjects(config, anatomy)
    truth = truth.iloc[: min(draws, len(truth))].reset_index(drop=True)
    edges = np.asarray(config.age_bin_edges, dtype=float)
    young, old = (edges[0] + edges[1]) / 2, (edges[-2] + edges[-1]) / 2
    ages = truth["age"].to_numpy()
    with torch.no_grad():
        def mean_image(sex, age):
            rows = generator.expected_truth(truth, sex, age)
            return generator.synthesize(basis, rows, config, noise=False).mean(0)

        effect_sex = mean_image("M", ages) - mean_image("F", ages)
        sexes = truth["sex"].to_numpy()
        effect_age = mean_image(sexes, old) - mean_image(sexes, young)

        # The expected subject: mean head per sex, latent factors at their mean
        # (the ventricle factor at sd/2, the log-normal's mean).
        curve_ages = np.linspace(edges[0], edges[-1], curve_points)
        expected = truth.iloc[[0] * curve_points].reset_index(drop=True)
        for column in expected.columns:
            if column.startswith("z_"):
                expected[column] = 0.0
        expected["z_ventricles"] = generator.FACTOR_SD["ventricles"] / 2
        expected["mu_gm_jitter"] = 0.0
        curves = {}
        for sex in ("F", "M"):
            rows = generator.expected_truth(expected, sex, curve_ages)
            curves[sex] = meter.measure(generator.synthesize(basis, rows, config, noise=False).round())
    features = list(curves["F"].columns)
    return {
        "effect_sex": (effect_sex / RAW_MAX).numpy().astype(np.float32),
        "effect_age": (effect_age / RAW_MAX).numpy().astype(np.float32),
        "curve_ages": curve_ages, "curve_features": np.array(features),
        "curve_F": curves["F"].to_numpy(np.float64), "curve_M": curves["M"].to_numpy(np.float64),
    }
