"""The grader's child: run one submission with papermill, inside the sandbox.

Run as a script by path (`python _child.py ...`), not as `-m cifar_course...`: importing the
packages would load torch and matplotlib, seconds of start-up per submission for a process
that only drives papermill (the kernel it starts imports what the notebook needs). Its limits
(memory, processes, file size) were set before it started, by the sandbox's launcher.

    python _child.py SOURCE TARGET CELL_SECONDS [PARAMETERS_JSON [STOP_AT_ERROR]]

PARAMETERS_JSON: what papermill injects (default: the smoke profile, results in ./results).
STOP_AT_ERROR "1": stop at the first cell that fails (the challenge); else every cell runs, so
that each exercise's check has its say (the assignments).
"""

import json
import sys
from pathlib import Path

EXERCISE_PARAMETERS = '{"PROFILE": "smoke", "RESULTS_DIR": "results"}'


def main(source: str, target: str, cell_seconds: str, parameters: str = EXERCISE_PARAMETERS,
         stop_at_error: str = "0") -> None:
    import papermill

    try:
        papermill.execute_notebook(source, target, kernel_name="python3", parameters=json.loads(parameters),
                                   progress_bar=False, execution_timeout=float(cell_seconds),
                                   allow_errors=stop_at_error != "1", interrupt_on_timeout=True,
                                   cwd=str(Path(target).parent))
    except papermill.PapermillExecutionError:
        pass  # errors are the grader's to read from the executed notebook


if __name__ == "__main__":
    main(*sys.argv[1:6])
