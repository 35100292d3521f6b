"""The package's layering: each module imports only modules below it, and the tooling sits on top."""

import ast
from pathlib import Path

import cifar_utils

PACKAGE = Path(cifar_utils.__file__).parent
# bottom to top; the order __init__'s docstring explains
LAYERS = ["settings", "data", "tensor_loader", "loaders", "models", "checkpoints", "metrics", "train", "callbacks",
          "losses", "precision", "cost", "lr_finder", "explain", "export", "recipe", "transfer", "challenge", "results",
          "findings", "plots", "course._child", "course.report", "course.runner", "course.probes", "course.assignments",
          "course.leaderboard", "course.bench", "course.site", "course.demo", "course.__main__"]


def imported_modules(path: Path) -> set[str]:
    """The package modules a file imports, as names like 'data' or 'course.report'."""
    package = path.relative_to(PACKAGE).parent.parts  # () or ("course",)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            if node.module:
                found.add(".".join(target))
            else:
                found.update(".".join(target + [alias.name]) for alias in node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found.update(n.removeprefix("cifar_utils.") for n in names if n and n.startswith("cifar_utils."))
    return {name for name in found if name in LAYERS or name == "course"}


def test_every_module_is_placed_in_a_layer():
    modules = {p.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")
               for p in PACKAGE.rglob("*.py")} - {"__init__", "course.__init__"}
    assert modules == set(LAYERS)


def test_no_module_imports_one_above_it():
    for name in LAYERS:
        path = PACKAGE / (name.replace(".", "/") + ".py")
        for imported in imported_modules(path) - {"course"}:
            assert LAYERS.index(imported) < LAYERS.index(name), f"{name} imports {imported}, above it"


def test_the_course_modules_never_import_the_tooling():
    for name in LAYERS:
        if not name.startswith("course."):
            path = PACKAGE / (name + ".py")
            assert not {m for m in imported_modules(path) if m.startswith("course")}, name
