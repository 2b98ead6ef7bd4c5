"""No secrets in the repository: detect-secrets over every tracked file."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_secrets_in_tracked_files() -> None:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    files = [f for f in files if (ROOT / f).is_file()]
    assert files, "git ls-files listed nothing"
    result = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["results"]
    assert findings == {}, json.dumps(findings, indent=1)
