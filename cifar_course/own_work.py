"""Exercises that ask for an implementation, and what their solution cells may not call.

A check cell compares an answer with the library's own function, so a solution that calls that
function passes every check without teaching anything (`return F.cross_entropy(z, y)` for
"cross-entropy from the definition"). The grader reads each such solution cell's code before
it runs and gives it no points if it names what the exercise asks the student to write: the
library function, a layer or module called whole, or a way to reach a name indirectly
(`getattr`, `eval`, `type(m).forward`, pickle, a match pattern's attribute names). Each
exercise's text in the notebook says so. It is a list of what is refused, not a proof: Python
offers more ways to reach a function than any list names, so a teacher should still read
solutions that look too short.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# ways to reach a function without naming it, refused in every exercise below: builtins called by name
# (`x.type(...)` stays a tensor's method), and attributes and modules wherever they appear
INDIRECT_CALLS = ("getattr", "eval", "exec", "compile", "__import__", "globals", "locals", "vars", "type", "super")
INDIRECT = ("__dict__", "__getattribute__", "__class__", "__call__", "_call_impl", "__mro__", "__bases__",
            "__subclasses__", "__func__", "__self__", "__wrapped__", "__globals__", "__code__", "__reduce__",
            "attrgetter", "methodcaller", "import_module", "importlib", "operator", "sys", "inspect", "builtins",
            "__builtins__", "pickle", "pydoc", "marshal", "copyreg", "dill", "cloudpickle", "ctypes", "runpy",
            "_C", "ops", "_nn", "_VF")  # torch's own kernels under their internal names (torch._C._nn.cross_entropy_loss)


@dataclass(frozen=True)
class OwnWork:
    """What one exercise's solution cell may not use: `names` (the library's ready-made answer,
    refused in the notebook's import lines too), `modules` that hold it (refused in the cell: the
    notebook may import them for other cells), and calling its module argument whole (`whole`:
    the first argument; `parts`: these layers)."""

    names: tuple[str, ...]
    modules: tuple[str, ...] = ()
    whole: bool = False
    parts: tuple[str, ...] = ()

    def refused(self) -> str:
        """The sentence the notebook shows beside the exercise (tests keep the two the same)."""
        listed = ", ".join(f"`{n}`" for n in (*self.names, *self.modules))
        whole = ", calls the module it is given as a whole" if self.whole else ""
        return (f"*Write it yourself:* the grader gives no points to a solution that uses {listed}{whole} or "
                "reaches a name indirectly (`getattr`, `eval`, `type(...)` and the like).")


OWN_WORK = {
    "ex00_channel_stats": OwnWork(("channel_stats",)),
    "ex01_cross_entropy": OwnWork(("cross_entropy", "CrossEntropyLoss", "nll_loss", "NLLLoss", "log_softmax",
                                   "LogSoftmax")),
    "ex01_topk": OwnWork(("topk_correct",), modules=("metrics",)),
    "ex02_forward": OwnWork(("forward", "SimpleCNN"), whole=True, parts=("features", "classifier")),
    "ex03_residual": OwnWork(("forward", "BasicBlock"), whole=True),
    "ex06_soften": OwnWork(("softmax", "Softmax", "log_softmax", "softmin")),
    "ex06_kd": OwnWork(("distillation_loss", "Distillation"), modules=("losses",)),
    "ex07_flip_tta": OwnWork(("logits_of", "predict", "score_with_flip"), modules=("metrics",)),
}


def refusal(exercise: str, source: str, imports: str = "") -> str:
    """Why the solution cell `source` of `exercise` is refused, given the notebook's `imports`
    (its import lines, which the cell is graded with), or "" (also for an exercise that does not
    ask for an implementation, or code that does not parse: the run says what is wrong)."""
    rule = OWN_WORK.get(exercise)
    if rule is None:
        return ""
    try:
        tree, imported = ast.parse(source), ast.parse(imports)
    except SyntaxError:
        return ""
    called = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    found = sorted((_names_used(tree) & {*rule.names, *rule.modules, *INDIRECT}) | (called & set(INDIRECT_CALLS))
                   | (_names_used(imported) & set(rule.names)))  # the notebook may import modules for other cells
    if found:
        return (f"your solution uses {', '.join(found)}, which this exercise asks you not to: "
                "write it yourself (scored zero)")
    called = _modules_called_whole(tree, rule)
    if called:
        return f"your solution calls {called} as a whole, which this exercise asks you to write out (scored zero)"
    kept = _parts_not_indexed(tree, rule)
    if kept:
        return (f"your solution takes {kept} as a whole, where this exercise asks for its layers one by one "
                f"({kept}[0], ...) (scored zero)")
    return ""


def _names_used(tree: ast.AST) -> set[str]:
    """Every name, attribute and imported name the code holds, and every string that is one."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.update(node.name.split("."))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(node.module.split("."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _dotted(node.value.strip()):
            found.update(node.value.strip().split("."))  # getattr(F, "cross_entropy"); not a docstring's words
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):  # pickle's b"cmodule\nname\n"
            found.update(re.findall(r"[A-Za-z_]\w*", node.value.decode("latin-1")))
        elif isinstance(node, ast.MatchClass):  # case object(cross_entropy=ce): an attribute read by name
            found.update(node.kwd_attrs)
    return found


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _parts_not_indexed(tree: ast.AST, rule: OwnWork) -> str:
    """A layer group of `rule.parts` used otherwise than indexed (`f = model.features`), or ""."""
    indexed = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in rule.parts and id(node) not in indexed:
            return f".{node.attr}"
    return ""


def _modules_called_whole(tree: ast.AST, rule: OwnWork) -> str:
    """The first module argument (or layer of it in `rule.parts`) the code calls, or ""."""
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.args.args]
    modules = {f.args.args[0].arg for f in functions} if rule.whole else set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in modules:
            return f"{node.func.id}(...)"
        if isinstance(node.func, ast.Attribute) and node.func.attr in rule.parts:
            return f".{node.func.attr}(...)"
    return ""
