"""The grader's child: run one submission with papermill, inside the sandbox.

Run as a script by path (`python _child.py ...`), not as `-m cifar_utils...`: importing the
package would load torch and matplotlib, seconds of start-up per submission for a process
that only drives papermill (the kernel it starts imports what the notebook needs).

    python _child.py SOURCE TARGET CELL_SECONDS MEMORY_BYTES
"""

import resource
import sys
from pathlib import Path


def main(source: str, target: str, cell_seconds: str, memory_bytes: str) -> None:
    import papermill

    limit = int(memory_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # the kernel inherits it
    try:
        papermill.execute_notebook(source, target, kernel_name="python3",
                                   parameters={"PROFILE": "smoke", "RESULTS_DIR": "results"},
                                   progress_bar=False, execution_timeout=float(cell_seconds),
                                   allow_errors=True, interrupt_on_timeout=True,
                                   cwd=str(Path(target).parent))
    except papermill.PapermillExecutionError:
        pass  # errors are the grader's to read from the executed notebook


if __name__ == "__main__":
    main(*sys.argv[1:5])
