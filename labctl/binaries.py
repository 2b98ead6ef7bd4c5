"""The programs the native lab runs besides its Python: Prometheus, Alertmanager and, if installed, Grafana.

Each is looked up on PATH under the names the Debian/Ubuntu packages, Homebrew and the upstream tarballs use;
Grafana also in $GRAFANA_HOME/bin (an unpacked standalone tarball), see docs/stage-1-setup.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

GRAFANA_INSTALL_HINT = (
    "Grafana is not installed: the dashboards need it. Install it natively (docs/stage-1-setup.md, "
    "'Grafana without Docker': `apt-get install grafana` from Grafana's repository, `brew install grafana`, "
    "or the standalone tarball with GRAFANA_HOME set) and run `make lab` again, or `docker compose up`."
)


class MissingTools(RuntimeError):
    """A binary the lab needs is not on PATH."""


def find_binary(*names: str, extra_dirs: tuple[Path, ...] = ()) -> str | None:
    for directory in extra_dirs:
        for name in names:
            if (candidate := directory / name).is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    for name in names:
        if found := shutil.which(name):
            return found
    return None


def monitoring_binaries() -> dict[str, str]:
    """Prometheus and Alertmanager paths, or MissingTools naming exactly what to install."""
    prometheus = find_binary("prometheus")
    alertmanager = find_binary("prometheus-alertmanager", "alertmanager")
    missing = [n for n, b in (("prometheus", prometheus), ("prometheus-alertmanager", alertmanager)) if not b]
    if missing or not prometheus or not alertmanager:
        raise MissingTools(
            f"missing on PATH: {', '.join(missing)}.\n"
            "  Install them with `make tools` (as root it runs\n"
            "  `apt-get install -y prometheus prometheus-alertmanager`),\n"
            "  on macOS `brew install prometheus alertmanager`, or put the binaries on PATH."
        )
    return {"prometheus": prometheus, "alertmanager": alertmanager}


def grafana_binary() -> list[str] | None:
    """The command that starts Grafana if installed (`grafana server`, or the older `grafana-server`)."""
    extra = (Path(os.environ["GRAFANA_HOME"]) / "bin",) if os.environ.get("GRAFANA_HOME") else ()
    if found := find_binary("grafana", extra_dirs=extra):
        return [found, "server"]
    if found := find_binary("grafana-server", extra_dirs=extra):
        return [found]
    return None


def grafana_homepath(binary: str) -> Path | None:
    """Grafana's home (conf/defaults.ini, public/): the Debian package's, Homebrew's or the tarball's."""
    for candidate in (
        Path(binary).resolve().parent.parent,  # a tarball: <home>/bin/grafana
        Path(binary).resolve().parent.parent / "share" / "grafana",  # Homebrew, /usr/local
        Path("/usr/share/grafana"),  # the Debian/Ubuntu package
    ):
        if (candidate / "conf" / "defaults.ini").exists():
            return candidate
    return None
