"""Arms against their controls in regimes, over paired seeds: names, training, verdicts, the
sentence and the figure."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.collections import PathCollection

from cifar_utils import data, findings, loaders, losses, models, recipe, regimes, settings

CPU = torch.device("cpu")


def record(per_seed, seeds=None, train_top1=0.99, val_top1=0.5):
    return {"test_top1_per_seed": per_seed, "seed_list": seeds or list(range(len(per_seed))),
            "test_top1": sum(per_seed) / len(per_seed), "test_top1_std": 0.01,
            "history": [{"train_top1": train_top1, "val_top1": val_top1}]}


def test_an_arm_finds_its_control_by_swapping_the_methods_word_for_the_controls():
    assert regimes.control_of("mixup_2250x30", "mixup", "plain") == "plain_2250x30"
    assert regimes.control_of("simple_cnn_2250x30", "simple_cnn", "simple_cnn_no_aug") == "simple_cnn_no_aug_2250x30"
    assert regimes.control_of("freeze_then_unfreeze_500", "freeze_then_unfreeze", "full_fine_tune") == "full_fine_tune_500"
    with pytest.raises(ValueError, match="not an arm of 'cutmix'"):
        regimes.control_of("mixup_2250x30", "cutmix", "plain")
    assert regimes.describe("45000x2") == "45,000 images × 2 epochs"
    assert regimes.describe("500x1") == "500 images × 1 epoch"


def test_the_verdict_reads_the_gains_seed_by_seed_and_calls_a_gain_inside_their_spread_a_tie():
    records = {"plain_2250x30": record([0.55, 0.58, 0.56]), "mixup_2250x30": record([0.60, 0.62, 0.61]),
               "cutmix_2250x30": record([0.57, 0.57, 0.56]), "ls_2250x30": record([0.50, 0.55, 0.52])}
    ahead = regimes.verdict(records, "mixup_2250x30", "mixup", "plain")
    assert ahead.control == "plain_2250x30"
    assert ahead.gains == pytest.approx((0.05, 0.04, 0.05))
    assert ahead.mean == pytest.approx(0.14 / 3) and ahead.outcome == "ahead"
    tie = regimes.verdict(records, "cutmix_2250x30", "cutmix", "plain")  # +2, -1, 0: the spread covers the mean
    assert tie.outcome == "a tie"
    assert regimes.verdict(records, "ls_2250x30", "ls", "plain").outcome == "behind"
    assert "+4.7 ± 0.6 points (seed by seed +5.0, +4.0, +5.0): ahead" in str(ahead)

    one = {"plain_500x3": record([0.5]), "mixup_500x3": record([0.6])}
    assert regimes.verdict(one, "mixup_500x3", "mixup", "plain").outcome == "one seed: no verdict"
    unpaired = {"plain_500x3": record([0.5, 0.5], seeds=[0, 1]), "mixup_500x3": record([0.6, 0.6], seeds=[1, 2])}
    with pytest.raises(ValueError, match="paired seeds"):
        regimes.verdict(unpaired, "mixup_500x3", "mixup", "plain")


def test_where_it_pays_names_the_regimes_it_paid_in_from_the_verdicts():
    records = {"plain_2250x30": record([0.52, 0.51, 0.53], train_top1=0.995, val_top1=0.50),
               "mixup_2250x30": record([0.57, 0.56, 0.57]),
               "plain_45000x2": record([0.68, 0.67, 0.69], train_top1=0.64, val_top1=0.68),
               "mixup_45000x2": record([0.62, 0.63, 0.62])}
    verdicts = [regimes.verdict(records, f"mixup_{r}", "mixup", "plain") for r in ("2250x30", "45000x2")]
    sentence = findings.where_it_pays("MixUp", verdicts, records)
    assert sentence.startswith("MixUp: on 2,250 images × 30 epochs +4.7 ± 0.6 points, ahead (last epoch, train "
                               "against validation top-1: the control 100% against 50%, the arm 99% against 50%); on "
                               "45,000 images × 2 epochs -5.7 ± 1.5 points, behind")
    assert sentence.endswith("so it paid on 2,250 images × 30 epochs, where each image came back often enough for the "
                             "network to learn it by heart, and not on 45,000 images × 2 epochs.")
    records["mixup_2250x30"] = record([0.52, 0.52, 0.52])
    verdicts[0] = regimes.verdict(records, "mixup_2250x30", "mixup", "plain")
    assert findings.where_it_pays("MixUp", verdicts, records).endswith(
        "it paid in neither regime beyond the spread of the seeds.")


def test_an_arm_trains_once_per_seed_each_seed_with_fresh_callbacks_and_the_first_keeping_its_checkpoint(tmp_path):
    cfg = settings.resolve(profile="smoke", device="cpu", compute_format="", progress="off")
    cifar = data.load("cifar10", "sample")
    splits = data.split(cifar, 0.1, seed=0, train_size=300, test_size=100)
    batches = loaders.make_loaders(data.Splits(splits.train, splits.val, splits.test, data.fingerprint(cifar, cfg)),
                                   50, CPU, augment=False)
    built, made = [], []

    def build(seed):
        net = models.build("logistic_regression", 10, seed=seed)
        built.append((seed, net.linear.weight.detach().clone()))
        return net

    def fresh():
        made.append(losses.LabelSmoothing(0.1))
        return [made[-1]]

    name = regimes.arm_name("ls", batches, 1)
    assert name == "ls_270x1"
    runs = regimes.train_seeds(name, build, batches, recipe.Hyper(1, lr=0.01), cfg, [3, 4], fresh,
                               checkpoint=tmp_path / "first.pt")
    assert [run.hyper.seed for run in runs] == [3, 4] and [seed for seed, _ in built] == [3, 4]
    assert len(made) == 2 and made[0] is not made[1]  # one LabelSmoothing per run
    assert runs[0].checkpoint == tmp_path / "first.pt" and runs[1].checkpoint is None
    again = models.build("logistic_regression", 10, seed=3).linear.weight
    assert torch.equal(built[0][1], again)  # a seed is the same start for every arm: the pairing
    assert not torch.equal(built[0][1], built[1][1])


def test_the_regimes_figure_shows_every_seed_of_every_arm_on_an_axis_that_spans_the_data():
    records = {f"{arm}_{r}": record(seeds) for r, base in (("2250x30", 0.55), ("45000x2", 0.67))
               for arm, seeds in (("plain", [base, base + 0.01, base - 0.01]), ("mixup", [base + 0.04] * 3))}
    ax = regimes.plot(records, {"plain": "plain", "mixup": "MixUp"}, ["2250x30", "45000x2"])
    dots = [tuple(xy) for c in ax.collections if isinstance(c, PathCollection) for xy in c.get_offsets()]
    assert len(dots) == 12  # 2 arms x 2 regimes x 3 seeds
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2,250 images\n× 30 epochs", "45,000 images\n× 2 epochs"]
    low, high = ax.get_ylim()
    assert 0.4 < low < 0.54 and 0.71 < high < 0.8  # not from 0: a point's difference stays visible
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain", "MixUp"]


def test_a_report_pairs_every_arm_that_names_its_control():
    records = {"plain_2250x30": record([0.55, 0.58, 0.56]),
               "mixup_2250x30": {**record([0.60, 0.62, 0.61]), "control": "plain_2250x30"},
               "cutmix_2250x30": {**record([0.57, 0.57, 0.56]), "control": "plain_2250x30"},
               "cosine_9000x2": {**record([0.5, 0.5, 0.5]), "control": "plain_9000x2"}}  # its control is not here
    found = regimes.paired(records)
    assert [(v.arm, v.control, v.outcome) for v in found] == [("mixup_2250x30", "plain_2250x30", "ahead"),
                                                              ("cutmix_2250x30", "plain_2250x30", "a tie")]
