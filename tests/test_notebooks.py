"""The whole course run headless by the course runner (papermill) in the smoke profile.

nbval executes 00 and 01 once more, as committed (pyproject's testpaths; `python -m pytest
notebooks/` runs it on all eight).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import NOTEBOOK_DIR

from cifar_course.__main__ import main as course_main
from cifar_utils import checkpoints as ckpt
from cifar_utils import cost, data, findings, models, regimes, results, settings, speedrun

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
STABLE = ["PROFILE", "DATASET", "DATA_DIR", "DOWNLOAD", "DEVICE", "SEED", "EPOCHS", "BATCH_SIZE",
          "RESULTS_DIR"]

ARMS = {  # the runs each notebook records: one per arm it compares
    "00_data_exploration": [],
    "01_logistic_regression": ["logistic_regression"],
    "02_simple_cnn": ["logistic_regression", "simple_cnn_no_aug_270x3", "simple_cnn_270x3", "simple_cnn_no_aug_4500x2",
                      "simple_cnn_4500x2"],  # <arm>_<images>x<epochs>: two regimes (smoke: 270 x 3 and 4,500 x 2)
    "03_resnet18": ["resnet18_cifar_scratch", "simple_cnn_same_budget",  # offline: the course's own pretraining
                    "resnet18_cifar_course_pretrained_32px", "resnet18_cifar_random_init_32px"],
    "04_freeze_unfreeze": [f"{arm}_180x2" for arm in ("frozen", "frozen_random_init", "full_fine_tune", "freeze_then_unfreeze",
                                                      "freeze_then_unfreeze_layerwise")]
                          + [f"{arm}_135x3" for arm in ("frozen", "full_fine_tune", "lower_body_rate", "freeze_then_unfreeze")],
    "05_mobilenet": ["mobilenet_v3_small", "mobilenet_v2", "resnet18"],
    "06_distillation": ["teacher_resnet18_cifar_scratch", "student_alone", "student_distilled"],
    "07_training_tricks": [f"{arm}_{regime}" for arm in ("plain", "label_smoothing", "mixup", "cutmix")
                           for regime in ("270x2", "450x1")] + ["cosine_450x1", "plateau_450x1"],
    "08_deploy": ["deployable_fp32", "deployable_int8"],
    "09_challenge": ["challenge_simple_cnn"],
    "10_speedrun": ["speedrun"] + [idea.key for idea in speedrun.IDEAS],  # the record, then each step of the build-up
}


def test_every_notebook_declares_the_stable_parameters_and_has_no_outputs():
    assert NOTEBOOKS
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        assert "parameters" in first_code["metadata"].get("tags", []), notebook.name
        source = "".join(first_code["source"]).splitlines()
        assert [line.split("=")[0].strip() for line in source][: len(STABLE)] == STABLE
        assert "cfg = settings.from_parameters(globals())" in notebook.read_text(), notebook.name  # they resolve them all
        assert not any(c.get("outputs") or c.get("execution_count")
                       for c in cells if c["cell_type"] == "code"), notebook.name
    assert list(settings.STABLE_PARAMETERS) == STABLE


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ran_in_the_smoke_profile(notebook, smoke_course):
    record = results.read(smoke_course / f"{notebook.stem}.json")
    assert (smoke_course / notebook.name).is_file()  # the executed copy, beside its JSON
    assert record["notebook"] == notebook.stem
    assert (record["dataset"], record["data_source"], record["profile"]) == ("cifar10", "sample", "smoke")
    assert record["device"] == settings.resolve_device("auto").type and record["seed"] == 0  # DEVICE="auto" found it
    for run in record["runs"]:  # 09 hands in one class per image: no top-5
        top5 = 1.0 if notebook.stem.startswith("09") else run["test_top5"]
        assert 0.0 <= run["test_top1"] <= top5 <= 1.0, run
        if notebook.stem < "03":  # a few smoke steps of a ResNet need not beat chance; these must
            assert run["test_top1"] > 0.1, run
        assert run["epochs"] == len(run["history"])
        assert run["train_images"] > 0  # every run records its budget (06's teacher, scored only here, has 0 epochs)
    assert [run["name"] for run in record["runs"]] == ARMS[notebook.stem]


def test_03_compares_simple_cnn_with_the_resnet_on_the_resnets_budget(smoke_course):
    runs = {r["name"]: r for r in results.read(smoke_course / "03_resnet18.json")["runs"]}
    resnet, cnn = runs["resnet18_cifar_scratch"], runs["simple_cnn_same_budget"]
    assert (cnn["epochs"], cnn["train_images"]) == (resnet["epochs"], resnet["train_images"])
    assert cnn["same_budget_as"] == "resnet18_cifar_scratch"
    executed = (smoke_course / "03_resnet18.ipynb").read_text()
    assert f"On {resnet['train_images']:,} images x {resnet['epochs']} epochs (smoke profile)" in executed


# 01-08 close beside the reference of their profile; 09's budget is the clock, not epochs, and its
# comparison is the class's leaderboard
@pytest.mark.parametrize("notebook", [nb for nb in NOTEBOOKS if nb.stem[:2] not in ("00", "09")], ids=lambda p: p.stem)
def test_each_notebook_says_there_is_no_reference_for_the_smoke_profile(notebook, smoke_course):
    executed = (smoke_course / notebook.name).read_text()
    assert "no reference for the smoke profile on cifar10 yet" in executed


def test_07_compares_each_trick_with_the_plain_arm_of_its_regime_seed_by_seed(smoke_course):
    record = results.read(smoke_course / "07_training_tricks.json")
    runs = {r["name"]: r for r in record["runs"]}
    assert record["seeds"] == [0, 1] and all(r["seed_list"] == [0, 1] for r in runs.values())  # smoke: 2 per arm
    for r in runs.values():
        assert len(r["test_top1_per_seed"]) == 2 and r["test_top1"] == pytest.approx(sum(r["test_top1_per_seed"]) / 2)
        assert (r["epochs"], r["train_images"]) == tuple(int(n) for n in regimes.regime_of(r["name"]).split("x"))[::-1]
        assert 0 < r["test_top1_flip"] <= 1
    assert len({r["trick"] for r in runs.values()}) == 6  # plain and five tricks, each in words
    executed = (smoke_course / "07_training_tricks.ipynb").read_text()
    assert "mix_batch: correct" in executed and "flip_tta_logits: correct" in executed
    for name in runs:  # each arm against the plain arm of its regime, found by swapping one word
        method = name.rsplit("_", 1)[0]
        if method != "plain":
            assert str(regimes.verdict(runs, name, method, "plain")) in executed
    for method in ("Label smoothing", "MixUp", "CutMix"):  # where each regulariser paid, in both regimes
        [sentence] = [t for t in record["takeaways"] if t.startswith(f"{method}: on 270 images × 2 epochs")]
        assert "on 450 images × 1 epoch" in sentence


def test_02_shows_augmentation_in_two_regimes_against_its_control_seed_by_seed(smoke_course):
    record = results.read(smoke_course / "02_simple_cnn.json")
    runs = {r["name"]: r for r in record["runs"]}
    executed = (smoke_course / "02_simple_cnn.ipynb").read_text()
    for regime in ("270x3", "4500x2"):
        verdict = regimes.verdict(runs, f"simple_cnn_{regime}", "simple_cnn", "simple_cnn_no_aug")
        assert str(verdict) in executed and len(verdict.gains) == 2  # smoke: two paired seeds
        assert runs[f"simple_cnn_{regime}"]["augmentation"] and not runs[f"simple_cnn_no_aug_{regime}"]["augmentation"]
    assert any(t.startswith("Augmentation (random crop and flip): on 270 images × 3 epochs") for t in record["takeaways"])


def test_04_measures_what_the_first_epoch_did_to_the_features_and_pairs_each_arm_with_its_control(smoke_course):
    record = results.read(smoke_course / "04_freeze_unfreeze.json")
    runs = {r["name"]: r for r in record["runs"]}
    probed = {name: r["probe_top1_per_seed"] for name, r in runs.items() if "probe_top1_per_seed" in r}
    assert set(probed) == {"full_fine_tune_135x3", "lower_body_rate_135x3", "freeze_then_unfreeze_135x3"}
    before = {seed["0"] for seeds in probed.values() for seed in seeds}
    assert len(before) == 1  # one pretrained backbone: the same probe before every arm's first step
    assert all(seed["1"] == seed["0"] for seed in probed["freeze_then_unfreeze_135x3"])  # frozen for its first epoch
    executed = (smoke_course / "04_freeze_unfreeze.ipynb").read_text()
    for regime in ("135x3", "180x2"):
        assert str(regimes.verdict(runs, f"freeze_then_unfreeze_{regime}", "freeze_then_unfreeze", "full_fine_tune")) in executed
    assert str(regimes.verdict(runs, "lower_body_rate_135x3", "lower_body_rate", "full_fine_tune")) in executed
    assert any(t.startswith("A linear probe on the body's features") for t in record["takeaways"])


def test_10_runs_the_record_under_09s_rule_then_builds_it_up_idea_by_idea(smoke_course):
    record = results.read(smoke_course / "10_speedrun.json")
    record_run, *steps = record["runs"]
    assert record_run["seeds"] == 2 and record_run["within_budget"]  # smoke: two seeds, two minutes each
    assert record_run["test_top1"] == pytest.approx(sum(record_run["test_top1_per_seed"]) / 2)
    assert all(0 < s <= record_run["budget_seconds"] for s in record_run["run_seconds_per_seed"])
    assert [step["idea"] for step in steps] == [idea.name for idea in speedrun.IDEAS]
    assert all(step["seed_list"] == [0, 1] for step in steps)  # paired seeds, step against step
    assert steps[-1]["history"] == steps[-2]["history"]  # the views' step scores the step before's networks
    assert 0 < record["against_ceiling"]["share_of_ceiling"] and record["where_time_goes"]["forward and backward"] > 0
    saved = ckpt.load(smoke_course / "checkpoints" / "cifar10_speedrun.pt")
    assert saved.info.architecture["name"] == "speedrun_net"  # for 06's teacher and 08's deployment
    executed = (smoke_course / "10_speedrun.ipynb").read_text()
    assert "against SimpleCNN, the course's recipe: " in executed and "of the ceiling" in executed
    challenge = (smoke_course / "09_challenge.ipynb").read_text()  # 09 ran first: no bar yet
    assert "No speedrun has been run for cifar10 in the smoke profile here yet" in challenge


def test_01_records_its_fold_accuracies(smoke_course):
    kfold = results.read(smoke_course / "01_logistic_regression.json")["kfold"]
    assert kfold["folds"] == 5 == len(kfold["val_top1"])
    assert all(0.1 < v < 1 for v in kfold["val_top1"])  # each fold beats chance on real images
    assert min(kfold["val_top1"]) <= kfold["mean"] <= max(kfold["val_top1"]) and kfold["std"] > 0


def test_05_checks_each_exported_model_in_onnx_runtime(smoke_course):
    runs = [r for r in results.read(smoke_course / "05_mobilenet.json")["runs"] if "onnx_max_abs_diff" in r]
    assert [run["name"] for run in runs] == ["mobilenet_v3_small", "resnet18"]  # the smallest and the largest
    for run in runs:
        assert run["onnx_max_abs_diff"] < 1e-3, run["name"]
        assert run["onnx_latency_ms"] > 0 and run["cpu_latency_ms"] > 0
        exported = smoke_course / "onnx" / f"cifar10_{run['name']}.onnx"  # one file, the weights inside
        assert run["onnx_mb"] * 1e6 == pytest.approx(exported.stat().st_size, rel=0.01) and run["onnx_mb"] > 1


def test_03_shows_filters_feature_maps_and_grad_cam(smoke_course):
    """(The tests draw off-screen, so the figures are not in the executed copy; test_explain
    checks what they draw.)"""
    cells = json.loads((smoke_course / "03_resnet18.ipynb").read_text())["cells"]
    for call in ("plots.filters(", "plots.feature_maps(", "plots.grad_cam_right_and_wrong("):
        [cell] = [c for c in cells if call in "".join(c["source"])]
        assert cell["metadata"]["papermill"]["status"] == "completed", call
        assert not any(o["output_type"] == "error" for o in cell["outputs"]), call
    record = results.read(smoke_course / "03_resnet18.json")
    assert sum("test_top1_flip" in run for run in record["runs"]) == 1  # the best model's, beside its score


def test_simple_cnn_beats_logistic_regression_on_the_sample(smoke_course):
    record = results.read(smoke_course / "02_simple_cnn.json")
    top1 = {run["name"]: run["test_top1"] for run in record["runs"]}
    assert top1["simple_cnn_4500x2"] > top1["logistic_regression"] > 0.1  # every image, crop and flip
    assert (smoke_course / "checkpoints" / "cifar10_simple_cnn_4500x2.pt").is_file()  # the first seed's, for 08


def test_the_report_has_a_row_for_every_run(smoke_course):
    report = (smoke_course / "report.md").read_text()
    runs = [run for nb in NOTEBOOKS
            for run in results.read(smoke_course / f"{nb.stem}.json")["runs"]]
    table = [line for line in report.splitlines() if re.match(r"\| \d\d_", line)]  # a row per run, 00_ to 10_
    assert len(table) == len(runs) > 0
    judged = [run for run in runs if "control" in run]  # 02's, 04's and 07's arms: each against its control
    assert len(judged) == report.count("- Against its control: ") >= 10
    assert "- Against its control: mixup_270x2 against plain_270x2: " in report
    assert "bundled CIFAR-10 sample" in report
    assert "ImageNet weights were missing" in report
    page = (smoke_course / "report.html").read_text()
    assert page.count("<tr>") == len(runs) + 1 and "data:image/png;base64," in page


def test_offline_the_transfer_notebooks_use_the_courses_own_pretraining_and_say_so(smoke_course):
    """No ImageNet weights offline: 03, 04 and 05 transfer a backbone the course pretrained on the
    first half of the classes to the second half, never random weights presented as pretrained."""
    for stem in ("03_resnet18", "04_freeze_unfreeze", "05_mobilenet"):
        record = results.read(smoke_course / f"{stem}.json")
        assert record["pretrained_missing"] and record["pretrained_from"] == "course", stem
        assert "airplane, automobile, bird, cat, deer" in record["pretrained_weights"], stem
        transferred = [r for r in record["runs"] if r["name"] not in ("resnet18_cifar_scratch", "simple_cnn_same_budget")]
        assert transferred, stem
        for run in transferred:  # pretrained arms say so; the controls are named and recorded as random
            assert (run["pretrained_from"] == "course") == ("random_init" not in run["name"]), (stem, run["name"])
    checkpoints = sorted(p.name for p in (smoke_course / "checkpoints").glob("*pretrained_first_half.pt"))
    assert checkpoints == ["cifar10_mobilenet_v2_pretrained_first_half.pt",  # made once each, reused by 04
                           "cifar10_mobilenet_v3_small_pretrained_first_half.pt",
                           "cifar10_resnet18_cifar_pretrained_first_half.pt",
                           "cifar10_resnet18_pretrained_first_half.pt"]


def test_distillation_reuses_the_teacher_of_notebook_03_and_judges_the_gain_against_the_seeds(smoke_course):
    record = results.read(smoke_course / "06_distillation.json")
    assert "notebook 03's checkpoint" in record["teacher_origin"]
    teacher, alone, distilled = record["runs"]
    scratch = results.read(smoke_course / "03_resnet18.json")["runs"][0]
    assert teacher["params"] == scratch["params"] and teacher["epochs"] == 0
    assert record["seeds"] == [0, 1] and alone["seeds"] == distilled["seeds"] == 2  # smoke: two per arm
    assert alone["params"] * 3 < teacher["params"]  # half the width: about a quarter of the weights
    assert record["distillation_gain"] == pytest.approx(distilled["test_top1"] - alone["test_top1"])
    paired = results.paired_gain(alone["test_top1_per_seed"], distilled["test_top1_per_seed"])
    assert paired[0] == pytest.approx(record["distillation_gain"])
    executed = (smoke_course / "06_distillation.ipynb").read_text()
    assert findings.seed_by_seed(alone["test_top1_per_seed"], distilled["test_top1_per_seed"]) in executed


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_cifar100_is_accepted_and_labelled_as_a_stand_in_on_the_sample(tmp_path):
    status = course_main(["run", "--only", "01", "--profile", "smoke", "--dataset", "cifar100",
                          "--out", str(tmp_path), "--notebooks", str(NOTEBOOK_DIR)])
    record = results.read(tmp_path / "01_logistic_regression.json")
    assert status == 0 and record["dataset"] == "cifar100" and record["data_source"] == "sample"
    assert "no CIFAR-100 images" in record["data_note"]
    assert "no CIFAR-100 images" in (tmp_path / "report.md").read_text()


def without_timings(value):
    """A results JSON with every wall-clock figure left out: what must repeat exactly."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if "seconds" not in k and "images_per_s" not in k}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_the_same_seed_gives_the_same_numbers_on_a_busy_machine(tmp_path, monkeypatch):
    """Notebook 07 twice while two processes keep both cores busy: the numbers repeat exactly.

    07 trains six runs through the recipe, each in the format it picks for this hardware, with
    MixUp's and CutMix's random draws and flip TTA (one epoch, one seed: a minute, where 02
    took three on a 2-core CPU without bf16 units).

    One thread per run (both runs alike): two threads per kernel on two busy cores wait on each
    other at every operation, which makes a run 15 times slower without changing what it shows.
    """
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for name in ("first", "second"):
            assert course_main(["run", "--only", "07", "--profile", "smoke", "-p", "EPOCHS", "1",
                                "-p", "SEEDS", "1", "--out", str(tmp_path / name),
                                "--notebooks", str(NOTEBOOK_DIR)]) == 0
    finally:
        for process in busy:
            process.kill()
    first, second = (results.read(tmp_path / name / "07_training_tricks.json") for name in ("first", "second"))
    assert len(first["runs"]) == 10 and all(run["epochs"] == 1 for run in first["runs"])
    assert without_timings(first) == without_timings(second)
    seconds = [[run["train_seconds"] for run in record["runs"]] for record in (first, second)]
    assert seconds[0] != seconds[1]  # timings do move (ten runs' seconds, to the hundredth)


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_distillation_retrains_its_teacher_and_says_why_when_the_checkpoint_is_damaged(tmp_path):
    checkpoint = tmp_path / "checkpoints" / "cifar10_resnet18_cifar.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")  # what an interrupted torch.save used to leave behind
    assert course_main(["run", "--only", "06", "--profile", "smoke", "--out", str(tmp_path),
                        "--notebooks", str(NOTEBOOK_DIR)]) == 0
    record = results.read(tmp_path / "06_distillation.json")
    assert record["teacher_origin"].startswith(f"trained here ({checkpoint} is damaged")
    assert record["runs"][0]["name"] == "teacher_resnet18_cifar_scratch"
    assert ckpt.read(checkpoint)["name"] == "resnet18_cifar_scratch"  # the teacher trained here, kept for next time


def test_distillation_takes_the_strongest_checkpoint_of_the_course_as_its_teacher(tmp_path, smoke_course):
    """04's fine-tuned ResNet18 (planted: offline, 04 cannot load ImageNet weights) against 03's."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copy(smoke_course / "checkpoints" / "cifar10_resnet18_cifar.pt", checkpoints)
    fingerprint = data.fingerprint(data.load("cifar10", "sample"), settings.resolve(profile="smoke"))
    fine_tuned = models.Upsampled(models.build("resnet18", 10, seed=0), 64)
    ckpt.save(checkpoints / "cifar10_resnet18_finetuned_full_fine_tune.pt", fine_tuned,
              ckpt.Info("full_fine_tune", fingerprint, (0.5,) * 3, (0.25,) * 3, 450, epoch=2, scores={"val_top1": 0.99}))
    assert course_main(["run", "--only", "06", "--profile", "smoke", "--out", str(tmp_path),
                        "--notebooks", str(NOTEBOOK_DIR)]) == 0
    record = results.read(tmp_path / "06_distillation.json")
    assert record["teacher_origin"].startswith("notebook 04's checkpoint")
    teacher = record["runs"][0]
    assert teacher["name"] == "teacher_full_fine_tune" and teacher["epochs"] == 0
    assert teacher["params"] == cost.count_parameters(fine_tuned)
    executed = (tmp_path / "06_distillation.ipynb").read_text()
    assert "passed over: " + str(checkpoints / "cifar10_resnet18_cifar.pt") + " has val_top1" in executed


def test_tensorboard_holds_the_history_of_every_run_of_the_smoke_course(smoke_course):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for notebook in NOTEBOOKS:
        record = results.read(smoke_course / f"{notebook.stem}.json")
        for run in record["runs"]:
            if not run["epochs"] or run["name"].endswith("_flip_tta") or "networks_of" in run:
                continue  # a teacher loaded from its checkpoint; 07's plain runs and 10's last step scored again
            first_seed = sorted((smoke_course / "tensorboard" / notebook.stem / run["name"]).glob("seed*"))[0]
            events = EventAccumulator(str(first_seed)).Reload()
            logged = [(e.step, e.value) for e in events.Scalars("top1/val")]
            assert logged == [(h["epoch"], pytest.approx(h["val_top1"], abs=1e-4)) for h in run["history"]], run["name"]


def test_a_reference_keeps_each_executed_notebook_beside_its_json_saying_where_it_ran(smoke_course, tmp_path):
    sys.path.insert(0, str(NOTEBOOK_DIR.parent / "tools"))
    import make_reference

    assert make_reference.main([str(smoke_course), "--machine", "a test machine", "--data", "the bundled sample",
                                "--date", "2026-12-02", "--into", str(tmp_path)]) == 0
    for notebook in NOTEBOOKS:
        record = results.read(tmp_path / f"{notebook.stem}.json")
        assert record["measured"] == {"machine": "a test machine", "data": "the bundled sample", "date": "2026-12-02"}
        path = tmp_path / notebook.name
        assert path.stat().st_size < make_reference.MAX_BYTES
        cells = json.loads(path.read_text())["cells"]
        first = next(c for c in cells if c["cell_type"] == "code")
        assert "".join(first["outputs"][0]["text"]) == ("Reference run of the smoke profile: a test machine; the "
                                                        "bundled sample; 2026-12-02.\n")
        shown = json.dumps(cells)
        for run in record["runs"]:  # the notebook shows the numbers its JSON holds
            assert f"{run['test_top1']:.1%}" in shown, (notebook.stem, run["name"])


def test_a_reference_figure_is_shrunk_to_a_modest_width():
    sys.path.insert(0, str(NOTEBOOK_DIR.parent / "tools"))
    import base64
    import io

    import make_reference
    from PIL import Image

    wide = io.BytesIO()
    Image.new("RGB", (2400, 600), "white").save(wide, format="PNG")
    shrunk = Image.open(io.BytesIO(base64.b64decode(make_reference.shrink(base64.b64encode(wide.getvalue()).decode()))))
    assert shrunk.size == (make_reference.MAX_WIDTH, 225)


def test_08_deploys_the_courses_best_checkpoint_as_onnx_and_int8(smoke_course):
    record = results.read(smoke_course / "08_deploy.json")
    assert ".pt" in record["deployed"] and "validation top-1" in record["deployed"]  # a checkpoint of the course
    assert record["onnx_max_abs_diff"] < 1e-4 and record["onnx_same_class"] == 1.0
    fp32, int8 = record["runs"]
    assert int8["size_mb"] < 0.4 * fp32["size_mb"]
    assert record["int8_vs_fp32_points"] == pytest.approx(100 * (int8["test_top1"] - fp32["test_top1"]))
    for run in (fp32, int8):
        assert run["latency_ms_batch1"] > 0 and run["latency_ms_batch64"] > run["latency_ms_batch1"] / 4
    executed = (smoke_course / "08_deploy.ipynb").read_text()
    assert "prepare: correct" in executed
    for photo in ("cat.jpg", "cat_transparent.png", "camera_grey.png", "horse_silhouette.png"):
        assert photo in executed  # every photo of the course classified, whatever its format


def test_every_figure_of_the_smoke_course_reads_at_a_glance(smoke_course):
    """Each figure the notebooks showed, checked as it was drawn (tests/figure_check_backend.py)."""
    shown = [json.loads(line) for line in open(os.environ["FIGURE_CHECK_LOG"])]
    assert len(shown) >= 30  # the course's figures, not a log left empty
    unreadable = [f for f in shown if f["problems"]]
    assert not unreadable, unreadable[:5]
