"""scripts/install_litellm.sh: one install of LiteLLM's proxy per pin, shared by every clone, pin kept.

No test here installs anything: a stamped stand-in venv plays the install, and PYTHON=false makes any attempt
to build a venv fail loudly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from lab_common.state import ROOT

SCRIPT = ROOT / "scripts" / "install_litellm.sh"
SPEC = re.search(r"^LITELLM_SPEC='([^']+)'$", SCRIPT.read_text(), re.M).group(1)  # type: ignore[union-attr]
VERSION = SPEC.split("==")[1]


def run(script: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The caller's own cache settings must not leak in: HOME alone decides, unless a test sets one.
    ours = {"LITELLM_VENV", "OBSERVABILITY_LAB_CACHE", "XDG_CACHE_HOME"}
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    full = {**clean, "HOME": str(home), "PYTHON": "false", **env}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=full, timeout=60)


def fake_install(venv: Path, spec: str = SPEC) -> None:
    """What a finished install leaves: a venv marker, a working interpreter, the proxy and the stamp."""
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to(shutil.which("python3") or "/usr/bin/python3")
    (venv / "bin" / "litellm").write_text("#!/bin/sh\n")
    (venv / "bin" / "litellm").chmod(0o755)
    (venv / ".installed").write_text(spec + "\n")


def clone(tmp_path: Path) -> Path:
    """A second copy of the script, as in another clone of the repository."""
    repo = tmp_path / "clone"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / SCRIPT.name)
    return repo / "scripts" / SCRIPT.name


def test_the_venv_lives_in_the_user_cache_one_per_pin(tmp_path: Path) -> None:
    where = run(SCRIPT, tmp_path, "--where")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip() == f"{tmp_path}/.cache/observability-lab/litellm-{VERSION}/bin/litellm"
    xdg = run(SCRIPT, tmp_path, "--where", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert xdg.stdout.strip() == f"{tmp_path}/xdg/observability-lab/litellm-{VERSION}/bin/litellm"


def test_another_clone_reuses_the_install_of_the_same_pin(tmp_path: Path) -> None:
    fake_install(tmp_path / ".cache" / "observability-lab" / f"litellm-{VERSION}")
    result = run(clone(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr  # PYTHON=false: an install attempt would have failed
    assert "installing" not in result.stderr


def test_an_install_of_another_pin_is_not_reused(tmp_path: Path) -> None:
    venv = tmp_path / ".cache" / "observability-lab" / f"litellm-{VERSION}"
    fake_install(venv, spec="litellm[proxy]==1.0.0")
    result = run(clone(tmp_path), tmp_path)
    assert result.returncode != 0, "it must install the pinned version (and fail here: PYTHON=false)"
    assert f"installing {SPEC} into {venv}" in result.stderr


def test_the_compromised_release_is_refused(tmp_path: Path) -> None:
    script = clone(tmp_path)
    script.write_text(script.read_text().replace(f"=={VERSION}'", "==1.107.0'"))
    bad = "litellm[proxy]==1.107.0"
    fake_install(tmp_path / ".cache" / "observability-lab" / "litellm-1.107.0", spec=bad)
    result = run(script, tmp_path)
    assert result.returncode == 1 and "refusing LiteLLM 1.107.0" in result.stderr


def test_an_unwritable_cache_falls_back_to_the_clone(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = run(clone(tmp_path), tmp_path, "--where", OBSERVABILITY_LAB_CACHE=str(tmp_path / "file" / "x"))
    assert result.stdout.strip() == f"{tmp_path}/clone/var/tools/litellm-venv/bin/litellm"
