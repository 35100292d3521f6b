"""Start a command under the grader's limits: `python -S _limited.py LIMITS_JSON COMMAND...`.

Run by path, not imported: it sets its own resource limits and joins the submission's cgroup,
then becomes COMMAND (exec), which inherits both. A launcher of its own, because the grader has
threads, and Python's preexec_fn is not safe in a process that has them.

LIMITS_JSON: {"rlimits": {"RLIMIT_AS": bytes, ...}, "cgroups": [folder, ...]}
"""

import json
import os
import resource
import sys


def main(limits: str, *command: str) -> None:
    settings = json.loads(limits)
    for name, value in settings["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    for folder in settings["cgroups"]:
        with open(os.path.join(folder, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    os.execvp(command[0], list(command))


if __name__ == "__main__":
    main(*sys.argv[1:])
