"""Fixtures: a torchvision-layout DATA_DIR, and the whole course run once in the smoke profile."""

from __future__ import annotations

import pytest
from helpers import NOTEBOOK_DIR, write_torchvision_layout

from cifar_course.__main__ import main as course_main


@pytest.fixture(params=["cifar10", "cifar100"])
def torchvision_root(request, tmp_path, monkeypatch):
    """A DATA_DIR holding torchvision's layout of one data set: (root, dataset, expected)."""
    expected = write_torchvision_layout(tmp_path, request.param, monkeypatch=monkeypatch)
    return tmp_path, request.param, expected


@pytest.fixture(scope="session")
def smoke_course(tmp_path_factory):
    """Run every notebook once with `course run --profile smoke`; return the run folder.

    DOWNLOAD=False: the ImageNet arms must take the missing-weights path even on a machine
    that could download them.
    """
    out = tmp_path_factory.mktemp("course") / "smoke"
    status = course_main(["run", "--profile", "smoke", "-p", "DOWNLOAD", "False", "--tensorboard", "--out", str(out),
                          "--notebooks", str(NOTEBOOK_DIR)])
    assert status == 0
    return out
