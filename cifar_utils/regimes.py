"""Where a method pays: each arm against its control, in more than one regime, over paired seeds.

A regime is a training budget, images x epochs: a regulariser pays where the network would
otherwise learn its training images by heart (few images, many epochs), not in a short run on
many. An arm is named after its method and its regime (`mixup_2250x30`); its control has the
same name with the control's word in the method's place (`plain_2250x30`), so that a reader of
the results JSON finds any arm's control by swapping one word. Both arms train once per
seed, and a seed gives both the same initial weights and the same split, so the luck of a seed
cancels in their difference: the verdict is read from the gains seed by seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import PercentFormatter
from torch import nn

from . import plots
from .loaders import Loaders
from .recipe import Hyper, Run, train
from .results import paired_gain, within_spread
from .settings import Config
from .train import Callback


def regime(train_images: int, epochs: int) -> str:
    """A budget as a name: 2,250 training images x 30 epochs is "2250x30"."""
    return f"{train_images}x{epochs}"


def describe(name: str) -> str:
    """A regime's name in words: "2250x30" is "2,250 images x 30 epochs"."""
    images, epochs = (int(n) for n in name.split("x"))
    return f"{images:,} images × {epochs} epoch{'s' * (epochs != 1)}"


def arm_name(method: str, loaders: Loaders, epochs: int) -> str:
    """An arm's name: its method, then its regime (`simple_cnn_no_aug_2250x30`)."""
    return f"{method}_{regime(loaders.train_images, epochs)}"


def regime_of(name: str) -> str:
    """The regime an arm trained in, from its name: `mixup_2250x30` -> "2250x30"."""
    return name.rsplit("_", 1)[1]


def control_of(name: str, method: str, control: str) -> str:
    """The control of an arm: its name with the control's word in the method's place
    (`mixup_2250x30` -> `plain_2250x30`)."""
    if not name.startswith(f"{method}_"):
        raise ValueError(f"{name!r} is not an arm of {method!r}: its name should start with {method}_")
    return control + name[len(method):]


def train_seeds(name: str, build: Callable[[int], nn.Module], loaders: Loaders, hyper: Hyper, cfg: Config,
                seeds: Sequence[int], callbacks: Callable[[], list[Callback]] = list,
                checkpoint: Path | None = None) -> list[Run]:
    """Train one arm once per seed: build(seed) gives its initial weights, hyper.seed becomes the
    seed (shuffling, augmentation), and callbacks() gives each run fresh callbacks.
    checkpoint: where the first seed's run keeps its best epoch (recipe.train)."""
    return [train(name, build(seed), loaders, replace(hyper, seed=seed), cfg, callbacks=callbacks(),
                  checkpoint=checkpoint if k == 0 else None) for k, seed in enumerate(seeds)]


@dataclass(frozen=True)
class Verdict:
    """An arm against its control: test top-1 gained, seed by seed (fractions)."""

    arm: str
    control: str
    gains: tuple[float, ...]
    mean: float  # of the gains (results.paired_gain)
    std: float

    @property
    def outcome(self) -> str:
        """"ahead" or "behind" where the mean gain is larger than the spread of the gains (their
        standard deviation: results.within_spread, the rule 06 judges by), "a tie" inside it; with
        one seed there is no spread to judge by."""
        if len(self.gains) < 2:
            return "one seed: no verdict"
        if self.mean == 0 or within_spread((self.mean, self.std), (0.0, 0.0)):
            return "a tie"
        return "ahead" if self.mean > 0 else "behind"

    def __str__(self) -> str:
        seeds = ", ".join(f"{100 * g:+.1f}" for g in self.gains)
        return (f"{self.arm} against {self.control}: {100 * self.mean:+.1f} ± {100 * self.std:.1f} points "
                f"(seed by seed {seeds}): {self.outcome}")


def verdict(records: Mapping[str, dict], arm: str, method: str, control: str) -> Verdict:
    """The verdict of arm against its control (control_of), from their records (results.over_seeds,
    by name): the same seeds in the same order, or a ValueError."""
    control_name = control_of(arm, method, control)
    if records[control_name]["seed_list"] != records[arm]["seed_list"]:
        raise ValueError(f"{arm} trained with seeds {records[arm]['seed_list']} and {control_name} with "
                         f"{records[control_name]['seed_list']}: paired seeds need the same seeds in both arms.")
    before, after = records[control_name]["test_top1_per_seed"], records[arm]["test_top1_per_seed"]
    return Verdict(arm, control_name, tuple(b - a for a, b in zip(before, after)), *paired_gain(before, after))


def paired(records: Mapping[str, dict]) -> list[Verdict]:
    """The verdict of every arm whose record names its control (a "control" key, as the notebooks
    write it) against that control, in the order of the records: what a report pairs."""
    found = []
    for name, record in records.items():
        control = record.get("control")
        if control in records:
            suffix = f"_{regime_of(name)}"
            found.append(verdict(records, name, name.removesuffix(suffix), control.removesuffix(suffix)))
    return found


def plot(records: dict[str, dict], arms: dict[str, str], regime_names: Sequence[str], title: str = "", ax=None):
    """Each arm's test top-1 in each regime: a dot per seed, the mean with its standard deviation.

    records: results.over_seeds's entries by name (`<arm>_<regime>`; an arm may miss a regime);
    arms: arm -> its label, the control first; regime_names: regimes.regime names, one group of arms each, left to right.
    The y-axis spans the data, not 0 to 1, so that a point's difference can be seen.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2 + 2.0 * len(regime_names), 3.8))
    width = 0.8 / len(arms)
    first = {arm: next(f"{arm}_{r}" for r in regime_names if f"{arm}_{r}" in records) for arm in arms}
    for j, (arm, label) in enumerate(arms.items()):
        for i, regime in enumerate(regime_names):
            r = records.get(f"{arm}_{regime}")
            if r is None:  # an arm tried in some regimes only
                continue
            x = i + (j - (len(arms) - 1) / 2) * width
            seeds = r.get("test_top1_per_seed", [r["test_top1"]])
            ax.scatter([x] * len(seeds), seeds, color=f"C{j}", alpha=0.45, s=14, zorder=2)
            ax.errorbar(x, r["test_top1"], yerr=r.get("test_top1_std", 0.0), color=f"C{j}", marker="osD^vP"[j % 6],
                        markersize=7, capsize=4, zorder=3, label=label if f"{arm}_{regime}" == first[arm] else None)
    ax.set_xticks(range(len(regime_names)), [describe(name).replace(" × ", "\n× ") for name in regime_names])
    ax.set_xlim(-0.6, len(regime_names) - 0.4)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set(ylabel="test top-1\n(dots: seeds; mean ± std)", title=title)
    ax.grid(axis="y", alpha=0.3)
    plots.legend_beside(ax, fontsize=8)
    return ax
