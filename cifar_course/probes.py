"""Hidden checks: the grader's own inputs for every exercise, answered in a sandbox of their own
and judged where no submission can reach.

A check cell runs in the student's kernel, so a submission can fool it: rebind the function it
compares with (`torch.allclose = lambda *a, **k: True`), edit `sys.modules`, answer the check's
visible inputs from a table, or leave a forged executed notebook behind. The grader therefore
also asks each exercise's function for its answers to inputs it chooses itself: the check's
visible inputs and hidden ones drawn from a seed the grader picks at grading time. It asks them
in a fresh sandbox that runs nothing of the submission but each exercise's graded source (its
solution cell, after the notebook's import lines; _probe.py), so no other
cell can define the function, patch what it calls or write the answers. That run saves what each
function returned as plain data; the grader reads it outside the sandbox
(`torch.load(weights_only=True)` runs no code) and compares it with what the course's own
solution returns for the same inputs (`expected`), in its own process, which never runs the
submission's code.

A probe's inputs are plain data too: tensors, numbers, strings, and descriptions of the objects
an exercise takes (a model with its weights, a residual block, a photo), which `build` turns
into those objects on either side. Where an exercise asks for a computation a layer could do
whole (a block's forward pass, SimpleCNN's), the grader's object refuses to run whole, so the
answer has to come from its parts.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cifar_utils.settings import seeded

from . import sandbox

MAX_ANSWER_BYTES = 50 * 2**20  # an answers file larger than this is not read


@dataclass(frozen=True)
class Probe:
    """How the grader asks one exercise: its functions' names and the inputs it draws."""

    draw: Callable[[np.random.Generator], list[tuple[str, list]]]  # (function, arguments) per case
    atol: float = 1e-5  # how far a float may be from the reference's (relative: 1e-4 besides)


# --- inputs, as data ---------------------------------------------------------------------------

def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32))


def _labels(rng: np.random.Generator, n: int, classes: int) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, classes, n)).long()


def _array(values: np.ndarray) -> dict:
    """A NumPy array, carried as a tensor (torch.load(weights_only=True) reads no NumPy)."""
    return {"object": "array", "values": torch.from_numpy(np.ascontiguousarray(values))}


def _model(name: str, classes: int, seed: int, whole: bool = True, weights: bool = True) -> dict:
    """A registered model with the weights `seed` draws; BatchNorm statistics drawn too, so that
    evaluation mode matters. whole=False: the model refuses model(x)."""
    from cifar_utils import models

    state = None
    if weights:
        net = models.build(name, classes, seed=seed)
        state = _with_statistics(net.state_dict(), seed)
    return {"object": "model", "name": name, "classes": classes, "state": state, "whole": whole}


def _block(c_in: int, c_out: int, stride: int, seed: int) -> dict:
    from cifar_utils.models import BasicBlock

    with seeded(seed):
        state = BasicBlock(c_in, c_out, stride).state_dict()
    return {"object": "block", "shape": [c_in, c_out, stride], "state": _with_statistics(state, seed), "whole": False}


def _with_statistics(state: dict, seed: int) -> dict:
    """The state with every BatchNorm's running statistics, scale and shift drawn at random."""
    rng = np.random.default_rng(seed)
    norms = {key.rpartition(".")[0] for key in state if key.endswith("running_mean")}
    drawn = {}
    for key, value in state.items():
        layer, _, field = key.rpartition(".")
        if layer in norms and field in ("running_mean", "bias"):
            value = _normal(rng, *value.shape, scale=0.3)
        elif layer in norms and field in ("running_var", "weight"):
            value = torch.from_numpy(rng.uniform(0.5, 2.0, value.shape).astype(np.float32))
        drawn[key] = value
    return drawn


def _photo(rng: np.random.Generator, height: int, width: int) -> dict:
    return {"object": "photo", "pixels": torch.from_numpy(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))}


# --- one probe per exercise: the visible check's inputs first, then hidden ones -----------------

def _channel_stats(rng):
    flat = np.zeros((2, 32, 32, 3), np.uint8)
    flat[..., 0], flat[1, ..., 2] = 255, 255
    drawn = [rng.integers(0, 256, (rng.integers(1, 20), rng.integers(4, 33), rng.integers(4, 33), 3),
                          dtype=np.uint8) for _ in range(3)]
    return [("channel_mean_std", [_array(images)]) for images in [flat, *drawn]]


def _cross_entropy(rng):
    cases = [[_normal(rng, 16, 10), _labels(rng, 16, 10)],
             [torch.tensor([[1000.0, 0.0], [0.0, 1000.0]]), torch.tensor([1, 1])]]
    for _ in range(3):
        n, k = int(rng.integers(1, 33)), int(rng.integers(2, 21))
        cases.append([_normal(rng, n, k, scale=float(rng.uniform(0.5, 20))), _labels(rng, n, k)])
    cases.append([_normal(rng, 4, 5, scale=400.0), _labels(rng, 4, 5)])  # exp() overflows unless shifted
    return [("cross_entropy", case) for case in cases]


def _topk(rng):
    z = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    cases = [[z, torch.tensor([1, 2, 0]), k] for k in (1, 2, 3)]
    for _ in range(4):
        n, c = int(rng.integers(5, 40)), int(rng.integers(3, 15))
        cases.append([_normal(rng, n, c), _labels(rng, n, c), int(rng.integers(1, c + 1))])
    return [("topk_accuracy", case) for case in cases]


def _conv_size(rng):
    visible = [(32, 3, 1, 1), (32, 2, 2, 0), (224, 7, 2, 3), (31, 3, 2, 1), (8, 3, 1, 0)]
    drawn = []
    for _ in range(6):
        kernel, stride, padding = int(rng.integers(1, 8)), int(rng.integers(1, 4)), int(rng.integers(0, 4))
        drawn.append((int(rng.integers(kernel, 300)), kernel, stride, padding))
    return [("conv_output_size", list(case)) for case in visible + drawn]


def _simple_cnn_forward(rng):
    seeds = rng.integers(0, 2**31, 3)
    return [("forward", [_model("simple_cnn", classes, int(seed), whole=False), _normal(rng, n, 3, 32, 32)])
            for seed, classes, n in zip(seeds, (10, int(rng.integers(2, 20)), 10), (3, 2, 4))]


def _residual(rng):
    shapes = [(8, 8, 1), (8, 16, 2), (int(rng.integers(2, 9)), int(rng.integers(2, 9)), int(rng.integers(1, 3)))]
    return [("residual_forward", [_block(c_in, c_out, stride, int(rng.integers(2**31))),
                                  _normal(rng, 2, c_in, 8, 8)]) for c_in, c_out, stride in shapes]


def _stem(rng):
    return [("last_stage_side", [n]) for n in [32, 64, 96, 224, *rng.integers(1, 600, 5).tolist()]]


def _freeze(rng):
    visible = [("resnet18", "fc"), ("mobilenet_v2", "classifier")]
    hidden = [("simple_cnn", "classifier"), ("simple_cnn", "features"), ("resnet18_cifar", "layer4"),
              ("resnet18", "layer3"), ("logistic_regression", "linear")]
    chosen = [hidden[i] for i in rng.choice(len(hidden), 3, replace=False)]
    return [("freeze_all_but", [_model(name, int(rng.integers(2, 20)), 0, weights=False), head])
            for name, head in visible + chosen]


def _rates(rng):
    drawn = [[float(rng.uniform(1e-4, 1.0)), float(rng.uniform(0.1, 1.0)), int(rng.integers(1, 9))] for _ in range(4)]
    return [("layerwise_rates", case) for case in [[0.1, 0.5, 4], *drawn]]


def _separable_flops(rng):
    visible = [[32, 64, 3, 16, 16], [96, 24, 5, 8, 8]]
    drawn = [[int(v) for v in (rng.integers(1, 200), rng.integers(1, 200), rng.choice([1, 3, 5, 7]),
                               rng.integers(1, 64), rng.integers(1, 64))] for _ in range(4)]
    return [("separable_flops", case) for case in visible + drawn]


def _params(rng):
    cases = [[32, 64, 3]] + [[int(v) for v in (rng.integers(1, 300), rng.integers(1, 300), rng.choice([1, 3, 5, 7]))]
                             for _ in range(4)]
    return [(function, case) for case in cases for function in ("standard_params", "separable_params")]


def _soften(rng):
    z = torch.tensor([[8.0, 2.0, 0.0]])
    cases = [[z, 1.0], [z, 4.0], [torch.tensor([[1000.0, 0.0]]), 1.0]]
    cases += [[_normal(rng, int(rng.integers(1, 9)), int(rng.integers(2, 12)), scale=5.0), float(rng.uniform(0.5, 10))]
              for _ in range(3)]
    cases.append([_normal(rng, 3, 4, scale=500.0), 1.0])
    return [("soften", case) for case in cases]


def _kd(rng):
    s, t, y = _normal(rng, 8, 10), _normal(rng, 8, 10), _labels(rng, 8, 10)
    cases = [[s, t, y, temp, alpha] for temp, alpha in [(1.0, 0.5), (4.0, 0.9), (2.0, 0.0)]]
    for _ in range(3):
        n, c = int(rng.integers(2, 17)), int(rng.integers(2, 12))
        cases.append([_normal(rng, n, c, scale=3.0), _normal(rng, n, c, scale=3.0), _labels(rng, n, c),
                      float(rng.uniform(1, 8)), float(rng.uniform(0, 1))])
    return [("kd_loss", case) for case in cases]


def _mixup(rng):
    x = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4), torch.full((3, 4, 4), 2.0)])
    cases = [[x, torch.eye(3), 0.7]]
    for _ in range(3):
        n, c = int(rng.integers(2, 9)), int(rng.integers(2, 11))
        cases.append([_normal(rng, n, 3, 8, 8), torch.nn.functional.one_hot(_labels(rng, n, c), c).float(),
                      float(rng.uniform(0, 1))])
    return [("mix_batch", case) for case in cases]


def _flip_tta(rng):
    return [("flip_tta_logits", [_model("simple_cnn", 10, int(seed)), _normal(rng, 4, 3, 32, 32)])
            for seed in [0, *rng.integers(1, 2**31, 2)]]


def _prepare(rng):
    wide = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))[..., None].repeat(3, 2)
    cases = [[{"object": "photo", "pixels": torch.from_numpy(wide)}, [0.5, 0.4, 0.3], [0.25, 0.2, 0.1]]]
    for _ in range(3):
        cases.append([_photo(rng, int(rng.integers(20, 300)), int(rng.integers(20, 300))),
                      rng.uniform(0.2, 0.6, 3).round(4).tolist(), rng.uniform(0.1, 0.3, 3).round(4).tolist()])
    return [("prepare", case) for case in cases]


def _threshold(rng):
    p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    y = torch.tensor([0, 1, 1, 0])
    cases = [[p, y, 0.0], [p, y, 0.65], [p, y, 0.95]]
    for threshold in (*rng.uniform(0.3, 0.9, 2).tolist(), 1.01):
        n, c = int(rng.integers(5, 50)), int(rng.integers(2, 11))
        cases.append([_normal(rng, n, c, scale=2.0).softmax(1), _labels(rng, n, c), float(threshold)])
    return [("kept_and_right", case) for case in cases]


PROBES: dict[str, Probe] = {
    "ex00_channel_stats": Probe(_channel_stats),
    "ex01_cross_entropy": Probe(_cross_entropy, atol=1e-4),
    "ex01_topk": Probe(_topk),
    "ex02_conv_size": Probe(_conv_size),
    "ex02_forward": Probe(_simple_cnn_forward, atol=1e-4),
    "ex03_residual": Probe(_residual, atol=1e-4),
    "ex03_stem": Probe(_stem),
    "ex04_freeze": Probe(_freeze),
    "ex04_rates": Probe(_rates, atol=1e-9),
    "ex05_flops": Probe(_separable_flops),
    "ex05_params": Probe(_params),
    "ex06_soften": Probe(_soften),
    "ex06_kd": Probe(_kd, atol=1e-4),
    "ex07_mixup": Probe(_mixup),
    "ex07_flip_tta": Probe(_flip_tta, atol=1e-4),
    "ex08_prepare": Probe(_prepare),
    "ex08_threshold": Probe(_threshold),
}


def draw(exercises: list[str], seed: int) -> dict[str, list]:
    """The cases of every exercise that has a probe, the hidden ones drawn from `seed`."""
    return {ex: PROBES[ex].draw(np.random.default_rng([seed, i])) for i, ex in enumerate(exercises) if ex in PROBES}


# --- both sides: from data to objects, and from answers to data ---------------------------------

class _Refused(RuntimeError):
    pass


def _refuse_whole(*_args, **_kwargs):
    raise _Refused("the grader's module cannot be called whole here: compute the answer from its layers")


def build(argument):
    """The object an input describes (anything else is passed as it is)."""
    if not isinstance(argument, dict) or "object" not in argument:
        return argument
    kind = argument["object"]
    if kind == "array":
        return argument["values"].numpy()
    if kind == "photo":
        from PIL import Image

        return Image.fromarray(argument["pixels"].numpy())
    from cifar_utils import models

    if kind == "block":
        module = models.BasicBlock(*argument["shape"])
    else:
        module = models.build(argument["name"], argument["classes"])
    if argument["state"] is not None:
        module.load_state_dict(argument["state"])
        module.eval()
    if not argument["whole"]:  # in its class, so that type(module).forward(module, x) refuses too
        module.__class__ = type(f"Refusing{type(module).__name__}", (type(module),), {"forward": _refuse_whole})
    return module


def as_data(value):
    """What a function returned, as plain data that torch.load(weights_only=True) reads back."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [as_data(v) for v in value]
    return {"unreadable": type(value).__name__}


def call(function: Callable, arguments: list) -> dict:
    """One case: the function's answer and what it left of its model arguments (which of
    their parameters still train), or the error it raised."""
    built = [build(a) for a in arguments]
    try:
        with torch.no_grad():
            value = as_data(function(*built))
    except Exception as err:  # the submission's mistake, recorded for its grade
        return {"error": f"{type(err).__name__}: {err}"[:300]}
    trains = [[p.requires_grad for p in a.parameters()] for a in built if isinstance(a, torch.nn.Module)]
    return {"value": value, "trains": trains}


def save_questions(cases: dict[str, list], sources: dict[str, str], folder: Path) -> None:
    """The grader's inputs (cases.pt) and each exercise's graded source (<exercise>.py), where the
    probe run reads them."""
    torch.save({ex: found for ex, found in cases.items() if ex in sources}, folder / "cases.pt")
    for exercise, source in sources.items():
        (folder / f"{exercise}.py").write_text(source)


# --- the grader's side --------------------------------------------------------------------------

REFERENCE_IMPORTS = ("import numpy as np\nimport torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
                     "from cifar_utils import data, loaders, models\n")


def expected(solution_source: str, cases: list) -> list[dict]:
    """The course solution's answers to `cases`: its solution cell run in the grader's process."""
    namespace: dict = {}
    exec(REFERENCE_IMPORTS + solution_source, namespace)  # the teacher's code, never a submission's
    answers = [call(namespace[name], arguments) for name, arguments in cases]
    failed = [a["error"] for a in answers if "error" in a]
    if failed:
        raise RuntimeError(f"the course solution fails its own probe: {failed[0]}")
    return answers


def read_answers(folder: Path, exercise: str) -> list[dict] | str:
    """The answers a submission saved for `exercise`, read as data only, or why there are none."""
    try:
        content = sandbox.read_back(folder / f"{exercise}.pt", MAX_ANSWER_BYTES)
    except FileNotFoundError:
        return "no answers were recorded (the solution cell stopped the run before they could be)"
    except sandbox.Untrusted as err:
        return f"its answers file was refused: {err}"
    try:
        return torch.load(io.BytesIO(content), weights_only=True)
    except Exception as err:  # anything but the plain data `answer` writes
        return f"its answers file is not the grader's plain data ({type(err).__name__})"


def differs(got, want, atol: float) -> str:
    """Why `got` is not `want` (the same nesting; numbers within atol), or ""."""
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"returned {_kind(got)} instead of {len(want)} values"
        return next((why for g, w in zip(got, want) if (why := differs(g, w, atol))), "")
    if isinstance(want, str):
        return "" if got == want else "returned another value"
    if isinstance(got, torch.Tensor) and got.numel() != torch.as_tensor(want).numel():  # before any copy: a view
        return f"returned shape {tuple(got.shape)} instead of {tuple(torch.as_tensor(want).shape)}"  # may be huge
    try:
        got_t = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return f"returned {_kind(got)} instead of a number or a tensor"
    want_t = torch.as_tensor(want, dtype=torch.float64)
    if got_t.numel() == want_t.numel() == 1:
        got_t, want_t = got_t.reshape(()), want_t.reshape(())
    if got_t.shape != want_t.shape:
        return f"returned shape {tuple(got_t.shape)} instead of {tuple(want_t.shape)}"
    exact = isinstance(want, (bool, int)) or (isinstance(want, torch.Tensor) and not want.is_floating_point())
    tolerance = {"atol": 0.0, "rtol": 0.0} if exact else {"atol": atol, "rtol": 1e-4}
    if torch.allclose(got_t, want_t, equal_nan=True, **tolerance):
        return ""
    gap = (got_t - want_t).abs().nan_to_num(math.inf).max().item()
    return f"differs from the reference by up to {gap:.3g}"


def _kind(value) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__


def judge(exercise: str, answers: list[dict] | str, reference: list[dict]) -> str:
    """"" if every answer matches the course solution's, else what went wrong (the first
    mismatch, without showing a hidden input)."""
    if isinstance(answers, str):
        return f"hidden check: {answers}"
    if not isinstance(answers, list) or len(answers) != len(reference):
        return "hidden check: the answers file does not hold one answer per input"
    atol = PROBES[exercise].atol
    wrong = [why for got, want in zip(answers, reference) if (why := _mismatch(got, want, atol))]
    if not wrong:
        return ""
    return (f"hidden check: {len(wrong)} of the grader's {len(reference)} inputs got another answer than the "
            f"course's solution (first: {wrong[0]})")


def _mismatch(got, want: dict, atol: float) -> str:
    if not isinstance(got, dict):
        return "an answer that is not the grader's record"
    if "error" in got:
        return f"raised {got['error']}"
    if got.get("trains") != want["trains"]:
        return "left other parameters trainable than the course's solution"
    return differs(got.get("value"), want["value"], atol)
