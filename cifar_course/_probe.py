"""The grader's hidden questions, asked in a sandbox of their own: `python _probe.py` in a folder
that holds cases.pt and one <exercise>.py per exercise (its graded source: the solution cell
after the notebook's import lines). Nothing else of the submission runs here. Writes one
<exercise>.pt of answers per exercise, plain data that the grader reads (probes.read_answers)."""

import signal
from pathlib import Path

import torch

from cifar_course.probes import call


def answer_all(folder: Path, case_seconds: int = 20) -> None:
    """In the probe run's sandbox: for each exercise, run its graded source in a namespace of its
    own and answer the grader's cases with the functions it defined, into <exercise>.pt. A case
    that runs past `case_seconds` is answered with the error, and so are the exercise's next ones."""
    def too_long(*_):
        raise TimeoutError(f"it ran past {case_seconds} s")
    signal.signal(signal.SIGALRM, too_long)
    for exercise, cases in torch.load(folder / "cases.pt", weights_only=True).items():
        namespace: dict = {}
        failed = ""
        signal.alarm(case_seconds)
        try:
            exec(compile((folder / f"{exercise}.py").read_text(), f"{exercise} (your solution cell)", "exec"), namespace)
        except BaseException as err:  # the student's cell, run alone: whatever it raises is its answer
            failed = f"your solution cell raised {type(err).__name__}: {err}"[:300]
        finally:
            signal.alarm(0)
        answers = []
        for name, arguments in cases:
            function = namespace.get(name)
            if failed or not callable(function):
                answers.append({"error": failed or f"the solution cell defines no function {name}() of its own"})
                continue
            signal.alarm(case_seconds)
            try:
                answers.append(call(function, arguments))
            except BaseException as err:  # the alarm, outside call()'s own net
                answers.append({"error": f"{type(err).__name__}: {err}"[:300]})
            finally:
                signal.alarm(0)
            if answers[-1].get("error", "").startswith("TimeoutError"):  # the next inputs would wait as long
                failed = f"{answers[-1]['error']} on an earlier input"
        torch.save(answers, folder / f"{exercise}.pt")


if __name__ == "__main__":
    answer_all(Path.cwd())
