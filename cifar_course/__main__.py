"""course COMMAND ...: one parser, a sub-command per tool.

The tools' functions raise exceptions that say what is wrong; only main() turns them into a
message and an exit status (2 for a request that cannot be carried out).
"""

from __future__ import annotations

import argparse
import sys

import cifar_course as tooling
from cifar_utils.checkpoints import CheckpointError
from cifar_utils.data import DataError

from . import assignments, bench, demo, handout, leaderboard, runner, sandbox, site, student_versions

# name -> (help, add its arguments, carry it out)
COMMANDS = {
    "run": ("execute the notebooks with papermill, then report", runner.add_run_arguments, runner.run_command),
    "report": ("rebuild the report of a run folder", runner.add_report_arguments, runner.report_command),
    "generate": ("write student versions of the notebooks", student_versions.add_generate_arguments,
                 student_versions.generate_command),
    "grade": ("run submissions in a sandbox and score their exercises", assignments.add_grade_arguments,
              assignments.grade_command),
    "challenge": ("run 09's challenge submissions within the time budget, and rank them",
                  leaderboard.add_challenge_arguments, leaderboard.challenge_command),
    "bench": ("the input paths against the compute ceiling", bench.add_bench_arguments, bench.bench_command),
    "site": ("build the course site (offline, from the executed references)", site.add_site_arguments,
             site.site_command),
    "demo": ("serve a trained model as a web demo (Gradio)", demo.add_demo_arguments, demo.demo_command),
}
# what a user can cause and fix: said in one line, no traceback
USER_ERRORS = (runner.ParameterError, sandbox.SandboxUnavailable, handout.ChallengeError, site.SiteError, demo.DemoError, DataError,
               CheckpointError, FileNotFoundError)


def parser() -> argparse.ArgumentParser:
    """The command line: `course COMMAND --help` for each command's."""
    top = argparse.ArgumentParser(prog="course", description=tooling.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, handler) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(handler=handler)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
