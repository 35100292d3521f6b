"""Profiles, the env override, devices and the checks on the stable parameters."""

import pytest
import torch

from cifar_utils import settings


def test_auto_follows_the_environment_override(monkeypatch):
    monkeypatch.setenv(settings.PROFILE_ENV, "laptop")
    assert settings.resolve_profile("auto").name == "laptop"
    monkeypatch.delenv(settings.PROFILE_ENV)
    expected = "full" if torch.cuda.is_available() else "laptop"
    assert settings.resolve_profile("auto").name == expected


def test_an_explicit_profile_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(settings.PROFILE_ENV, "laptop")
    assert settings.resolve_profile("smoke").name == "smoke"


@pytest.mark.parametrize("bad", ["fast", "Smoke"])
def test_unknown_profile_lists_the_choices(bad):
    with pytest.raises(ValueError, match=f"Unknown profile '{bad}'.*auto, smoke, laptop, full"):
        settings.resolve_profile(bad)


def test_a_typo_in_the_environment_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv(settings.PROFILE_ENV, "smok")
    with pytest.raises(ValueError, match=r"from \$CIFAR_COURSE_PROFILE"):
        settings.resolve_profile("auto")


def test_devices():
    assert settings.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="Unknown device 'gpu'"):
        settings.resolve_device("gpu")
    if not torch.cuda.is_available():
        assert settings.resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            settings.resolve_device("cuda")


def test_resolve_applies_overrides_and_checks_values(tmp_path):
    cfg = settings.resolve("smoke", "cifar100", epochs=4, batch_size=32, results_dir=str(tmp_path))
    assert cfg.epochs("cnn") == 4 and cfg.batch_size == 32 and cfg.results_dir == tmp_path
    assert settings.resolve("smoke").epochs("cnn") == settings.PROFILES["smoke"].epochs["cnn"]
    with pytest.raises(ValueError, match="EPOCHS must be a positive whole number"):
        settings.resolve("smoke", epochs=0)
    with pytest.raises(ValueError, match="BATCH_SIZE must be"):
        settings.resolve("smoke", batch_size="64")
    with pytest.raises(ValueError, match="Unknown dataset 'cifar-10'"):
        settings.resolve("smoke", "cifar-10")


def test_results_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.RESULTS_ENV, str(tmp_path / "r"))
    assert settings.resolve("smoke").results_dir == tmp_path / "r"


def test_autocast_computes_in_the_dtype_given_and_in_full_precision_without_one():
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    with settings.autocast(torch.device("cpu"), torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16
    with settings.autocast(torch.device("cpu"), None):
        assert conv(x).dtype == torch.float32
