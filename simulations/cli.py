"""`python -m simulations {drift,hallucination,latency,attack,anomaly,cost-spike,feedback,traffic,all,reset}`:
inject a fault, watch it travel from the metric to the alert to the notification, and print how long each
step took.

Every simulation exits 0 when each expected alert reached every channel its severity routes to (Slack for all,
email too for critical ones), 1 when one did not (with a hint of where the chain broke), 2 when the lab could
not be used (not running, admin API refused, ...).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from lab_common.endpoints import Ports
from simulations.anomaly import SHAPES, AnomalyScenario
from simulations.attack import AttackScenario
from simulations.cost import CostSpikeScenario, FeedbackScenario
from simulations.data import ROOT, feature_names, parse_features
from simulations.html_report import default_path, write_report
from simulations.lab import Lab, LabError, LabUrls
from simulations.report import print_report, stdout_console
from simulations.scenarios import (
    DriftScenario,
    HallucinationScenario,
    LatencyScenario,
    Outcome,
    Scenario,
    SideBySide,
    TrafficScenario,
    execute,
    hints,
    latency_expectations,
    progress_console,
    recover,
)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _features(text: str) -> list[str]:
    try:
        return parse_features(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


# The `type` names of simulations/commands.toml.
TYPES: dict[str, Callable[[str], Any]] = {
    "float": float,
    "int": int,
    "positive float": _positive(float),
    "positive int": _positive(int),
    "share": _share,
    "features": _features,
}
COMMANDS_FILE = Path(__file__).with_name("commands.toml")
# The scenario each subcommand runs, built from the options of the same names (`all` and `reset` run none).
SCENARIOS: dict[str, type[Scenario]] = {
    scenario.name: scenario
    for scenario in (DriftScenario, HallucinationScenario, LatencyScenario, AttackScenario, AnomalyScenario)
}
SCENARIOS |= {scenario.name: scenario for scenario in (CostSpikeScenario, FeedbackScenario, TrafficScenario)}
# --service of `latency`: which services get the fault.
SERVICES = {"ml": ["ml_api"], "rag": ["rag_api"], "both": ["ml_api", "rag_api"]}


def commands() -> dict[str, dict[str, Any]]:
    """simulations/commands.toml, with the values owned by code filled in."""
    filled = {"features": ",".join(feature_names()), "shapes": SHAPES}
    table = tomllib.loads(COMMANDS_FILE.read_text(encoding="utf-8"))
    for command in table.values():
        for option in command.get("option", []):
            option["help"] = option["help"].format_map(filled)
            for key in ("default", "choices"):
                if isinstance(option.get(key), str) and option[key].startswith("{"):
                    option[key] = filled[option[key].strip("{}")]
    return table


def _add_option(parser: argparse.ArgumentParser, option: dict[str, Any]) -> None:
    settings = {key: option[key] for key in ("default", "choices", "metavar", "help") if key in option}
    if "type" in option:
        settings["type"] = TYPES[option["type"]]
    if "range" in option:
        low, high = option["range"]
        settings["choices"] = range(low, high + 1)
    parser.add_argument(option["flag"], **settings)


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("where the lab is, and how long to wait")
    defaults = LabUrls.from_ports(Ports.from_env())  # ML_PORT=8100 ... move them, as for labctl
    helps = {"ml": "ml_api (default %(default)s)", "rag": "rag_api (default %(default)s)"}
    helps["receiver"] = "the lab's alert receiver (default %(default)s)"
    for name in ("ml", "rag", "prometheus", "alertmanager", "receiver"):
        g.add_argument(
            f"--{name}-url", default=getattr(defaults, name), help=helps.get(name, "default %(default)s")
        )
    g.add_argument(
        "--admin-token",
        default=os.environ.get("ADMIN_TOKEN") or None,
        help="X-Admin-Token for the fault API (default $ADMIN_TOKEN; not needed in the lab profile)",
    )
    g.add_argument(
        "--timeout",
        type=_positive(float),
        default=180.0,
        help="seconds to wait, from the injection, for the alert to be notified (default %(default)s)",
    )
    g.add_argument(
        "--no-wait",
        action="store_true",
        help="only inject the fault and its load, then exit: no watching, no table, no clean-up",
    )
    g.add_argument(
        "--keep-fault",
        action="store_true",
        help="after the alert came, leave the fault on (and the drift window as it is) instead of "
        "cleaning up",
    )
    report = common.add_argument_group("the HTML report (a chart per expected alert, and the table)")
    report.add_argument(
        "--report",
        type=Path,
        default=None,
        help=f"where to write it (default {default_path('COMMAND', 0).parent.relative_to(ROOT)}/"
        "simulation-COMMAND-DATE-TIME.html)",
    )
    report.add_argument("--no-report", action="store_true", help="write no HTML report")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    table = commands()
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(table) + "}")
    for name, command in table.items():
        parser_of = sub.add_parser(
            name, parents=[common_options()], help=command["help"], description=command["description"]
        )
        for option in command.get("option", []):
            _add_option(parser_of, option)
        parser_of.set_defaults(**command.get("defaults", {}))
    return parser


def report_path(args: argparse.Namespace) -> Path | None:
    if args.no_report or args.no_wait:
        return None
    return args.report or default_path(args.command)


def make_lab(args: argparse.Namespace) -> Lab:
    urls = LabUrls(args.ml_url, args.rag_url, args.prometheus_url, args.alertmanager_url, args.receiver_url)
    return Lab(urls, admin_token=args.admin_token)


def scenario_from(args: argparse.Namespace, name: str) -> Scenario:
    """The subcommand's scenario, given the options (and common URLs) its constructor names."""
    scenario = SCENARIOS[name]
    values = vars(args) | ({"services": SERVICES[args.service]} if "service" in vars(args) else {})
    keywords = inspect.signature(scenario).parameters
    return scenario(**{key: values[key] for key in keywords})


def defaults_for(name: str, args: argparse.Namespace) -> argparse.Namespace:
    """The subcommand's defaults with the common options of `args` (for `all`)."""
    sub_args = build_parser().parse_args([name])
    for key in ("ml_url", "rag_url", "prometheus_url", "alertmanager_url", "receiver_url", "admin_token"):
        setattr(sub_args, key, getattr(args, key))
    return sub_args


def finish(
    lab: Lab,
    outcomes: list[Outcome],
    timeout: float,
    *,
    with_recovery: bool = False,
    report: Path | None = None,
) -> int:
    if not any(o.waited for o in outcomes):
        for o in outcomes:
            for line in o.summary:
                print(line)
        print(
            "injected (--no-wait): watch it in Grafana / Prometheus; `python -m simulations reset` clears it"
        )
        return 0
    print_report(outcomes, with_recovery=with_recovery)
    problems = hints(lab, outcomes, timeout)
    failed_traffic = [o for o in outcomes if not o.ok and not o.watches]
    if report is not None:
        written = write_report(lab, outcomes, report, with_recovery=with_recovery, notes=problems)
        print(f"report: {written} (charts of each watched metric; open it in a browser)")
    if problems or failed_traffic:
        console = stdout_console()
        console.print("\n[bold red]Not every expected alert was delivered.[/] What to check:")
        for line in problems:
            console.print(f"  - {line}", highlight=False)
        for o in failed_traffic:
            console.print(
                f"  - {o.scenario.name}: requests failed (see the Locust lines above)", highlight=False
            )
        return 1
    return 0


def run_all(lab: Lab, args: argparse.Namespace, console: Console) -> int:
    """Each simulation in turn; one that cannot run (LabError) is reported and the others still run."""
    outcomes: list[Outcome] = []
    errors: list[str] = []
    # drift (ml_api) and attack (rag_api) touch different services and alerts: side by side, to end sooner.
    for names in (("drift", "attack"), ("hallucination",), ("latency",)):
        name = "+".join(names)
        parts = [scenario_from(defaults_for(n, args), n) for n in names]
        try:
            outcome = execute(
                lab,
                parts[0] if len(parts) == 1 else SideBySide(*parts),
                timeout=args.timeout,
                no_wait=args.no_wait,
                keep_fault=args.keep_fault,
                settle_timeout=args.recovery_timeout,
                console=console,
            )
        except LabError as exc:
            errors.append(f"{name}: {exc}")
            console.print(f"[bold red]{name} could not run:[/] {exc}", highlight=False)
            continue
        outcomes.append(outcome)
        if not args.no_wait and not args.keep_fault:
            recover(lab, outcome, args.recovery_timeout, console)
    rc = finish(lab, outcomes, args.timeout, with_recovery=True, report=report_path(args)) if outcomes else 0
    if errors:
        console.print(
            "\n[bold red]Simulations that could not run:[/]", *errors, sep="\n  - ", highlight=False
        )
        return max(rc, 2 if not outcomes else 1)
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:  # the eval gate has its own options (simulations/eval.py)
        from simulations.eval import main as eval_main

        return eval_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "latency" and not latency_expectations(args.delay_ms, SERVICES[args.service]):
        parser.error(
            f"--delay-ms {args.delay_ms:g} is below every latency threshold of {args.service} "
            "(ml_api p90 250 ms, rag_api /chat p90 2000 ms): no alert would fire"
        )
    lab = make_lab(args)
    console = progress_console()
    try:
        if args.command == "reset":
            for service in ("ml_api", "rag_api"):
                lab.clear_faults(service)
            lab.reset_drift()
            print("faults cleared on ml_api and rag_api, drift window emptied")
            return 0
        if args.command == "all":
            return run_all(lab, args, console)
        outcome = execute(
            lab,
            scenario_from(args, args.command),
            timeout=args.timeout,
            no_wait=args.no_wait,
            keep_fault=args.keep_fault,
            console=console,
        )
        return finish(lab, [outcome], args.timeout, report=report_path(args))
    except LabError as exc:
        console.print(f"[bold red]cannot run {args.command}:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted: `python -m simulations reset` clears what was injected")
        return 130
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
