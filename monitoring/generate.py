"""`make generate`: render every file that comes from the monitoring contract; `--check` only compares.

TARGETS maps a repository path to the function that renders it. A generated file is either whole (rule
files) or a marked block inside a hand-written file (`<!-- BEGIN GENERATED name -->` … `END GENERATED name`).
A new generated artefact = a render function + one TARGETS entry.
"""

from __future__ import annotations

import argparse
import re
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grafana.builder.registry import dashboard_targets
from monitoring import anomaly
from monitoring import kubernetes as k8s
from monitoring.alerts import ALERTS
from monitoring.render import alerts_table, render_rules

ROOT = Path(__file__).resolve().parents[1]
# promtool tests over seeded series, each written by a script of its own that stays runnable by itself
# (`python prometheus/tests/make_anomaly_signals_test.py`, `…/make_cusum_test.py`); `make generate` and
# --check run them too. The anomaly signals' script reads the rule files, so these come after them in TARGETS.
SIGNAL_TESTS = "prometheus/tests/anomaly_signals_test.yml"
SIGNAL_TESTS_SCRIPT = ROOT / "prometheus" / "tests" / "make_anomaly_signals_test.py"
CUSUM_TESTS = "prometheus/tests/cusum_test.yml"
CUSUM_TESTS_SCRIPT = ROOT / "prometheus" / "tests" / "make_cusum_test.py"


def _script_output(script: Path) -> str:
    """What a generator script's `render()` returns (the scripts under prometheus/tests/ are no package)."""
    return runpy.run_path(str(script), run_name=script.stem)["render"]()


@dataclass(frozen=True)
class Block:
    """A generated block inside a hand-written file, between BEGIN/END GENERATED markers."""

    name: str
    render: Callable[[], str]

    def apply(self, current: str, path: str) -> str:
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED {self.name} -->\n).*?(<!-- END GENERATED {self.name} -->)", re.S
        )
        if not pattern.search(current):
            raise SystemExit(f"{path}: no `<!-- BEGIN GENERATED {self.name} -->` … END block to fill")
        return pattern.sub(lambda m: m.group(1) + self.render().rstrip("\n") + "\n" + m.group(2), current)


TARGETS: dict[str, Callable[[], str] | Block] = {
    "prometheus/rules/alerts.yml": lambda: render_rules(ALERTS, "lab"),
    "prometheus/profiles/production/rules/alerts.yml": lambda: render_rules(ALERTS, "production"),
    "docs/alerts.md": Block("alerts-table", lambda: alerts_table(ALERTS)),
    "prometheus/rules/anomaly.yml": lambda: anomaly.render_rules("lab"),
    "prometheus/profiles/production/rules/anomaly.yml": lambda: anomaly.render_rules("production"),
    # After the rule files: `make generate` writes them first, and the script reads them from disk.
    SIGNAL_TESTS: lambda: _script_output(SIGNAL_TESTS_SCRIPT),
    CUSUM_TESTS: lambda: _script_output(CUSUM_TESTS_SCRIPT),
    **dashboard_targets(),  # grafana/dashboards/<uid>.json, alert lines included
}
K8S = "deploy/kubernetes"


def _read(path: Path) -> str:
    """A source file as `make generate` leaves it: generated paths rendered afresh, others from disk."""
    key = path.as_posix()
    return expected(key) if key in TARGETS else (ROOT / path).read_text(encoding="utf-8")


TARGETS.update({
    f"{K8S}/overlays/lab/prometheusrule.yaml": lambda: k8s.prometheus_rule("lab", _read),
    f"{K8S}/overlays/production/prometheusrule.yaml": lambda: k8s.prometheus_rule("production", _read),
    f"{K8S}/base/alertmanagerconfig.yaml": lambda: k8s.alertmanager_config(_read),
    f"{K8S}/base/alertmanager-templates.yaml": lambda: k8s.alertmanager_templates(_read),
    f"{K8S}/base/dashboards.yaml": lambda: k8s.dashboard_configmaps(_read),
})  # fmt: skip


def expected(path: str, root: Path = ROOT) -> str:
    target = TARGETS[path]
    if isinstance(target, Block):
        return target.apply((root / path).read_text(encoding="utf-8"), path)
    return target()


def stale(root: Path = ROOT) -> list[str]:
    """Paths whose committed content differs from what the contract renders."""
    out = []
    for path in TARGETS:
        file = root / path
        if not file.exists() or file.read_text(encoding="utf-8") != expected(path, root):
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that are not up to date")
    args = parser.parse_args(argv)
    if args.check:
        paths = stale()
        for path in paths:
            print(f"not up to date: {path} (run `make generate`)", file=sys.stderr)
        return 1 if paths else 0
    for path in TARGETS:
        file = ROOT / path
        text = expected(path)
        if not file.exists() or file.read_text(encoding="utf-8") != text:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
            print(f"generated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
