"""Training on several processes (``torchrun``): process group, rank helpers, gradient sync.

``torchrun --standalone --nproc_per_node N -m brainlab train ...`` starts N copies of
the CLI with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR/PORT`` set.
``setup(device)`` reads them and joins the process group (gloo on CPU, nccl on CUDA,
where each process takes the GPU of its local rank); without them it does nothing, and
every helper here is then a no-op, so a plain run is one process exactly as before.

The fit loop uses the rest: ``broadcast_module`` (every rank starts from rank 0's
weights and statistics), ``GradientAverager`` (an optimiser step-pre-hook that averages
the gradients of whatever that optimiser updates, weighted by each rank's rows, so a
training step class with one, two or more optimisers needs no change), ``agree`` (rank
0's stop decision, so time budgets never leave one rank waiting in a collective),
``average_batchnorm_statistics`` and ``barrier``.

A step class that decides from its own batch whether to call an optimiser (the seed
DCGAN skips D while it is too accurate) must make that decision the same on every rank
(``mean_across_ranks``): a rank that skips a step the others take would wait forever.
"""

from __future__ import annotations

import os
import weakref
from datetime import timedelta

import torch
import torch.distributed as dist

from brainlab.errors import BrainlabInputError

# Rank 0 may evaluate for a long time while the others wait at a barrier (a final test
# on thousands of subjects); the default 10-30 min collective timeout would kill them.
TIMEOUT_MINUTES_ENV = "BRAINLAB_DIST_TIMEOUT_MINUTES"
DEFAULT_TIMEOUT_MINUTES = 180.0


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of training processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the only rank that writes events, previews and checkpoints."""
    return rank() == 0


def local_rank() -> int:
    """Rank on this machine (``LOCAL_RANK``); picks the GPU with ``--device cuda``."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup(device: str = "cpu") -> bool:
    """Join the torchrun process group when launched by torchrun; True if it did.

    ``device`` 'cuda' uses nccl and makes this process's default GPU the one of its
    local rank; 'cpu' uses gloo. Calling it twice, or without torchrun, changes nothing.
    """
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise BrainlabInputError("torchrun started several processes but this torch build "
                                 "has no torch.distributed")
    timeout = timedelta(minutes=float(os.environ.get(TIMEOUT_MINUTES_ENV,
                                                     DEFAULT_TIMEOUT_MINUTES)))
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise BrainlabInputError("--device cuda requested but no CUDA GPU is available")
        count = torch.cuda.device_count()
        if local_rank() >= count:
            raise BrainlabInputError(
                f"local rank {local_rank()} has no GPU: this machine has {count}; expected "
                f"--nproc_per_node <= {count} with --device cuda")
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl", timeout=timeout,
                                device_id=torch.device("cuda", local_rank()))
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return True


def teardown(wait: bool = True) -> None:
    """Leave the process group; with ``wait`` after a last barrier, so no rank exits
    mid-collective. After an error pass ``wait=False``: the failing rank exits at once
    and torchrun stops the others (a barrier would hang until the timeout)."""
    if dist.is_available() and dist.is_initialized():
        if wait and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def device_for(device: str | torch.device) -> torch.device:
    """``device`` with the local rank's GPU index filled in ('cuda' -> 'cuda:LOCAL_RANK')."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _collective_device() -> torch.device:
    """Where small tensors for collectives live: the GPU under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "out of time"), so all ranks stop together."""
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.broadcast(value, src=0)
    return bool(value.item() > 0.5)


def mean_across_ranks(value: float) -> float:
    """The mean of a float over ranks (the value itself when not distributed)."""
    if not is_distributed():
        return float(value)
    total = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return float(total.item()) / world_size()


def broadcast_object(value, src: int = 0):
    """Rank ``src``'s picklable ``value`` on every rank."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def weighted_mean_of_dicts(values: dict, weight: float) -> dict:
    """Float entries averaged over ranks, weighted by ``weight`` (rows); for logged losses."""
    if not is_distributed():
        return values
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, (float(weight), dict(values)))
    out = {}
    for key in values:
        pairs = [(w, d[key]) for w, d in gathered
                 if isinstance(d.get(key), float) and d[key] == d[key] and w > 0]
        total = sum(w for w, _ in pairs)
        out[key] = sum(w * v for w, v in pairs) / total if total > 0 else values[key]
    return out


def _broadcast_tensors(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values (one flat buffer per dtype)."""
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault(tensor.dtype, []).append(tensor)
    device = _collective_device()
    for dtype, group in groups.items():
        wire = torch.uint8 if dtype == torch.bool else dtype
        flat = torch.cat([t.detach().reshape(-1).to(device=device, dtype=wire) for t in group])
        dist.broadcast(flat, src=src)
        offset = 0
        with torch.no_grad():
            for tensor in group:
                n = tensor.numel()
                tensor.copy_(flat[offset:offset + n].view(tensor.shape).to(tensor.dtype))
                offset += n


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank ``src``'s parameters and buffers (DDP does this at wrap time)."""
    if not is_distributed():
        return
    tensors = [t for t in list(module.parameters()) + list(module.buffers()) if t.numel() > 0]
    _broadcast_tensors(tensors, src)


def average_batchnorm_statistics(module: torch.nn.Module) -> None:
    """Average BatchNorm running means/variances over ranks.

    BatchNorm normalises each rank's own batch (no SyncBatchNorm: it needs a GPU and
    changes the module classes); only the running statistics, which evaluation and
    the checkpoint use, are made the same on every rank.
    """
    if not is_distributed():
        return
    stats = []
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) and layer.track_running_stats:
            stats += [layer.running_mean, layer.running_var]
    stats = [s for s in stats if s is not None]
    if not stats:
        return
    device = _collective_device()
    flat = torch.cat([s.detach().reshape(-1).to(device=device, dtype=torch.float64)
                      for s in stats])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    with torch.no_grad():
        for s in stats:
            s.copy_(flat[offset:offset + s.numel()].view(s.shape).to(s.dtype))
            offset += s.numel()


def _optimizer_parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


class GradientAverager:
    """Average every optimiser's gradients over ranks just before it steps.

    Registered as a step-pre-hook on each optimiser of a ``TrainingSteps``, so it covers
    whatever a step optimises (one AdamW, a GAN's G and D, an autoencoder plus a patch
    discriminator) without wrapping models in DDP (steps call model methods, not
    ``forward``, which DDP would need). Each rank's gradient counts with ``weight``
    (its rows in this step; the loop sets it), so uneven shards of a last batch average
    to the full batch's mean gradient. A parameter without a gradient on every rank stays
    without one (the optimiser skips it, as in one process).
    """

    def __init__(self, optimizers):
        self.weight = 1.0
        self._synced: set[int] = set()
        self._optimizers = list(optimizers)
        self._handles = [optimizer.register_step_pre_hook(self._before_step)
                         for optimizer in self._optimizers]
        for optimizer in self._optimizers:
            _AVERAGERS[optimizer] = self

    def track(self, optimizers) -> None:
        """Also hook optimisers created since (a step class that makes one lazily)."""
        for optimizer in optimizers:
            if _AVERAGERS.get(optimizer) is not self:
                self._optimizers.append(optimizer)
                self._handles.append(optimizer.register_step_pre_hook(self._before_step))
                _AVERAGERS[optimizer] = self

    def remove(self) -> None:
        """Unregister the hooks (end of ``fit``)."""
        for handle in self._handles:
            handle.remove()
        for optimizer in self._optimizers:
            _AVERAGERS.pop(optimizer, None)
        self._handles, self._optimizers = [], []

    def _before_step(self, optimizer, args, kwargs) -> None:
        if id(optimizer) in self._synced:  # averaged already (before clipping)
            self._synced.discard(id(optimizer))
            return
        self.average(optimizer)

    def average(self, optimizer, keep_mark: bool = False) -> None:
        """Average ``optimizer``'s gradients now; ``keep_mark`` skips it at the next step."""
        if not is_distributed():
            return
        params = [p for p in _optimizer_parameters(optimizer) if p.requires_grad]
        if not params:
            return
        device = _collective_device()
        weight = float(self.weight)
        pieces = [(p.grad.detach().reshape(-1).to(device=device, dtype=torch.float32)
                   * weight) if p.grad is not None
                  else torch.zeros(p.numel(), device=device) for p in params]
        flags = torch.tensor([1.0 if p.grad is not None else 0.0 for p in params] + [weight],
                             device=device)
        flat = torch.cat(pieces + [flags])
        dist.all_reduce(flat)
        total_weight = float(flat[-1].item())
        if total_weight <= 0:
            return
        present = flat[-1 - len(params):-1]
        offset = 0
        with torch.no_grad():
            for p, seen in zip(params, present.tolist()):
                n = p.numel()
                if seen > 0:
                    mean = (flat[offset:offset + n] / total_weight).view(p.shape)
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    p.grad.copy_(mean.to(p.grad.dtype))
                offset += n
        if keep_mark:
            self._synced.add(id(optimizer))


_AVERAGERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def average_gradients_now(optimizer: torch.optim.Optimizer) -> None:
    """Average ``optimizer``'s gradients before its step (call before gradient clipping,
    so the clip sees the full batch's gradient); its step then does not average again."""
    averager = _AVERAGERS.get(optimizer)
    if averager is not None:
        averager.average(optimizer, keep_mark=True)
