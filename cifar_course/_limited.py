"""Start a command under the grader's limits: `python -S _limited.py SETTINGS_JSON COMMAND...`.

Run by path, not imported; it changes itself, then becomes COMMAND (exec), which inherits all:
- outside the sandbox, {"rlimits": {...}, "cgroups": [...]}: its resource limits, and the
  submission's cgroup, which it joins. A launcher of its own, because the grader has threads,
  and Python's preexec_fn is not safe in a process that has them;
- inside the sandbox, started by a root grader, {"become": UID, "processes": N}: it drops every
  capability from its bounding set, becomes UID (a user of its own: no file, kernel setting or
  keyring is its), counts its processes (RLIMIT_NPROC, per user), and sets no_new_privs, so
  that no setuid program gives any of it back.
"""

import ctypes
import json
import os
import resource
import sys

PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
NOBODY = 65534  # where a uid of its own cannot be had (a container with a short uid map)


def become(uid: int, processes: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):  # every capability out of the bounding set (past the last one, EINVAL: ignored)
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    os.setgroups([])
    try:
        os.setgid(uid)
        os.setuid(uid)  # from root: every capability goes with it
    except OSError:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "no_new_privs")


def main(settings: str, *command: str) -> None:
    settings = json.loads(settings)
    for name, value in settings.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    for folder in settings.get("cgroups", []):
        with open(os.path.join(folder, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    if "become" in settings:
        become(settings["become"], settings["processes"])
    os.execvp(command[0], list(command))


if __name__ == "__main__":
    main(*sys.argv[1:])
