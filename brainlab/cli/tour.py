"""``python -m brainlab tour [--cohort SOURCE] [--base-url URL] [--json]``: the teaching tour.

Prints the 8 steps of ``brainlab.tour`` with the deep link that opens each one in a
running app (``streamlit run app.py``), so a teacher can paste them into slides.
"""

from __future__ import annotations

import ast
import json
import textwrap

from brainlab import paths


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tour", help="print the guided teaching tour with a deep link per step",
        description="The 8 steps of the teaching tour, each with its explanation, a question "
                    "for the class and the app link that opens it in the right state.")
    parser.add_argument("--cohort", default="hcp-ya", help="preset name or path (default hcp-ya)")
    parser.add_argument("--base-url", default="http://localhost:8501",
                        help="where the app is served (default http://localhost:8501)")
    parser.add_argument("--json", action="store_true", help="print the steps as JSON")
    parser.set_defaults(run=run_tour)


def app_url_paths() -> set[str]:
    """URL paths of the app's catalogued pages whose file exists (read, not imported:
    brainlab never imports the app)."""
    catalog = paths.REPO_ROOT / "app_pages" / "_catalog.py"
    if not catalog.is_file():
        return set()
    found = set()
    for node in ast.walk(ast.parse(catalog.read_text())):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PageInfo"
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])):
            page_file, url_path = node.args[0].value, node.args[1].value
            if (paths.REPO_ROOT / page_file).is_file():
                found.add(url_path)
    return found


def _indented(text: str) -> str:
    return textwrap.fill(text, 88, initial_indent="   ", subsequent_indent="   ",
                         break_on_hyphens=False)


def run_tour(args) -> int:
    from brainlab.tour import LIVE_GAN_PAGE, tour_steps

    steps = tour_steps(args.cohort, live_gan=LIVE_GAN_PAGE in app_url_paths())
    if args.json:
        print(json.dumps([{"number": s.number, "title": s.title, "explanation": s.explanation,
                           "question": s.question, "page": s.url_path, "query": s.query,
                           "models": list(s.models), "note": s.note,
                           "link": s.link(args.base_url)} for s in steps], indent=2, ensure_ascii=False))
        return 0
    print(f"brainlab teaching tour on cohort {args.cohort.strip()} "
          f"(serve the app with: streamlit run app.py)\n")
    for s in steps:
        print(f"{s.number}. {s.title}")
        print(_indented(s.explanation))
        print(_indented(f"Question: {s.question}"))
        if s.note:
            print(_indented(f"Note: {s.note}"))
        if s.models:
            print(f"   Needs: {', '.join(s.models)}")
        print(f"   Open: {s.link(args.base_url)}\n")
    return 0
