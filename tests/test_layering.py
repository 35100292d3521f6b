"""The packages' layering: the lesson library's modules import only modules below them, and the
tooling (cifar_course) sits on top, where nothing of the lesson library reaches up to it."""

import ast
from pathlib import Path

import cifar_course
import cifar_utils

LIBRARY = Path(cifar_utils.__file__).parent
TOOLING = Path(cifar_course.__file__).parent
# bottom to top; the order __init__'s docstring explains
LAYERS = ["settings", "images", "photo", "folders", "data", "tensor_loader", "loaders", "models", "checkpoints", "metrics",
          "precision", "train", "callbacks", "losses", "cost", "lr_finder", "explain", "export", "recipe", "transfer", "challenge", "results", "plots",
          "regimes", "findings", "speedrun"]
SHIM = LIBRARY / "course" / "__main__.py"  # `python -m cifar_utils.course`, forwarding for one release


def imported(path: Path) -> set[str]:
    """The dotted names of the modules a file imports (relative imports made absolute)."""
    package = ".".join(path.parent.relative_to(LIBRARY.parent).parts)  # e.g. "cifar_utils", "cifar_course"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found.update(".".join([*base, name]) for name in names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def library_modules_imported(path: Path) -> set[str]:
    return {name.removeprefix("cifar_utils.") for name in imported(path) if name.removeprefix("cifar_utils.") in LAYERS}


def test_every_lesson_module_is_placed_in_a_layer():
    modules = {p.stem for p in LIBRARY.glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS)


def test_no_lesson_module_imports_one_above_it():
    for name in LAYERS:
        for below in library_modules_imported(LIBRARY / f"{name}.py"):
            assert LAYERS.index(below) < LAYERS.index(name), f"{name} imports {below}, above it"


def test_the_lesson_library_holds_no_tooling_and_never_imports_it():
    for path in LIBRARY.rglob("*.py"):
        if path == SHIM:
            continue
        reaching_up = {name for name in imported(path) if name.split(".")[0] == "cifar_course"}
        assert not reaching_up, f"{path.relative_to(LIBRARY)} imports {reaching_up}"
    assert {p.name for p in (LIBRARY / "course").iterdir() if p.suffix == ".py"} == {"__init__.py", "__main__.py"}


def test_no_module_of_either_package_is_longer_than_one_can_read_at_once():
    for path in [*LIBRARY.rglob("*.py"), *TOOLING.glob("*.py")]:
        lines = len(path.read_text().splitlines())
        assert lines <= 450, f"{path.name} has {lines} lines"
