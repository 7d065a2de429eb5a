"""Command line: ``python -m ecgbook {data,run,build} [--profile P]``.

``data``   download (or copy from ``$ECGBOOK_MIRROR``) every dataset the book uses, verified.
``run``    execute the chapters of a profile with papermill (``--chapters`` to pick some), printing
           a line per code cell with its elapsed time.
           ``--jobs N`` runs up to N chapters at once (each in its own process, a log per chapter).
``build``  ``run``, then build the HTML from the executed notebooks (``--no-run`` to skip execution);
           with ``--chapters``, the other chapters are staged without outputs (a partial build).

Profiles: smoke (CI, minutes, numbers mean nothing), classroom (each chapter in about ten minutes
on a 2-core CPU, a fixed subset of the mirror), tutorial (default: all of the mirror), paper.
"""
from __future__ import annotations

import argparse
import sys

from . import book
from .edition import EDITIONS
from .profiles import PROFILE_NAMES


def download_all() -> None:
    """Fetch the datasets used by the chapters (PTB-XL 100 Hz records present at the source, MIT-BIH)."""
    from .data.mitdb import MITBIH
    from .data.ptbxl import PTBXL

    print(PTBXL().summary())
    print(f"MIT-BIH Arrhythmia: {len(MITBIH().records)} records")
    try:
        from .data.cinc2017 import CinC2017
        print(f"PhysioNet/CinC Challenge 2017: {len(CinC2017().records)} records")
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgbook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("data", "run", "build"))
    parser.add_argument("--profile", default="tutorial", choices=PROFILE_NAMES)
    parser.add_argument("--chapters", nargs="+", metavar="NAME",
                        help="execute only chapters whose file name contains one of these (e.g. baseline)")
    parser.add_argument("--no-run", action="store_true", help="build: reuse the executed notebooks")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run/build: execute up to N chapters at once, each in its own process "
                             "(logs in _build/stage/<profile>/logs/)")
    parser.add_argument("--edition", default="teacher", choices=EDITIONS,
                        help="build: 'student' leaves out the exercises' solutions (HTML in .../student/html)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    unused = {"data": {"--profile", "--chapters", "--no-run", "--jobs", "--edition"}, "run": {"--no-run", "--edition"},
              "build": {"--chapters", "--jobs"} if args.no_run else set()}[args.command] & given
    if unused:
        why = "with --no-run nothing is executed" if args.command == "build" else \
            f"'{args.command}' does not use {'them' if len(unused) > 1 else 'it'}"
        parser.error(f"{', '.join(sorted(unused))}: not used by '{args.command}' ({why})")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        if args.command == "data":
            download_all()
            return 0
        if args.chapters:
            book.select_chapters(args.chapters)  # unknown names fail here, before anything runs
        if args.jobs > 1 and not args.no_run:
            download_all()  # once, before the workers, so that no two chapters build one cache
        stage = book.execute(args.profile, args.chapters, jobs=args.jobs) if not args.no_run else \
            book.config.project_root() / "_build" / "stage" / args.profile
        if args.command == "build":
            index = book.build_html(stage, book.output_dir(args.profile, edition=args.edition),
                                    allow_unexecuted=bool(args.chapters), edition=args.edition)
            print(f"[ecgbook] book ({args.profile}, {args.edition} edition) at {index}")
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
