"""Top-k accuracy, the confusion matrix, per-class accuracy and calibration against hand counts."""

import math

import numpy as np
import pytest
import torch

from cifar_utils import metrics


def test_topk_against_a_hand_count():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    top1, top2 = metrics.topk_correct(logits, labels, (1, 2))
    assert top1.item() == 1  # only the first row's best guess is right
    assert top2.item() == 2  # row 2: label 2 is second best; row 3: label 0 is last


def test_tied_scores_rank_in_class_order_so_top1_agrees_with_the_confusion_matrix():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 1.0, 1.0]])
    labels = torch.tensor([1, 0, 3])  # the first of the tied best classes, twice; the last of three ties
    top1, top2 = metrics.topk_correct(logits, labels, (1, 2))
    assert top1.item() == 2 and top2.item() == 2  # row 3's label ranks third among its ties
    cm = metrics.confusion_matrix(logits.argmax(1), labels, 4)
    assert cm.trace() == top1.item()
    tied = torch.randint(0, 3, (1000, 10)).float()  # bf16 scores tie this often only near chance, but they do
    labels = torch.randint(0, 10, (1000,))
    assert metrics.topk_correct(tied, labels, (1,))[0].item() == (tied.argmax(1) == labels).sum().item()


def test_topk_larger_than_the_class_count_counts_everything():
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    assert metrics.topk_correct(logits, labels, (5,))[0].item() == 5


def test_confusion_matrix_and_per_class_accuracy():
    cm = metrics.confusion_matrix(np.array([0, 1, 1, 2, 0]), np.array([0, 1, 2, 2, 1]), 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert np.allclose(metrics.per_class_accuracy(cm), [1.0, 0.5, 0.5])


def test_evaluate_matches_a_direct_computation():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 4)
    x, y = torch.randn(30, 6), torch.randint(0, 4, (30,))
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 30, 8)]
    out = metrics.evaluate(model, batches, torch.device("cpu"))
    with torch.no_grad():
        logits = model(x)
    assert np.isclose(out["loss"], torch.nn.functional.cross_entropy(logits, y).item(), rtol=1e-5)
    assert out["top1"] == (logits.argmax(1) == y).sum().item() / 30


def test_flip_tta_scores_the_mean_of_the_two_logits():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x, y = torch.randn(6, 3, 4, 4), torch.randint(0, 5, (6,))
    expected = (model(x) + model(x.flip(3))) / 2
    logits, labels = metrics.predict(model, [(x, y)], torch.device("cpu"), flip_tta=True)
    assert torch.allclose(logits, expected, atol=1e-6) and torch.equal(labels, y)
    out = metrics.evaluate(model, [(x, y)], torch.device("cpu"), flip_tta=True)
    assert out["top1"] == (expected.argmax(1) == y).sum().item() / len(y)


def test_most_confused_ranks_mistakes_by_their_share_of_the_true_class():
    cm = np.array([[8, 2, 0], [1, 4, 5], [0, 0, 10]])  # b is taken for c half the time
    assert metrics.most_confused(cm, ["a", "b", "c"], top=2) == [("b", "c", 0.5), ("a", "b", 0.2)]
    summary = metrics.error_summary(cm, ["a", "b", "c"])
    assert "b as c 50%, a as b 20%, b as a 10%" in summary
    assert summary.endswith("worst to best: b 40%, a 80%, c 100%")


def test_error_summary_keeps_a_hundred_classes_readable():
    cm = np.diag(np.arange(1, 101)) + 1  # class i right i+1 times out of i+100
    lines = metrics.error_summary(cm, [f"c{i}" for i in range(100)]).splitlines()
    ranked = lines[1].split(": ")[1].split(", ")
    assert ranked[:2] == ["c0 2%", "c1 3%"] and ranked[5] == "..." and len(ranked) == 11


def test_calibration_error_matches_a_hand_computation():
    # four images: two at 95% confidence (one right), two at 65% (both right)
    p95, p65 = math.log(0.95 / 0.05), math.log(0.65 / 0.35)  # two-class logits with these probabilities
    logits = torch.tensor([[p95, 0.0], [p95, 0.0], [p65, 0.0], [p65, 0.0]])
    labels = torch.tensor([0, 1, 0, 0])
    c = metrics.calibration(logits, labels, bins=10)
    # bin 9: confidence 0.95, accuracy 0.5, half the images; bin 6: confidence 0.65, accuracy 1.0, half
    assert c["ece"] == pytest.approx(0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.65))
    assert c["counts"].tolist() == [0, 0, 0, 0, 0, 0, 2, 0, 0, 2]
    assert c["accuracy"][9] == 0.5 and c["confidence"][6] == pytest.approx(0.65)


def test_a_model_right_as_often_as_it_is_confident_has_no_calibration_error():
    torch.manual_seed(0)
    logits = torch.randn(20000, 10) * 3
    probs = logits.softmax(1)
    labels = torch.multinomial(probs, 1).squeeze(1)  # labels drawn from the model's own beliefs
    assert metrics.calibration(logits, labels)["ece"] < 0.02
    assert metrics.calibration(logits * 3, labels)["ece"] > 0.1  # the same model made over-confident
