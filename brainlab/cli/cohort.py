"""``python -m brainlab cohort {build,info,export,validate}``: build, describe, export
and validate cohorts (``validate``: every PHANTOM.md v2 target beside its measured value).

SOURCE is a phantom preset (``hcp-ya``, ``lifespan``, ``tiny``) or a path: a
folder of HCP tensors, a folder of NIfTI volumes with ``participants.tsv``, or
a .csv/.tsv table. Loader options apply only to the kind of source they name;
giving one to another kind is an error rather than silently ignored.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from brainlab.errors import BrainlabInputError

# option dest -> the source kinds it applies to
LOADER_OPTIONS = {
    "coding": ("hcp",),
    "male_code": ("hcp", "table", "nifti"),
    "age_map": ("hcp",),
    "id_column": ("table",),
    "sex_column": ("table",),
    "age_column": ("table",),
    "drop_non_numeric": ("table",),
    "group_column": ("table",),
    "grid": ("nifti",),
    "intensity": ("nifti",),
}


def register(subparsers) -> None:
    cohort = subparsers.add_parser("cohort", help="build, describe or export a cohort")
    actions = cohort.add_subparsers(dest="cohort_command", required=True)

    build = actions.add_parser("build", help="build (or load) a cohort and its cache")
    _add_source(build)
    build.add_argument("--rebuild", action="store_true", help="ignore the cache and build again")
    build.set_defaults(run=run_build)

    info = actions.add_parser("info", help="summary: counts by sex and age bin, grid, notes")
    _add_source(info)
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(run=run_info)

    export = actions.add_parser(
        "export", help="write NIfTI volumes, participants.tsv, morphometry.csv, truth.csv")
    _add_source(export)
    export.add_argument("--out", required=True, help="output folder (created if needed)")
    export.set_defaults(run=run_export)

    validate = actions.add_parser(
        "validate", help="every PHANTOM.md v2 target (HCP-YA figures) beside its measured value")
    _add_source(validate)
    validate.add_argument("--json", action="store_true", help="print the rows as JSON")
    validate.add_argument("--strict", action="store_true",
                          help="exit with status 1 when any target fails")
    validate.add_argument("--no-images", action="store_true",
                          help="skip the mean-image checks (they read every volume once)")
    validate.add_argument("--column", action="append", default=[], metavar="MEASURE=COLUMN",
                          help="read a named measure from this table column, e.g. icv=eTIV "
                               "(repeatable)")
    validate.set_defaults(run=run_validate)


def _add_source(parser) -> None:
    parser.add_argument("source", nargs="?", default="hcp-ya",
                        help="preset name or path (default: hcp-ya)")
    group = parser.add_argument_group("loader options")
    group.add_argument("--coding", choices=("seed", "ordinal"),
                       help="HCP tensors: label coding of sex.npy/age.npy (default seed)")
    group.add_argument("--male-code", help="value of the sex column/array that means male")
    group.add_argument("--age-map",
                       help="HCP tensors: age codes to bins, e.g. '0=26-30,1=22-25,2=31-35,3=36+'")
    group.add_argument("--id-column", help="table: subject id column")
    group.add_argument("--sex-column", help="table: sex column")
    group.add_argument("--age-column", help="table: age column (years or bins like 22-25)")
    group.add_argument("--group-column",
                       help="table: family id column (e.g. Family_ID): probes keep each "
                            "family inside one fold")
    group.add_argument("--drop-non-numeric", action="store_true", default=None,
                       help="table: drop non-numeric feature columns instead of failing")
    group.add_argument("--grid", help="NIfTI folder: target grid, e.g. 58,70,58")
    group.add_argument("--intensity", choices=("auto", "percentile", "none"),
                       help="NIfTI folder: intensity normalisation rule (default auto)")


def source_kind(source: str) -> str:
    """'preset', 'table', 'hcp' or 'nifti', following ``brainlab.data.sources.load``."""
    from brainlab.data.sources import PRESET_NAMES

    if source in PRESET_NAMES:
        return "preset"
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        return "table"
    if path.is_dir():
        return "hcp" if (path / "images.npy").exists() else "nifti"
    return "unknown"  # load() raises the clear error


def loader_options(args) -> dict:
    """Keyword options for ``brainlab.data.load`` from the CLI flags given."""
    kind = source_kind(args.source)
    given = {name: getattr(args, name, None) for name in LOADER_OPTIONS}
    given = {name: value for name, value in given.items() if value is not None}
    wrong = [name for name in given if kind not in LOADER_OPTIONS[name]]
    if wrong:
        details = "; ".join(f"--{n.replace('_', '-')} applies to {' / '.join(LOADER_OPTIONS[n])} "
                            f"sources" for n in wrong)
        raise BrainlabInputError(
            f"loader options not valid for {args.source!r}, a {kind} source: {details}")
    options = {}
    for name, value in given.items():
        if name == "male_code":
            if kind == "hcp":
                try:
                    options["male_code"] = int(value)
                except ValueError:
                    raise BrainlabInputError(f"--male-code for HCP tensors must be an integer; found {value!r}") from None
            else:
                options["male_values"] = [value]
        elif name == "age_map":
            options["age_map"] = _parse_age_map(value)
        elif name == "grid":
            options["grid_shape"] = _parse_grid(value)
        else:
            options[name] = value
    return options


def _parse_age_map(text: str) -> dict:
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, sep, label = item.partition("=")
        if not sep or not code.strip().lstrip("-").isdigit():
            raise BrainlabInputError(f"--age-map item {item!r}; expected CODE=BIN such as 0=26-30")
        mapping[int(code)] = label.strip()
    return mapping


def _parse_grid(text: str) -> tuple[int, int, int]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise BrainlabInputError(f"--grid {text!r}; expected three sizes such as 58,70,58")
    return tuple(int(p) for p in parts)


def _load(args, progress=None, rebuild: bool = False):
    from brainlab.data import load

    options = loader_options(args)
    if rebuild:
        options.update(_rebuild_option(args.source))
    return load(args.source, progress=progress, **options)


def _rebuild_option(source: str) -> dict:
    """``rebuild=True`` where the source's loader has a cache to rebuild."""
    kind = source_kind(source)
    if kind == "preset":
        from brainlab.data.phantom import load_phantom as loader
    elif kind == "nifti":
        from brainlab.data.nifti import load_nifti_folder as loader
    else:
        return {}  # tables and HCP tensors are read directly; nothing to rebuild
    return {"rebuild": True} if "rebuild" in inspect.signature(loader).parameters else {}


def run_build(args) -> int:
    from brainlab.data.export import cohort_summary
    from brainlab.data.progress import tqdm_progress

    callback, close = tqdm_progress(f"cohort {args.source}")
    try:
        cohort = _load(args, progress=callback, rebuild=args.rebuild)
    finally:
        close()
    print(_format_summary(cohort_summary(cohort)))
    return 0


def run_info(args) -> int:
    from brainlab.data.export import cohort_summary

    summary = cohort_summary(_load(args))
    print(json.dumps(summary, indent=2) if args.json else _format_summary(summary))
    return 0


def run_export(args) -> int:
    from brainlab.data.export import export_cohort
    from brainlab.data.progress import tqdm_progress

    cohort = _load(args)
    callback, close = tqdm_progress(f"export {cohort.name}")
    try:
        folder = export_cohort(cohort, args.out, progress=callback)
    finally:
        close()
    volumes = len(cohort) if cohort.images is not None else 0
    print(f"exported {len(cohort)} subjects ({volumes} NIfTI volumes) to {folder}")
    return 0


def _parse_columns(items: list[str]) -> dict[str, str]:
    columns = {}
    for item in items:
        measure, sep, column = item.partition("=")
        if not sep or not measure.strip() or not column.strip():
            raise BrainlabInputError(f"--column {item!r}; expected MEASURE=COLUMN such as icv=eTIV")
        columns[measure.strip()] = column.strip()
    return columns


def run_validate(args) -> int:
    from brainlab.analysis.cohort_validation import summary, validate_cohort

    columns = _parse_columns(args.column)
    cohort = _load(args)
    rows = validate_cohort(cohort, columns=columns, images=not args.no_images)
    counts = summary(rows)
    if args.json:
        print(json.dumps({"cohort": cohort.name, "source": cohort.source or args.source,
                          "n_subjects": len(cohort), "summary": counts,
                          "rows": [row.as_dict() for row in rows]}, indent=2))
    else:
        print(format_validation(cohort.name, len(cohort), rows, counts))
    return 1 if args.strict and counts["failed"] else 0


def _result_word(row) -> str:
    if row.measured is None and row.passed is None:
        return "n/a"
    return {True: "PASS", False: "FAIL", None: "-"}[row.passed]


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _pass_range(row) -> str:
    if row.low is None and row.high is None:
        return ""
    if row.low is None:
        return f"<= {_number(row.high)}"
    if row.high is None:
        return f">= {_number(row.low)}"
    return f"{_number(row.low)} .. {_number(row.high)}"


def format_validation(name: str, n_subjects: int, rows, counts: dict) -> str:
    """Rows grouped as printed by ``cohort validate``: measured value, pass range, result."""
    width = max(len(row.name) for row in rows)
    target_width = max(len(row.target) for row in rows)
    lines = [f"cohort {name}: {n_subjects} subjects; targets from PHANTOM.md (v2, real HCP-YA)"]
    group = None
    for row in rows:
        if row.group != group:
            group = row.group
            lines += ["", f"## {group}"]
        measured = "" if row.measured is None else f"{row.measured:.3f}"
        lines.append(f"  {_result_word(row):4}  {row.name:<{width}}  {row.target:<{target_width}}  "
                     f"{measured:>9}  {_pass_range(row):<16}  {row.note}".rstrip())
    lines += ["", f"{counts['passed']} passed, {counts['failed']} failed, "
                  f"{counts['reported']} reported without a range, {counts['not_available']} n/a "
                  f"(of {counts['total']})"]
    return "\n".join(lines)


def _format_summary(summary: dict) -> str:
    lines = [
        f"cohort       {summary['name']}  ({summary['source']})",
        f"subjects     {summary['n_subjects']}  "
        + "  ".join(f"{sex}: {n}" for sex, n in summary["sex_counts"].items()),
        "age bins     " + "  ".join(f"{b}: {n}" for b, n in summary["age_bin_counts"].items()),
        "age range    " + ("unknown (bins only)" if summary["age_range"] is None
                           else "{:.1f} - {:.1f} y".format(*summary["age_range"])),
        f"grid         {summary['grid_shape'] or 'none (table only)'}",
        f"morphometry  {summary['n_morphometry_columns']} columns"
        + ("; ground truth stored" if summary["has_truth"] else ""),
        f"fingerprint  {summary['fingerprint']}",
        f"cache        {summary['cache_path'] or '-'}",
    ]
    if summary["grid_shape"]:
        lines.insert(5, "affine       " + "\n             ".join(
            " ".join(f"{v:9.3f}" for v in row) for row in summary["affine"]))
    lines += [f"note         {note}" for note in summary["notes"]]
    return "\n".join(lines)
