"""``python -m brainlab jobs list|show|cancel|start``: the background training jobs.

The same registry the app's train page uses (``brainlab.jobs``): a job started in the
browser shows up here and can be cancelled here, and the other way round.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "jobs", help="list, show, start or cancel background training jobs",
        description="Background training jobs (one runs at a time on a machine).")
    commands = parser.add_subparsers(dest="jobs_command", required=True)

    listing = commands.add_parser("list", help="every job, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON records")
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="one job: record, progress and log tail")
    show.add_argument("id", help="job id (from 'jobs list')")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--lines", type=int, default=20, help="log lines to show (default 20)")
    show.set_defaults(run=run_show)

    cancel = commands.add_parser("cancel", help="stop a running job (SIGTERM, then SIGKILL)")
    cancel.add_argument("id", help="job id")
    cancel.add_argument("--json", action="store_true", help="print the JSON record")
    cancel.set_defaults(run=run_cancel)

    start = commands.add_parser(
        "start", help="start training in the background (python -m brainlab train ...)")
    start.add_argument("model", help="model type to train, e.g. mri-ae, gan, morph-ae")
    start.add_argument("--cohort", default="hcp-ya", help="phantom preset or path (default hcp-ya)")
    start.add_argument("--name", default=None,
                       help="checkpoint name under the user checkpoints folder "
                            "(default <cohort>/<model>-<job id>)")
    start.add_argument("--minutes", type=float, default=None, help="time budget")
    start.add_argument("--epochs", type=int, default=None, help="epoch cap")
    start.add_argument("--batch-size", type=int, default=None, help="subjects per step")
    start.add_argument("--seed", type=int, default=None, help="training seed")
    start.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    start.add_argument("--json", action="store_true", help="print the JSON record")
    start.set_defaults(run=run_start)

    supervise = commands.add_parser("supervise", help=argparse.SUPPRESS)
    supervise.add_argument("folder")
    supervise.set_defaults(run=run_supervise)


def _duration(record: dict) -> str:
    from datetime import datetime, timezone

    if not record.get("started_at"):
        return "-"
    start = datetime.fromisoformat(record["started_at"])
    end = datetime.fromisoformat(record["ended_at"]) if record.get("ended_at") else \
        datetime.now(timezone.utc)
    seconds = int((end - start).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s"


def run_list(args) -> int:
    from brainlab.jobs import list_jobs

    records = list_jobs()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print("no jobs")
        return 0
    print(f"{'id':<22} {'status':<10} {'model':<10} {'cohort':<10} {'time':>8}  checkpoint")
    for record in records:
        print(f"{record['id']:<22} {record['status']:<10} {record['model_type']:<10} "
              f"{record['cohort']:<10} {_duration(record):>8}  {record['checkpoint']}")
    return 0


def run_show(args) -> int:
    from brainlab.jobs import get_job, job_progress, log_tail

    record = get_job(args.id)
    progress = job_progress(record)
    tail = log_tail(record, args.lines)
    if args.json:
        print(json.dumps({**record, "progress": progress, "log_tail": tail}, indent=2))
        return 0
    print(f"job {record['id']}: {record['status']} ({record['model_type']} on {record['cohort']})")
    print(f"  command:    {' '.join(record['command'])}")
    print(f"  checkpoint: {record['checkpoint']}")
    print(f"  log:        {record['log']}")
    eta = progress["eta_seconds"]
    eta_text = "-" if eta is None else f"{eta:.0f} s"
    print(f"  progress:   {100 * progress['fraction']:.0f}%  step {progress['step']}"
          f"/{progress['total_steps'] or '?'}  elapsed {progress['elapsed']:.0f} s  eta {eta_text}")
    if record["status"] == "done":
        from brainlab.checkpoints import quality_verdict, read_card

        level, sentence = quality_verdict(read_card(record["checkpoint"]))
        print(f"  quality {level}: {sentence}")
    if record.get("message"):
        print(f"  {record['message']}")
    if tail and record["status"] != "done":
        print("--- log tail ---")
        print(tail)
    return 0


def run_cancel(args) -> int:
    from brainlab.jobs import cancel_job

    record = cancel_job(args.id)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"job {record['id']}: {record['status']}")
    return 0


def run_start(args) -> int:
    from brainlab.jobs import start_job

    record = start_job(args.model, args.cohort, name=args.name, minutes=args.minutes,
                       epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                       threads=args.threads)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"job {record['id']} started: {' '.join(record['command'])}")
        print(f"  follow it with: python -m brainlab jobs show {record['id']}")
    return 0


def run_supervise(args) -> int:
    from brainlab.jobs import supervise

    return supervise(args.folder)
