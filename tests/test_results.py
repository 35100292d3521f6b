"""The results JSON: written from a Run, read back, collected, and refused when incomplete."""

import dataclasses
import json
import sys

import nbformat
import numpy as np
import pytest
import torch

from cifar_utils import data, models, recipe, results, settings

HISTORY = [{"epoch": 1, "train_loss": 2.0, "train_top1": 0.2, "val_loss": 1.9, "val_top1": 0.25,
            "seconds": 1.25}, {"epoch": 2, "train_loss": 1.5, "train_top1": 0.4, "val_loss": 1.6,
                               "val_top1": 0.38, "seconds": 1.0}]


def a_run():
    model = models.build("logistic_regression", 10)
    return recipe.Run("linear", model, HISTORY, {"loss": 1.6, "top1": 0.375, "top5": 0.8},
                      device=torch.device("cpu"), train_images=4500)


def test_a_run_becomes_a_record_with_its_budget_and_round_trips(tmp_path):
    cfg = settings.resolve(profile="smoke", results_dir=str(tmp_path))
    cifar = data.load("cifar10", "sample")
    record = results.run_record(a_run(), flops=12)
    assert {k: record[k] for k in results.RUN_KEYS} == {
        "name": "linear", "params": 3072 * 10 + 10, "epochs": 2, "train_images": 4500,
        "train_seconds": 2.25, "test_top1": 0.375, "test_top5": 0.8}
    assert record["flops"] == 12 and record["compute_format"] == "fp32,channels-first"
    assert [h["val_top1"] for h in record["history"]] == [0.25, 0.38]
    assert "checkpoint" not in record  # this run kept no weights; one that did says where
    assert results.run_record(dataclasses.replace(a_run(), checkpoint=tmp_path / "a.pt"))["checkpoint"] == str(tmp_path / "a.pt")
    path = results.write("99_test", cfg, cifar, [record], note="extra")
    back = results.read(path)
    assert back["notebook"] == "99_test" and back["data_source"] == "sample"
    assert back["profile"] == "smoke" and back["device"] == "cpu" and back["seed"] == 0
    assert back["runs"] == [record] and back["note"] == "extra"
    assert "bundled CIFAR-10 sample" in back["data_note"]
    assert results.collect(tmp_path, "cifar10", "smoke") == [{**record, "notebook": "99"}]
    assert results.collect(tmp_path, "cifar10", "laptop") == []


def test_incomplete_runs_and_percentages_are_refused(tmp_path):
    cfg = settings.resolve(profile="smoke", results_dir=str(tmp_path))
    cifar = data.load("cifar10", "sample")
    good = {"name": "m", "params": 1, "epochs": 1, "train_images": 10, "train_seconds": 1,
            "test_top1": 0.1, "test_top5": 0.9}
    with pytest.raises(ValueError, match="lacks \\['test_top5'\\]"):
        results.write("x", cfg, cifar, [{k: v for k, v in good.items() if k != "test_top5"}])
    with pytest.raises(ValueError, match="not a fraction"):
        results.write("x", cfg, cifar, [{**good, "test_top1": 41.0}])


def test_the_table_formats_fractions_as_percentages():
    html = results.table([results.run_record(a_run())], ["train_images", "test_top1"]).to_html()
    assert "37.5%" in html and "4,500" in html


def test_a_run_is_shown_beside_the_reference_of_its_profile(tmp_path, capsys):
    cfg = settings.resolve(profile="laptop", results_dir=tmp_path / "results")
    cifar = data.load("cifar10", "sample")
    mine = [{"name": "linear", "params": 1, "epochs": 5, "train_images": 4500, "train_seconds": 1.0,
             "test_top1": 0.4, "test_top5": 0.8}]
    reference = results.write("01_x", cfg, cifar, [{**mine[0], "test_top1": 0.38}, {**mine[0], "name": "other"}],
                              measured={"machine": "2 CPU cores", "data": "CIFAR-10 JPEG copy", "date": "2026-11-25"})
    (tmp_path / "laptop").mkdir()
    reference.rename(tmp_path / "laptop" / "01_x.json")
    frame = results.beside_reference("01_x", cfg, mine, tmp_path).data
    assert frame.loc["linear"].tolist() == [0.4, 0.38] and np.isnan(frame.loc["other", "this run"])
    printed = capsys.readouterr().out
    assert "reference, laptop profile: 2 CPU cores; CIFAR-10 JPEG copy; 2026-11-25" in printed
    assert "no reference for the full profile on cifar10 yet" in printed
    results.beside_reference("01_x", settings.resolve(profile="smoke"), mine, tmp_path)
    assert "no reference for the smoke profile on cifar10 yet" in capsys.readouterr().out


MEASURED = {"machine": "2 CPU cores", "data": "CIFAR-10 JPEG copy", "date": "2026-12-03"}
RUNS = [{"name": "simple_cnn", "params": 10, "epochs": 6, "train_images": 45000, "train_seconds": 82.31,
         "test_top1": 0.7262, "test_top5": 0.98}, {"name": "simple_cnn_no_aug", "params": 10, "epochs": 6,
                                                   "train_images": 45000, "train_seconds": 80.02, "test_top1": 0.7472,
                                                   "test_top5": 0.97}]


def test_a_run_that_is_the_reference_is_shown_as_the_reference_not_beside_itself(tmp_path, capsys):
    """The reference notebook of 02 printed 'this run 74.7%, laptop reference 74.8%' for one run: a
    run whose runs and numbers are the reference's own is the reference, and says so."""
    (tmp_path / "laptop").mkdir()
    record = {"notebook": "02_x", "dataset": "cifar10", "data_source": "folder", "profile": "laptop", "device": "cpu",
              "seed": 0, "runs": [{**r, "history": [{"epoch": 1}]} for r in RUNS]}
    (tmp_path / "laptop" / "02_x.json").write_text(json.dumps(results.as_reference(record, **MEASURED)))
    cfg = settings.resolve(profile="laptop", results_dir=tmp_path / "results")
    frame = results.beside_reference("02_x", cfg, [{**r, "history": [{"epoch": 1}]} for r in RUNS], tmp_path).data
    assert list(frame.columns) == ["this run = laptop reference"]
    assert frame["this run = laptop reference"].tolist() == [0.7262, 0.7472]
    assert "this run is the laptop profile's reference: 2 CPU cores; CIFAR-10 JPEG copy; 2026-12-03" in capsys.readouterr().out
    again = [RUNS[0], {**RUNS[1], "train_seconds": 80.5}]  # a run of the same numbers but for its time: another run
    frame = results.beside_reference("02_x", cfg, again, tmp_path).data
    assert list(frame.columns) == ["this run", "laptop reference"] and frame["this run"].tolist() == [0.7262, 0.7472]
    assert "reference, laptop profile: 2 CPU cores" in capsys.readouterr().out


def test_same_runs_needs_the_same_names_and_every_number_to_the_last_digit():
    assert results.same_runs(RUNS, [dict(r) for r in reversed(RUNS)])
    assert not results.same_runs(RUNS, RUNS[:1])
    assert not results.same_runs(RUNS, [RUNS[0], {**RUNS[1], "test_top1": 0.7473}])
    assert not results.same_runs(RUNS, [RUNS[0], {**RUNS[1], "name": "other"}])


def test_making_a_reference_redraws_its_closing_table_against_itself(tmp_path):
    """tools/make_reference.py: the executed notebook ran beside the reference before it; as the
    new reference its table shows it as the reference, with the same numbers as its JSON."""
    sys.path.insert(0, str(results.REFERENCE_DIR.parent.parent / "tools"))
    import make_reference

    cell = nbformat.v4.new_code_cell('results.beside_reference("02_x", cfg, records)', execution_count=7)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="reference, laptop profile: an older run\n")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), cell])
    record = results.as_reference({"notebook": "02_x", "dataset": "cifar10", "data_source": "folder",
                                   "profile": "laptop", "device": "cpu", "seed": 0, "runs": RUNS}, **MEASURED)
    make_reference.against_itself(notebook, record)
    stream, table = notebook.cells[1].outputs
    assert stream["text"].startswith("this run is the laptop profile's reference: 2 CPU cores; CIFAR-10 JPEG copy")
    assert table["execution_count"] == 7 and "this run = laptop reference" in table["data"]["text/html"]
    assert "72.6%" in table["data"]["text/html"] and "74.7%" in table["data"]["text/html"]
    assert "laptop reference</th>" not in table["data"]["text/html"].replace("this run = laptop reference", "")
    assert notebook.cells[0].outputs == []  # the other cells as they ran


def test_top5_is_left_out_of_a_table_where_it_cannot_be_below_100_percent():
    columns = ["classes", "test_top1", "test_top5"]
    assert results.informative(columns, 5) == ["classes", "test_top1"]
    assert results.informative(columns, 10) == columns


def test_the_shipped_references_are_results_files_that_say_where_they_came_from():
    files = sorted(results.REFERENCE_DIR.glob("*/[0-9][0-9]_*.json"))
    assert {p.parent.name for p in files} >= {"laptop"}
    for path in files:
        record = results.read(path)
        assert record["profile"] == path.parent.name and record["notebook"] == path.stem
        assert {"machine", "data", "date"} <= set(record["measured"])
    notebooks = {p.stem for p in (results.REFERENCE_DIR.parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert {p.stem for p in files} <= notebooks  # a reference of a notebook that no longer exists would mislead


def test_a_cross_validation_is_one_entry_with_each_fold_and_their_mean_and_sample_std():
    assert results.over_folds([0.30, 0.40, 0.35]) == {"folds": 3, "val_top1": [0.30, 0.40, 0.35],
                                                      "mean": pytest.approx(0.35), "std": pytest.approx(0.05)}


def test_an_arm_over_seeds_is_one_entry_with_mean_std_and_each_seed():
    runs = [a_run(), a_run(), a_run()]
    for run, top1, flip in zip(runs, (0.30, 0.40, 0.35), (0.32, 0.41, 0.39)):
        run.test = {"loss": 1.0, "top1": top1, "top5": top1 + 0.4}
        run.test_flip = {"loss": 1.0, "top1": flip, "top5": 0.9}
    record = results.over_seeds(runs, trick="none")
    assert record["seeds"] == 3 and record["trick"] == "none"
    assert record["test_top1"] == pytest.approx(0.35) and record["test_top5"] == pytest.approx(0.75)
    assert record["test_top1_std"] == pytest.approx(0.05)  # sample std of 0.30, 0.40, 0.35
    assert record["test_top1_per_seed"] == [0.30, 0.40, 0.35]
    assert record["test_top1_flip"] == pytest.approx((0.32 + 0.41 + 0.39) / 3)
    assert record["train_seconds"] == 2.25
    flipped = results.over_seeds(runs, flip=True, name="linear_flip_tta")
    assert flipped["name"] == "linear_flip_tta" and flipped["test_top5"] == pytest.approx(0.9)
    assert flipped["test_top1"] == flipped["test_top1_flip"] and flipped["test_top1_per_seed"] == [0.32, 0.41, 0.39]


def test_a_paired_gain_is_the_mean_and_spread_of_each_seeds_own_difference():
    gain, std = results.paired_gain([0.50, 0.55, 0.60], [0.54, 0.60, 0.62])  # +4, +5, +2 points
    assert gain == pytest.approx(0.11 / 3)
    assert std == pytest.approx(((0.04 - gain) ** 2 + (0.05 - gain) ** 2 + (0.02 - gain) ** 2) ** 0.5 / 2 ** 0.5)
    # the seeds' own spread (5 points either way) hides the gain; the spread of their gains does not
    assert results.within_spread(results.mean_std([0.50, 0.55, 0.60]), results.mean_std([0.54, 0.60, 0.62]))
    assert not results.within_spread((gain, std), (0.0, 0.0))
    with pytest.raises(ValueError):
        results.paired_gain([0.5, 0.6], [0.5])  # an arm that lost a seed is not paired


def test_within_spread_compares_a_difference_with_the_deviations_added():
    assert results.within_spread((0.50, 0.01), (0.52, 0.015))  # 2 points apart, 2.5 of spread
    assert not results.within_spread((0.50, 0.005), (0.52, 0.01))
    assert not results.within_spread((0.50, 0.0), (0.51, 0.0))  # single seeds: no spread to hide in
    assert results.mean_std([0.4]) == (0.4, 0.0)


def test_a_run_scored_with_flip_tta_records_it_beside_the_plain_score():
    torch.manual_seed(0)
    run = a_run()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    flip = run.score_with_flip([(x, y)])
    with torch.no_grad():
        expected = (run.model(x) + run.model(x.flip(3))) / 2
    assert flip["top1"] == (expected.argmax(1) == y).float().mean().item()
    assert results.run_record(run)["test_top1_flip"] == flip["top1"]
    assert "with flip TTA" in run.summary()
    assert "test_top1_flip" not in results.run_record(a_run())


@pytest.mark.parametrize("key,value,expected", [
    ("test_top1", 0.4567, "45.7%"), ("test_top1_std", 0.0123, "1.2%"), ("vs_plain_points", 1.25, "+1.2"),
    ("onnx_max_abs_diff", 4.8e-07, "4.8e-07"), ("ece", 0.0456, "0.046"), ("flops", 35_000_000, "35.0 M"),
    ("cpu_latency_ms", 1.234, "1.23"), ("size_mb", 2.3456, "2.35"), ("train_seconds", 12.34, "12.3"),
    ("params", 1234567, "1,234,567"), ("train_images", 45000, "45,000"), ("compute_format", "fp32,channels-last",
                                                                           "fp32,channels-last"),
    ("pretrained_from", None, "–"), ("epochs", 3, "3")])
def test_every_number_reads_by_what_its_key_says_it_is(key, value, expected):
    assert results.shown(key, value) == expected


def test_takeaways_are_said_and_written_and_the_report_leads_with_them(tmp_path, capsys):
    from cifar_course import report

    cfg = settings.resolve(profile="smoke", results_dir=str(tmp_path))
    lessons = results.Takeaways()
    assert lessons.say("SimpleCNN reached 45.0%, logistic regression 35.0%.") is None  # no second copy as a cell's value
    assert capsys.readouterr().out == "SimpleCNN reached 45.0%, logistic regression 35.0%.\n"
    results.write("02_x", cfg, data.load("cifar10", "sample"), [results.run_record(a_run())], takeaways=lessons)
    assert results.read(tmp_path / "02_x.json")["takeaways"] == ["SimpleCNN reached 45.0%, logistic regression 35.0%."]
    md = report.write(tmp_path)[0].read_text().splitlines()
    assert md[2] == "Data: cifar10 from sample."  # the data first
    found = md.index("## What each notebook found")
    assert md[found + 2:found + 5] == ["### 02_x", "", "- SimpleCNN reached 45.0%, logistic regression 35.0%."]
    assert md.index("## Every run") > found


def test_a_reference_that_predates_the_notebooks_arms_says_that_no_row_compares():
    ref = {"runs": [{"name": "simple_cnn", "test_top1": 0.726}],
           "measured": {"machine": "two cores", "data": "JPEG CIFAR-10", "date": "2026-12-03"}}
    lines, _ = results.reference_table([{"name": "simple_cnn_2250x30", "test_top1": 0.56}], {"laptop": ref}, "cifar10")
    assert any("predates this version of the notebook" in line for line in lines)
    lines, _ = results.reference_table([{"name": "simple_cnn", "test_top1": 0.73}], {"laptop": ref}, "cifar10")
    assert not any("predates" in line for line in lines)
