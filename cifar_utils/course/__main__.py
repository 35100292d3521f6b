"""`python -m cifar_utils.course COMMAND`: the old name of `course COMMAND`, kept for one release."""

import sys

from cifar_course.__main__ import main

if __name__ == "__main__":
    print("note: `python -m cifar_utils.course` is now `course` (or `python -m cifar_course`); "
          "the old form goes in the next release.", file=sys.stderr)
    sys.exit(main())
