"""`python -m simulations {drift,hallucination,latency,attack,anomaly,cost-spike,feedback,traffic,all,reset}`:
inject a fault, watch it travel from the metric to the alert to the notification, and print how long each
step took.

Every simulation exits 0 when each expected alert reached every channel its severity routes to (Slack for all,
email too for critical ones), 1 when one did not (with a hint of where the chain broke), 2 when the lab could
not be used (not running, admin API refused, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
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


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("where the lab is, and how long to wait")
    defaults = LabUrls.from_ports(Ports.from_env())  # ML_PORT=8100 ... move them, as for labctl
    g.add_argument("--ml-url", default=defaults.ml, help="ml_api (default %(default)s)")
    g.add_argument("--rag-url", default=defaults.rag, help="rag_api (default %(default)s)")
    g.add_argument("--prometheus-url", default=defaults.prometheus, help="default %(default)s")
    g.add_argument("--alertmanager-url", default=defaults.alertmanager, help="default %(default)s")
    g.add_argument(
        "--receiver-url", default=defaults.receiver, help="the lab's alert receiver (default %(default)s)"
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


DRIFT_AMOUNT_HELP = (
    "how far to move each chosen feature, in units of that feature's standard deviation under the training "
    "data (the reference). 0 sends training-like tickets (nothing drifts); 0.5 is a shift a KS test sees "
    "within a few hundred tickets; 1 or more is a blatant shift. Values are clipped to the valid ranges and "
    "integer features rounded. Default %(default)s"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{drift,hallucination,latency,attack,anomaly,cost-spike,feedback,traffic,all,reset}",
    )
    for add in (
        _drift_parser,
        _hallucination_parser,
        _latency_parser,
        _attack_parser,
        _anomaly_parser,
        _cost_spike_parser,
        _feedback_parser,
        _traffic_parser,
        _all_parser,
    ):
        add(sub)
    sub.add_parser(
        "reset",
        parents=[common_options()],
        help="clear every fault on both services and empty ml_api's drift window",
        description="DELETE /admin/faults/all on both services and POST /drift/reset on ml_api.",
    )
    return parser


Subparsers = Any  # argparse's _SubParsersAction


def _drift_parser(sub: Subparsers) -> None:
    features = ",".join(feature_names())
    drift = sub.add_parser(
        "drift",
        parents=[common_options()],
        help="send drifted tickets to ml_api /predict; expects MLDataDriftDetected",
        description=(
            "Send tickets to ml_api POST /predict (the endpoint that feeds the drift window) whose chosen "
            "features are shifted away from the training data. Expected alert: MLDataDriftDetected "
            "(critical: Slack and email) when at least half of the features are shifted, else "
            "MLFeatureDrift (warning: Slack). The reference mean and SD come from the training data "
            "generator (ml_api.data) with the model card's training seed. The clean-up empties the drift "
            "window (POST /drift/reset)."
        ),
    )
    drift.add_argument(
        "--duration",
        type=_positive(float),
        default=90.0,
        help="send drifted tickets for at most this many seconds; stops earlier once the alert was "
        "notified (default %(default)s)",
    )
    drift.add_argument("--drift-amount", type=float, default=1.0, help=DRIFT_AMOUNT_HELP)
    drift.add_argument(
        "--features",
        type=_features,
        default=list(feature_names()),
        help=f"comma-separated features to shift (default all: {features})",
    )
    drift.add_argument(
        "--rps",
        type=_positive(float),
        default=20.0,
        help="tickets per second; the drift window holds the last 500 tickets, so 20/s replaces it within "
        "half a minute (default %(default)s)",
    )


def _hallucination_parser(sub: Subparsers) -> None:
    hall = sub.add_parser(
        "hallucination",
        parents=[common_options()],
        help="turn on rag_api's hallucination fault and ask questions; expects LLMHallucinationHigh",
        description=(
            "Turn on rag_api's `hallucination` fault (POST /admin/faults/hallucination) and send a mix of "
            "in-domain questions (rag_api/data/reference_queries.txt) and out-of-domain ones "
            "(tests/data/out_of_domain_questions.txt) to POST /chat. The answers are scored in the "
            "background; expected alert: LLMHallucinationHigh (critical: Slack and email), when the p90 "
            "hallucination score over a minute exceeds 0.5. The clean-up clears the fault."
        ),
    )
    hall.add_argument(
        "--num-queries", type=_positive(int), default=120, help="questions to send (default %(default)s)"
    )
    hall.add_argument(
        "--hallucination-rate",
        type=_share,
        default=0.5,
        help="share (0-1) of answers the fault makes ignore or contradict their sources; 0.1 leaves the p90 "
        "score hovering near the threshold (usually no alert), the default crosses it (default %(default)s)",
    )
    hall.add_argument(
        "--out-of-domain-share",
        type=_share,
        default=0.2,
        help="share (0-1) of questions the knowledge base cannot answer (default %(default)s)",
    )
    hall.add_argument(
        "--rps", type=_positive(float), default=2.0, help="questions per second (default %(default)s)"
    )


def _latency_parser(sub: Subparsers) -> None:
    lat = sub.add_parser(
        "latency",
        parents=[common_options()],
        help="slow the services down and burst load at them with Locust; expects the latency alerts",
        description=(
            "Turn on the `latency` fault (every request waits --delay-ms) of ml_api and/or rag_api and run a "
            "Locust burst against them. Expected alerts follow the delay: ml_api above 1000 ms -> "
            "MLHighLatencyP99 (critical), above 250 ms -> MLHighLatencyP90 (warning); rag_api above "
            "2000 ms -> LLMHighLatency (warning). The clean-up clears the faults."
        ),
    )
    lat.add_argument(
        "--duration",
        type=_positive(float),
        default=90.0,
        help="how long the fault and the burst last at most; both stop once the alerts were notified "
        "(default %(default)s)",
    )
    lat.add_argument(
        "--delay-ms",
        type=_positive(float),
        default=2500.0,
        help="added latency per request (default %(default)s)",
    )
    lat.add_argument(
        "--burst-size",
        type=_positive(int),
        default=10,
        help="Locust users in the burst, shared among the chosen services (default %(default)s)",
    )
    lat.add_argument(
        "--service",
        choices=("ml", "rag", "both"),
        default="both",
        help="which service to slow down (default %(default)s)",
    )


def _traffic_parser(sub: Subparsers) -> None:
    traffic = sub.add_parser(
        "traffic",
        parents=[common_options()],
        help="healthy baseline load on both services with Locust (no fault)",
        description=(
            "Run healthy Locust users against both services (training-like tickets to /predict, in-domain "
            "questions to /chat) and report the requests, failures, latency and any alert that fired (none "
            "should). Exits 1 when a request failed. For Locust's web UI run "
            "`locust -f simulations/locustfile.py`."
        ),
    )
    traffic.add_argument(
        "--duration", type=_positive(float), default=60.0, help="seconds of load (default %(default)s)"
    )
    traffic.add_argument(
        "--users", type=_positive(int), default=4, help="concurrent Locust users (default %(default)s)"
    )


def _all_parser(sub: Subparsers) -> None:
    everything = sub.add_parser(
        "all",
        parents=[common_options()],
        help="drift with attack, hallucination, latency in turn, with recovery between, then one table",
        description=(
            "Run drift and attack side by side (other services, other alerts), then hallucination, then "
            "latency, with their default settings. After "
            "each, the faults are cleared, the drift window is reset and the expected alerts are given up to "
            "--recovery-timeout seconds to resolve before the next. Ends with one table; exits 1 if any "
            "expected alert was not delivered. --timeout applies to each simulation."
        ),
    )
    everything.add_argument(
        "--recovery-timeout",
        type=float,
        default=40.0,
        help="seconds to wait for a simulation's alerts to resolve before the next one (default %(default)s)",
    )
    everything.set_defaults(timeout=150.0)


def _attack_parser(sub: Subparsers) -> None:
    attack = sub.add_parser(
        "attack",
        parents=[common_options()],
        help="prompt injections, PII and prompt leaks, toxic answers; expects the safety alerts",
        description=(
            "Send /chat messages of which --injection-rate are prompt-injection attempts, turn on rag_api's "
            "`pii_leak` fault (answers echo a fake customer record) and, with --prompt-leak-rate, its "
            "`prompt_leak` fault (answers repeat the prompt and its canary), and post an external app's "
            "answers to /monitor/inference of which --toxic-rate are toxic. Expected alerts (security "
            "route): LLMPromptInjectionShareHigh (muted by LLMCanaryLeak when the canary leaks), LLMPIILeak "
            "(unless rag_api redacts answers: RAG_SAFETY_MODE=enforce, then the summary shows them "
            "redacted, 0 leaked), LLMToxicOutputHigh. The clean-up clears the faults."
        ),
    )
    attack.add_argument(
        "--duration",
        type=_positive(float),
        default=120.0,
        help="seconds of attack at most; stops once the alerts were notified (default %(default)s)",
    )
    attack.add_argument(
        "--injection-rate",
        type=_share,
        default=0.5,
        help="share (0-1) of /chat messages that are injection attempts; the alert needs more than 0.2 "
        "(default %(default)s)",
    )
    attack.add_argument(
        "--pii-rate",
        type=_share,
        default=0.3,
        help="share (0-1) of answers the pii_leak fault makes echo a customer record (default %(default)s)",
    )
    attack.add_argument(
        "--toxic-rate",
        type=_share,
        default=0.3,
        help="share (0-1) of the answers posted to /monitor/inference that are toxic (default %(default)s)",
    )
    attack.add_argument(
        "--prompt-leak-rate",
        type=_share,
        default=0.0,
        help="share (0-1) of answers that leak the prompt's canary (default %(default)s: off)",
    )
    attack.add_argument(
        "--rps", type=_positive(float), default=2.0, help="/chat messages per second (default %(default)s)"
    )


def _anomaly_parser(sub: Subparsers) -> None:
    anomaly = sub.add_parser(
        "anomaly",
        parents=[common_options()],
        help="shape ml_api latency over minutes under the static threshold; expects LatencyMetricAnomaly",
        description=(
            "Healthy Locust traffic on ml_api for --warmup seconds (the anomaly rules' baseline), then the "
            "`latency` fault shaped as a 60 s spike, a lasting shift, or a ramp to --peak-ms over "
            "--ramp-seconds, always under MLHighLatencyP90's threshold. Expected alert: LatencyMetricAnomaly "
            "(warning: Slack); the static MLHighLatencyP90 must stay silent. The clean-up clears the fault."
        ),
    )
    anomaly.add_argument("--shape", choices=SHAPES, default="ramp", help="(default %(default)s)")
    anomaly.add_argument(
        "--warmup",
        type=_positive(float),
        # 10 minutes: on a fresh lab the anomaly alerts wait for half a baseline window (5 minutes of samples,
        # ending 5 minutes ago), so a shape that starts earlier is detected late.
        default=600.0,
        help="seconds of healthy traffic (default %(default)s)",
    )
    anomaly.add_argument(
        "--peak-ms", type=_positive(float), default=150.0, help="largest added latency (default %(default)s)"
    )
    anomaly.add_argument(
        "--ramp-seconds", type=_positive(float), default=300.0, help="ramp length (default %(default)s)"
    )
    anomaly.add_argument("--users", type=_positive(int), default=4, help="Locust users (default %(default)s)")
    anomaly.set_defaults(timeout=900.0)


def _cost_spike_parser(sub: Subparsers) -> None:
    spike = sub.add_parser(
        "cost-spike",
        parents=[common_options()],
        help="inflate one tenant's prompts (token_inflation fault); expects the cost alert it raises",
        description=(
            "Turn on rag_api's `token_inflation` fault for --tenant (its prompts carry their retrieved "
            "context --factor times) and send /chat with `X-Tenant: TENANT`. The expected alert follows from "
            "one probe answer of the tenant (its cost) and the tenant's daily budget "
            "(llm_tenant_daily_budget_dollars): LLMBudgetBurn (critical: Slack and email; it mutes the cost "
            "warnings) when the projected day's spend passes the budget, else LLMCostPerRequestHigh when an "
            "inflated answer costs more than its threshold. The clean-up clears the fault."
        ),
    )
    spike.add_argument(
        "--tenant", default="acme", help="tenant to inflate (rag_api's allow-list; default %(default)s)"
    )
    spike.add_argument(
        "--factor",
        type=int,
        choices=range(1, 101),
        metavar="1-100",
        default=20,
        help="how many times the prompt carries its context (default %(default)s)",
    )
    spike.add_argument(
        "--duration",
        type=_positive(float),
        default=120.0,
        help="seconds of load at most; stops once the alert was notified (default %(default)s)",
    )
    spike.add_argument(
        "--rps", type=_positive(float), default=1.0, help="/chat requests per second (default %(default)s)"
    )


def _feedback_parser(sub: Subparsers) -> None:
    feedback = sub.add_parser(
        "feedback",
        parents=[common_options()],
        help="vote on real answers through POST /feedback; expects LLMNegativeFeedbackHigh",
        description=(
            "Ask /chat for a few answers, then vote on them through POST /feedback, a share "
            "--negative-rate down (reasons wrong and irrelevant in turn). Expected alert: "
            "LLMNegativeFeedbackHigh (warning: Slack) when that share is above its threshold. Nothing to "
            "clean up: the votes stay counted, so the alert resolves once they leave its 15-minute window."
        ),
    )
    feedback.add_argument(
        "--negative-rate",
        type=_share,
        default=0.8,
        help="share (0-1) of the votes that are thumbs down (default %(default)s)",
    )
    feedback.add_argument(
        "--duration",
        type=_positive(float),
        default=120.0,
        help="seconds of voting at most; stops once the alert was notified (default %(default)s)",
    )
    feedback.add_argument(
        "--rps", type=_positive(float), default=1.0, help="votes per second (default %(default)s)"
    )


def report_path(args: argparse.Namespace) -> Path | None:
    if args.no_report or args.no_wait:
        return None
    return args.report or default_path(args.command)


def make_lab(args: argparse.Namespace) -> Lab:
    urls = LabUrls(args.ml_url, args.rag_url, args.prometheus_url, args.alertmanager_url, args.receiver_url)
    return Lab(urls, admin_token=args.admin_token)


def scenario_from(args: argparse.Namespace, name: str) -> Scenario:
    if name == "drift":
        return DriftScenario(
            duration=args.duration, drift_amount=args.drift_amount, features=args.features, rps=args.rps
        )
    if name == "hallucination":
        return HallucinationScenario(
            num_queries=args.num_queries,
            hallucination_rate=args.hallucination_rate,
            rps=args.rps,
            out_of_domain_share=args.out_of_domain_share,
        )
    if name == "latency":
        services = {"ml": ["ml_api"], "rag": ["rag_api"], "both": ["ml_api", "rag_api"]}[args.service]
        return LatencyScenario(
            duration=args.duration,
            delay_ms=args.delay_ms,
            burst_size=args.burst_size,
            services=services,
            ml_url=args.ml_url,
            rag_url=args.rag_url,
        )
    if name == "attack":
        return AttackScenario(
            duration=args.duration,
            injection_rate=args.injection_rate,
            pii_rate=args.pii_rate,
            toxic_rate=args.toxic_rate,
            prompt_leak_rate=args.prompt_leak_rate,
            rps=args.rps,
            rag_url=args.rag_url,
        )
    if name == "anomaly":
        return AnomalyScenario(
            shape=args.shape,
            warmup=args.warmup,
            peak_ms=args.peak_ms,
            ramp_seconds=args.ramp_seconds,
            users=args.users,
            ml_url=args.ml_url,
            rag_url=args.rag_url,
        )
    if name == "cost-spike":
        return CostSpikeScenario(
            tenant=args.tenant,
            factor=args.factor,
            duration=args.duration,
            rps=args.rps,
            rag_url=args.rag_url,
        )
    if name == "feedback":
        return FeedbackScenario(
            negative_rate=args.negative_rate, duration=args.duration, rps=args.rps, rag_url=args.rag_url
        )
    return TrafficScenario(duration=args.duration, users=args.users, ml_url=args.ml_url, rag_url=args.rag_url)


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
    if args.command == "latency":
        services = {"ml": ["ml_api"], "rag": ["rag_api"], "both": ["ml_api", "rag_api"]}[args.service]
        if not latency_expectations(args.delay_ms, services):
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
