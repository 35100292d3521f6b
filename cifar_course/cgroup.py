"""A cgroup for one submission, so that its memory and processes are limited all together.

cgroup v2 where the grader's own cgroup delegates the memory and pids controllers to its
children; else cgroup v1's memory and pids hierarchies (as root). Where neither can be had,
`Cgroup.create` returns None and the sandbox falls back on limits per process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from pathlib import Path


class Cgroup:
    """A cgroup (v2, or v1's memory and pids controllers) holding one submission's processes, so
    that its memory and process count are limited for all of them together. Needs root, or a
    delegated cgroup; `create` returns None where neither is there."""

    ROOT = Path("/sys/fs/cgroup")

    def __init__(self, memory: Path, pids: Path, v2: bool):
        self.memory, self.pids, self.v2 = memory, pids, v2

    @classmethod
    def create(cls, memory_bytes: int, processes: int) -> Cgroup | None:
        name = f"cifar-course-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            if (cls.ROOT / "cgroup.controllers").exists():
                own = cls.ROOT / _own_cgroup("")
                if not {"memory", "pids"} <= set((own / "cgroup.subtree_control").read_text().split()):
                    return None  # enabling them would move the grader itself: not ours to do
                _sweep(own)
                group = own / name
                group.mkdir()
                (group / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (group / "memory.swap.max").write_text("0")
                (group / "pids.max").write_text(str(processes))
                return cls(group, group, v2=True)
            memory = cls.ROOT / "memory" / _own_cgroup("memory") / name
            pids = cls.ROOT / "pids" / _own_cgroup("pids") / name
            _sweep(memory.parent)
            _sweep(pids.parent)
            memory.mkdir()
            pids.mkdir()
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            (pids / "pids.max").write_text(str(processes))
            return cls(memory, pids, v2=False)
        except (OSError, ValueError, StopIteration):
            return None

    def processes(self) -> int:
        return int((self.pids / "pids.current").read_text())

    def refused_a_fork(self) -> bool:
        """Whether the kernel refused a new process or thread for want of room under pids.max: a
        fork bomb that hit the limit and died of it between two looks at pids.current."""
        with contextlib.suppress(OSError, ValueError):
            fields = dict(line.split() for line in (self.pids / "pids.events").read_text().splitlines())
            return int(fields.get("max", 0)) > 0
        return False

    def out_of_memory(self) -> bool:
        """Whether the kernel's OOM killer stopped one of its processes."""
        events = self.memory / ("memory.events" if self.v2 else "memory.oom_control")
        with contextlib.suppress(OSError, ValueError):
            fields = dict(line.split() for line in events.read_text().splitlines())
            return int(fields.get("oom_kill", 0)) > 0
        return False

    def kill(self) -> None:
        for _ in range(50):  # a fork bomb may add processes while we kill: until none is left
            pids = [int(p) for p in (self.pids / "cgroup.procs").read_text().split()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        for group in {self.memory, self.pids}:
            for _ in range(100):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # its last processes are still being reaped
                    time.sleep(0.05)


def _sweep(parent: Path) -> None:
    """Remove the empty cgroups a grader that was killed left behind (its pid is in their name)."""
    for group in parent.glob("cifar-course-*-*"):
        pid = int(group.name.split("-")[2]) if group.name.split("-")[2].isdigit() else 0
        if pid and pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):  # not empty, or another grader's just now
                group.rmdir()


def _own_cgroup(controller: str) -> str:
    """The grader's own cgroup path for `controller` ("" for v2), from /proc/self/cgroup."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path.lstrip("/")
    raise ValueError(f"no {controller or 'v2'} cgroup")
