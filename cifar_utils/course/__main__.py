"""python -m cifar_utils.course COMMAND ...: hand the command to the module that does it."""

import sys

import cifar_utils.course as tooling

from . import assignments, bench, runner

COMMANDS = {"run": runner.main, "report": runner.main, "generate": assignments.main,
            "grade": assignments.main, "bench": lambda argv: bench.main(argv[1:])}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(tooling.__doc__.strip(), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv)


if __name__ == "__main__":
    sys.exit(main())
