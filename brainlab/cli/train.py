"""``python -m brainlab train {mri-ae,morph-ae,gan,encoder,sex-clf,age-model,all}``.

Loads the cohort, runs the recipe of the type's ``brainlab.registry`` entry
(``brainlab.train_recipes.train``) and shows a tqdm bar fed by the training events. ``all`` trains every model in
dependency order into ``--out/<type>/``.

Under ``torchrun --standalone --nproc_per_node N -m brainlab train ...`` every process
runs this command: it joins the process group (``brainlab.training.distributed``), rank 0
builds or reads the cohort cache first (the others then read the warm cache), and only
rank 0 shows progress and prints the result.
"""

from __future__ import annotations

import time
from pathlib import Path

from brainlab.errors import BrainlabInputError


def register(subparsers) -> None:
    from brainlab.registry import MODEL_TYPES

    names = sorted(spec.command_name for spec in MODEL_TYPES.values())
    parser = subparsers.add_parser(
        "train", help="train a model (or all of them) on a cohort",
        description="Train a model on a cohort and write a checkpoint folder "
                    "(model.safetensors, model_card.json, events.jsonl).")
    parser.add_argument("model", choices=names + ["all"], help="what to train")
    parser.add_argument("--cohort", default="hcp-ya",
                        help="phantom preset (hcp-ya, lifespan, tiny) or a path (default hcp-ya)")
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint folder (for 'all': the parent of one folder per model); "
                             "default: the user cache's checkpoints/<cohort>/")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap (default: per recipe)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="time budget per model (default: per recipe)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="subjects per optimiser step, in total over all torchrun "
                             "processes (each gets batch-size / N)")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda (default cpu); under torchrun, cuda is the GPU of "
                             "each process's local rank (nccl), cpu uses gloo")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader processes reading batches from disk ahead of "
                             "training (default 0: read in the training process)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the CPU count); 1 lets two "
                             "trainings share a 2-core machine without contention")
    parser.add_argument("--storage", choices=("float32", "float16"), default=None,
                        help="checkpoint weight precision (float16 halves the size; default: "
                             "the model's recipe, float16 for mri-ae, else float32)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run found in the output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train)


def _progress_bar(description: str, quiet: bool):
    """(callback, close): a tqdm bar driven by training events."""
    if quiet:
        return (lambda event: None), (lambda: None)
    from tqdm import tqdm

    from brainlab.registry import MODEL_TYPES

    # The metrics the verdicts judge, of any type (the bar shows those it receives).
    headline = {rule.metric for spec in MODEL_TYPES.values()
                for rule in spec.quality_targets + spec.fallback_targets}
    bar = tqdm(desc=description, unit="step", dynamic_ncols=True)

    def callback(event: dict) -> None:
        if event.get("total_steps") and bar.total != event["total_steps"]:
            bar.total = event["total_steps"]
        bar.n = event.get("step", bar.n)
        shown = {}
        for name, value in (event.get("losses") or {}).items():
            if isinstance(value, float):
                shown[name] = f"{value:.4g}"
        split = "test" if event.get("type") == "done" else "val"
        for name, value in (event.get("metrics") or {}).items():
            if isinstance(value, float) and name in headline:
                shown[f"{split}_{name}"] = f"{value:.3g}"
        if shown:
            bar.set_postfix(shown, refresh=False)
        bar.refresh()

    return callback, bar.close


def run_train(args) -> int:
    from brainlab.training import distributed

    if args.device not in ("cpu", "cuda"):
        raise BrainlabInputError(f"--device must be 'cpu' or 'cuda'; found {args.device!r}")
    if args.workers is not None and args.workers < 0:
        raise BrainlabInputError(f"--workers must be >= 0; found {args.workers}")
    distributed.setup(args.device)  # a no-op without torchrun
    try:
        result = _train_targets(args)
    except BaseException:
        distributed.teardown(wait=False)
        raise
    distributed.teardown()
    return result


def _load_cohort(source: str, is_main: bool):
    """The cohort; under torchrun rank 0 builds its cache while the others wait, so
    N processes never build one cache N times."""
    from brainlab.data.progress import tqdm_progress
    from brainlab.data.sources import load
    from brainlab.training import distributed

    if not is_main:
        distributed.barrier()
    progress, close = tqdm_progress(f"cohort {source}") if is_main else (None, lambda: None)
    try:
        cohort = load(source, progress=progress)
    finally:
        close()
    if is_main:
        distributed.barrier()
    return cohort


def _train_targets(args) -> int:
    from brainlab import paths
    from brainlab.registry import MODEL_TYPES, train_all_order
    from brainlab.train_recipes import RecipeOptions, train
    from brainlab.training import distributed

    is_main = distributed.is_main_process()
    cohort = _load_cohort(args.cohort, is_main)
    root = args.out or paths.user_checkpoints() / cohort.name
    if args.model == "all":
        plan = list(train_all_order())
        if cohort.images is None:
            skipped = [t for t in plan if MODEL_TYPES[t].needs_images]
            plan = [t for t in plan if not MODEL_TYPES[t].needs_images]
            if is_main:
                print(f"note: cohort {cohort.name!r} has no images; skipping "
                      f"{', '.join(skipped)}")
        targets = [(t, Path(root) / t) for t in plan]
    else:
        model_type = next(t for t, spec in MODEL_TYPES.items() if spec.command_name == args.model)
        targets = [(model_type, Path(args.out) if args.out else Path(root) / model_type)]

    for model_type, out in targets:
        callback, close_bar = _progress_bar(model_type, args.quiet or not is_main)
        options = RecipeOptions(out=out, out_root=Path(root), epochs=args.epochs,
                                minutes=args.minutes, batch_size=args.batch_size, seed=args.seed,
                                device=args.device, threads=args.threads, storage=args.storage,
                                workers=args.workers, resume=args.resume,
                                callbacks=[callback])
        start = time.perf_counter()
        try:
            folder = train(model_type, cohort, options)
        finally:
            close_bar()
        if is_main:
            _print_result(model_type, folder, time.perf_counter() - start)
    return 0


def _print_result(model_type: str, folder: Path, seconds: float) -> None:
    from brainlab.checkpoints import quality_verdict, read_card

    card = read_card(folder)
    level, sentence = quality_verdict(card)
    print(f"{model_type}: {folder}  ({seconds / 60:.1f} min, {card['training'].get('steps')} steps)")
    print(f"  quality {level}: {sentence}")
