"""The notebooks' takeaways in words: each sentence carries the run's own numbers, and its verdict
turns with them (who is ahead, whether a gain stands out of the spread of the seeds)."""

import numpy as np
import pytest
import torch

from cifar_utils import findings, models, recipe


def a_run(name, top1, seconds=10.0, train_images=4500, epochs=3, logits=None, labels=None):
    history = [{"epoch": e, "train_top1": 0.5, "val_top1": 0.4 + 0.01 * e, "seconds": seconds / epochs}
               for e in range(1, epochs + 1)]
    return recipe.Run(name, models.build("logistic_regression", 10), history, {"top1": top1, "top5": 0.9},
                      torch.device("cpu"), train_images, test_logits=logits, test_labels=labels)


def test_seed_by_seed_says_each_gain_and_weighs_their_mean_against_their_spread():
    steady = findings.seed_by_seed([0.50, 0.55, 0.60], [0.54, 0.60, 0.62])  # +4, +5, +2 points
    assert steady == "seed by seed +4.0, +5.0, +2.0 points, +3.7 ± 1.5: larger than the spread of the seeds"
    noisy = findings.seed_by_seed([0.50, 0.55, 0.60], [0.56, 0.53, 0.61])  # +6, -2, +1: mean 1.7, std 4.0
    assert noisy.endswith("+1.7 ± 4.0: within the spread of the seeds")
    assert findings.seed_by_seed([0.5], [0.52]) == "+2.0 points (one seed: no spread measured)"
    with pytest.raises(ValueError):
        findings.seed_by_seed([0.5, 0.6], [0.5])  # an arm that lost a seed is not compared


def test_depth_says_which_network_is_ahead_by_how_much():
    resnet, cnn = a_run("resnet", 0.747, seconds=300.0), a_run("cnn", 0.668, seconds=30.0)
    ahead = findings.depth(resnet, cnn, "laptop")
    assert "On 4,500 images x 3 epochs (laptop profile)" in ahead and "the deeper network is 7.9 points ahead" in ahead
    assert "A ResNet18 epoch took 10x a SimpleCNN epoch" in ahead
    behind = findings.depth(a_run("resnet", 0.60), cnn, "smoke")
    assert "SimpleCNN is 6.8 points ahead: on this budget depth has not paid yet" in behind


def test_folds_report_mean_spread_and_range():
    sentence = findings.folds([0.38, 0.40, 0.42, 0.39, 0.41], 0.405)
    assert sentence.startswith("5-fold validation top-1 40.0% ± 1.6% (standard deviation), from 38.0% to 42.0%")
    assert "4.0 points between folds; the single split above gave 40.5%" in sentence


def test_the_fit_gap_verdict_turns_at_five_points():
    assert "limited by what it can express" in findings.fit_gap(0.42, 0.40)
    assert "fits its training images better than new ones" in findings.fit_gap(0.60, 0.40)


def test_best_and_worst_class_are_named():
    sentence = findings.against_chance(0.39, np.array([0.5, np.nan, 0.2, 0.7]), ["cat", "dog", "ship", "frog"])
    assert sentence == "Test top-1 39.0% against chance 25.0%; best class: frog (70%), worst: ship (20%)."


def test_the_small_network_explains_latency_only_when_it_fell_far_less_than_flops():
    big = {"test_top1": 0.677, "params": 11_000_000, "flops": 1_000_000_000, "cpu_latency_ms": 10.0,
           "train_images": 4500, "epochs": 3}
    slow_small = {"test_top1": 0.62, "params": 1_500_000, "flops": 60_000_000, "cpu_latency_ms": 8.0}
    quick_small = {**slow_small, "cpu_latency_ms": 0.9}
    assert "Latency fell far less than FLOPs" in findings.small_network(slow_small, big, "ImageNet")
    assert "Latency fell" not in findings.small_network(quick_small, big, "ImageNet")
    assert "14% of ResNet18's parameters, 6% of its FLOPs and 80% of its CPU latency" in findings.small_network(
        slow_small, big, "ImageNet")
    slower = {**slow_small, "cpu_latency_ms": 25.0}  # 05 offline: a CIFAR MobileNet against a quarter-width ResNet
    sentence = findings.small_network(slower, big, "ImageNet")
    assert "yet no faster at batch 1" in sentence and "fell" not in sentence


def test_distillation_reports_both_arms_and_the_seed_by_seed_verdict():
    alone = {"test_top1": 0.542, "test_top1_std": 0.029, "test_top1_per_seed": [0.517, 0.536, 0.573], "seeds": 3,
             "train_images": 4500}
    distilled = {"test_top1": 0.585, "test_top1_std": 0.018, "test_top1_per_seed": [0.565, 0.588, 0.601], "seeds": 3}
    sentence = findings.distillation(alone, distilled, 4.0, 0.9)
    assert sentence.startswith("Distillation changed the student's test top-1 by +4.3 points")
    assert "over 3 seeds, T=4.0, alpha=0.9" in sentence and sentence.endswith("larger than the spread of the seeds.")
    teacher = a_run("teacher", 0.747, train_images=45000)
    assert "a lead of 20.5 points, from 45,000 training images against the student's 4,500" in findings.teacher_lead(
        teacher, alone)


def test_rate_cuts_count_each_drop_of_the_schedule():
    assert findings.rate_cuts([0.1, 0.1, 0.01, 0.01, 0.001], 5) == "ReduceLROnPlateau cut the rate 2 times in 5 epochs."
    assert findings.rate_cuts([0.1, 0.1], 2) == "ReduceLROnPlateau cut the rate 0 times in 2 epochs."
    assert "1 time in" in findings.rate_cuts([0.1, 0.01], 2)


def test_calibration_and_confidence_verdicts_follow_the_numbers():
    assert findings.calibration(0.10, 0.03).endswith("label smoothing calibrated this run better.")
    assert "did not calibrate this run better" in findings.calibration(0.03, 0.10)
    labels = torch.tensor([0, 1, 2, 3])
    sure = torch.full((4, 10), -10.0)
    sure[:, 0] = 10.0  # certain of class 0 every time: right once in four
    assert findings.confidence(a_run("plain", 0.25, logits=sure, labels=labels), 0.7).endswith(
        "mean top probability 100.0% against accuracy 25.0%: over-confident")
    unsure = torch.zeros(4, 10)  # a tenth on every class, and right every time
    assert findings.confidence(a_run("plain", 1.0, logits=unsure, labels=labels), 0.9).endswith("under-confident")


def test_the_input_pipeline_sentence_compares_each_feed_with_the_next():
    rates = {"tutorial": 1000.0, "DataLoader": 1900.0, "tensor path": 3420.0, "ceiling": 3800.0}
    sentence = findings.input_pipeline(rates, 128, "cpu", 1, "bf16,channels-last")
    assert sentence == ("SimpleCNN training step on cpu, batch 128, 1 DataLoader worker. In bf16,channels-last, the tensor "
                        "path ran at 1.8× the DataLoader's rate and at 90% of the ceiling; through the DataLoader, the "
                        "format alone was worth 1.9×.")
    assert "4 DataLoader workers." in findings.input_pipeline(rates, 128, "cuda", 4, "bf16,channels-last")


def test_onnx_runtime_says_the_difference_and_which_runtime_is_faster():
    record = {"name": "resnet18", "onnx_max_abs_diff": 2.4e-6, "onnx_latency_ms": 2.0, "cpu_latency_ms": 5.0}
    assert findings.onnx_runtime(record) == ("resnet18: ONNX Runtime against PyTorch (fp32): largest difference 2.4e-06; "
                                             "batch 1 on the CPU 2.00 ms against 5.00 ms in PyTorch, 2.5× as fast")
    assert findings.onnx_runtime({**record, "onnx_latency_ms": 6.0}).endswith("6.00 ms against 5.00 ms in PyTorch, 1.2× slower")


def test_one_step_says_whether_the_loss_fell_against_what_the_slope_promised():
    fell = findings.one_step(2.4895, 2.0853, 0.01, 55.0)
    assert fell.startswith("Loss on this batch: 2.4895 before the step, 2.0853 after: down 0.4042, where the slope "
                           "promised 0.5500")
    assert "a rate above 0.045 would promise a drop larger than the whole loss" in fell and "took 0.01." in fell
    rose = findings.one_step(2.4895, 3.5380, 0.1, 55.0)  # the reference run's numbers at the old rate
    assert "after: up 1.0485, although the slope promised a drop of 5.5000: the step went past the valley" in rose


def test_width_says_how_much_faster_a_narrower_network_trained_against_its_flops():
    full, quarter = (64, 128, 256, 512), (16, 32, 64, 128)
    flops = {full: 1_111_000_000, quarter: 70_000_000}
    sentence = findings.width({full: 60.0, quarter: 300.0}, flops, "cpu")
    assert sentence.startswith(f"On cpu, a training step of the CIFAR ResNet18 at widths {quarter} ran at 5.0x the "
                               f"images per second of one at {full}, for 16x fewer FLOPs per image")
    assert "the time fell far less than the operations" in sentence
    assert findings.width({full: 60.0, quarter: 900.0}, flops, "cuda").endswith("fewer FLOPs per image.")


def test_time_used_compares_the_training_time_with_the_share_planned():
    over = findings.time_used(486.0, 592.0, 35, 35, 0.7)
    assert over == ("Training took 486 s for 35 epochs: 82% of the 592 s left when it began, against the 70% "
                    "planned: the plan, timed on a few steps, was optimistic by 17%.")
    assert findings.time_used(410.0, 592.0, 35, 35, 0.7).endswith("the plan, timed on a few steps, held.")
    stopped = findings.time_used(300.0, 592.0, 20, 35, 0.7)
    assert "for 20 epochs (stopped after 20 of the 35 epochs planned)" in stopped and "cautious by 28%" in stopped
    assert findings.time_used(300.0, 600.0, 3, 3, None) == ("Training took 300 s for 3 epochs: 50% of the 600 s left "
                                                            "when it began.")


def test_feature_damage_says_what_each_arm_left_of_the_features_epoch_by_epoch():
    probes = {"full_fine_tune": [{0: 0.60, 3: 0.45, 12: 0.40}, {0: 0.60, 3: 0.47, 12: 0.42}],
              "freeze_then_unfreeze": [{0: 0.60, 3: 0.60, 12: 0.62}, {0: 0.60, 3: 0.60, 12: 0.64}]}
    sentence = findings.feature_damage(probes, {"full_fine_tune": "fine-tune everything",
                                                "freeze_then_unfreeze": "freeze first"}, 450)
    assert sentence.startswith("A linear probe on the body's features, fitted on the 450 training images")
    assert "60.0% before fine-tuning; after epoch 3: fine-tune everything 46.0% ± 1.4% (-14.0 points)" in sentence
    assert "after epoch 12: fine-tune everything 41.0% ± 1.4% (-19.0 points), freeze first 63.0% ± 1.4% (+3.0 points)" in sentence
