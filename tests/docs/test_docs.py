"""The docs are tested: every endpoint, metric, alert, Make target, CLI flag and relative link that README.md
and docs/*.md name must exist in the code, so a rename that forgets the docs fails here.

What counts as "named" (outside code, prose is free):
- endpoints: `GET|POST|PUT|PATCH|DELETE /path` anywhere, backticked `/paths`, and `localhost:<port>/path` URLs
  (the port says which service must serve it; a curl's `-X`/`-d` says which method). ml_api, rag_api and the
  receiver are checked against their apps' real routes (OpenAPI schema, path parameters matched); Prometheus,
  Alertmanager, Grafana and Mailpit against a small allow-list of their API paths;
- metrics: identifiers starting with `ml_`, `rag_`, `llm_`, `triage_` in code spans and code blocks, checked
  against what the apps' `/metrics` really export (with the `_total`/`_bucket`/`_sum`/`_count`/`_created`
  suffix rules), and recording-rule names (`level:metric:operations`) against prometheus/rules;
- alerts: backticked CamelCase names shaped like the lab's alert names, and `alertname="..."` matchers;
- `make <target>`, `python -m <tool> [sub] --flag` (flags read from the tool's real `--help`), and
  relative markdown links (file, and heading anchor for markdown targets).

Every problem of every file is collected first, then reported together.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STAGE_DOCS = sorted((ROOT / "docs").glob("stage-*.md"))

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Paths every FastAPI app serves without listing them in its schema.
FASTAPI_IMPLICIT = {"/metrics": {"GET"}, "/docs": {"GET"}, "/openapi.json": {"GET"}, "/redoc": {"GET"}}
# The third-party APIs the docs may name (any method): kept small on purpose, add a path when a doc needs it.
ALLOWED_EXTERNAL: dict[str, tuple[str, ...]] = {
    "prometheus": (
        "/", "/graph", "/alerts", "/targets", "/rules", "/config", "/metrics",
        "/classic/graph", "/classic/alerts", "/classic/targets",  # Debian's 2.42 build
        "/-/ready", "/-/healthy", "/-/reload",
        "/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels",
        "/api/v1/label/{name}/values", "/api/v1/targets", "/api/v1/rules", "/api/v1/alerts",
        "/api/v1/status/config", "/api/v1/status/buildinfo",
    ),
    "alertmanager": (
        "/", "/#/alerts", "/#/silences", "/#/status", "/metrics", "/-/ready", "/-/healthy", "/-/reload",
        "/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/silences", "/api/v2/silence/{id}",
        "/api/v2/status", "/api/v2/receivers",
    ),
    "grafana": (
        "/", "/login", "/explore", "/dashboards", "/alerting/list", "/alerting/silences",
        "/connections/datasources",
        "/d/{uid}", "/d/{uid}/{slug}", "/api/health", "/api/datasources", "/api/search",
        "/api/dashboards/uid/{uid}",
    ),
    "mailpit": ("/", "/api/v1/messages", "/api/v1/message/{id}"),
}  # fmt: skip
SERVICE_PORTS = {
    8000: "ml_api",
    8001: "rag_api",
    9099: "receiver",
    9090: "prometheus",
    9093: "alertmanager",
    3000: "grafana",
    8025: "mailpit",
}
OWN_SERVICES = ("ml_api", "rag_api", "receiver")
# First segments of filesystem paths: a backticked `/etc/...` is a file, not an endpoint.
FS_ROOTS = {
    "etc", "usr", "var", "tmp", "home", "opt", "dev", "proc", "sys", "work", "bin", "srv", "root", "run",
}  # fmt: skip

METRIC_PREFIXES = ("ml_", "rag_", "llm_", "triage_")
# Identifiers with a metric prefix that name something else.
NOT_METRICS = {"ml_api", "rag_api"}
# Alert names in this lab start with one of these words (MLHighLatencyP90, TargetDown, ...).
ALERT_PREFIXES = ("ML", "LLM", "RAG", "Triage", "Target", "Alertmanager", "Prometheus", "Grafana", "Receiver")
METRIC_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": (),
    "info": ("_info",),
}
# `python -m <module>` commands whose flags are checked against their `--help`.
CLI_MODULES = r"simulations|labctl|benchmarks\.\w+|rag_api\.evaluation|ml_api\.train"
WITH_SUBCOMMANDS = {"simulations", "labctl"}

# --------------------------------------------------------------------------------------------- the facts


@dataclass
class Facts:
    """What really exists: the checker compares the docs with this."""

    routes: dict[str, dict[str, set[str]]]  # service -> path template -> methods (empty set: any)
    metrics: set[str]
    recording_rules: set[str]
    rule_groups: set[str]  # names of rule groups (`ml_drift`, ...): identifiers, not metrics
    alerts: set[str]
    make_targets: set[str]
    class_names: set[str]
    faults: dict[str, set[str]]  # service -> fault names
    help_text: Callable[[tuple[str, ...]], tuple[int, str]]


def metric_names_from_exposition(text: str) -> set[str]:
    """Every family of a /metrics text with its suffixed sample names, and every sample name seen."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            base = name.removesuffix("_total") if kind == "counter" else name
            names.add(name)
            names.update(base + suffix for suffix in METRIC_SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def _rule_names(key: str) -> set[str]:
    """Names of the lab's rules and of the production profile's (which add rules of their own, e.g. the
    anomaly types that need days of history)."""
    names: set[str] = set()
    prometheus = ROOT / "prometheus"
    for path in sorted([*prometheus.glob("rules/*.yml"), *prometheus.glob("profiles/*/rules/*.yml")]):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups") or []:
            names.update(rule[key] for rule in group.get("rules") or [] if key in rule)
    return names


def _rule_group_names() -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        groups = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups") or []
        names.update(group["name"] for group in groups)
    return names


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", text, flags=re.M))
    for phony in re.findall(r"^\.PHONY\s*:(.*)$", text, flags=re.M):
        targets.update(phony.split())
    return targets


def _class_names() -> set[str]:
    names: set[str] = set()
    for package in ("ml_api", "rag_api", "lab_common", "receiver", "labctl", "simulations", "benchmarks"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(re.findall(r"^\s*class\s+(\w+)", path.read_text(encoding="utf-8"), flags=re.M))
    return names


def _routes_of(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {path: set(methods) for path, methods in FASTAPI_IMPLICIT.items()}
    for path, operations in app.openapi()["paths"].items():
        routes.setdefault(path, set()).update(m.upper() for m in operations)
    return routes


@functools.cache
def _run_help(argv: tuple[str, ...]) -> tuple[int, str]:
    """`python -m <argv> --help`: (exit code, stdout + stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", *argv, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def facts(tmp_path_factory: pytest.TempPathFactory) -> Facts:
    from fastapi.testclient import TestClient

    from ml_api.app import create_app as create_ml_app
    from ml_api.settings import MLSettings
    from rag_api.app import create_app as create_rag_app
    from rag_api.settings import RAGSettings
    from receiver.app import create_app as create_receiver_app
    from receiver.settings import ReceiverSettings
    from simulations.eval import PUSHED_METRICS

    tmp = tmp_path_factory.mktemp("docs-facts")
    # No lifespan (the clients are not entered): routes, metrics and validation need no model or index.
    shared = {"lab_profile": True, "admin_token": None}
    ml = create_ml_app(MLSettings(model_dir=tmp / "models", **shared))
    rag = create_rag_app(RAGSettings(chroma_path=tmp / "chroma", **shared))
    receiver = create_receiver_app(ReceiverSettings(log=tmp / "notifications.jsonl", echo=False))

    metrics: set[str] = set()
    faults: dict[str, set[str]] = {}
    for name, app, invalid in (
        ("ml_api", ml, ("/predict", {"ticket_length": -1})),
        ("rag_api", rag, ("/chat", {"query": ""})),
    ):
        client = TestClient(app)
        assert client.get("/health").status_code == 200
        assert client.post(invalid[0], json=invalid[1]).status_code == 422
        faults[name] = set(client.get("/admin/faults").json()["known"])
        exposition = client.get("/metrics")
        assert exposition.status_code == 200
        metrics |= metric_names_from_exposition(exposition.text)
    metrics |= set(PUSHED_METRICS)  # the eval gate's, pushed to the Pushgateway (simulations/eval.py)

    return Facts(
        routes={"ml_api": _routes_of(ml), "rag_api": _routes_of(rag), "receiver": _routes_of(receiver)}
        | {name: {path: set() for path in paths} for name, paths in ALLOWED_EXTERNAL.items()},
        metrics={m for m in metrics if m.startswith(METRIC_PREFIXES)},
        recording_rules=_rule_names("record"),
        rule_groups=_rule_group_names(),
        alerts=_rule_names("alert"),
        make_targets=_make_targets(),
        class_names=_class_names(),
        faults=faults,
        help_text=_run_help,
    )


# ----------------------------------------------------------------------------------------- the markdown


@dataclass
class Doc:
    """A markdown file split into prose lines (code spans blanked) and code (spans and fenced blocks)."""

    name: str
    path: Path | None
    prose: list[tuple[int, str]] = field(default_factory=list)
    code: list[tuple[int, str, str]] = field(default_factory=list)  # (line, text, "span" | "block")
    headings: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, name: str, path: Path | None = None) -> Doc:
        doc = cls(name, path)
        fence: str | None = None
        block: list[str] = []
        block_start = 0
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.lstrip()
            if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
                fence, block, block_start = stripped[:3], [], number + 1
                continue
            if fence is not None:
                if stripped.startswith(fence):
                    doc.code.extend((block_start + i, t, "block") for i, t in _join_continuations(block))
                    fence = None
                else:
                    block.append(line)
                continue
            for span in re.finditer(r"(`+)(.+?)\1", line):
                doc.code.append((number, span.group(2).strip(), "span"))
            prose = re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)
            doc.prose.append((number, prose))
            if heading := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
                doc.headings.append(heading.group(1))
        return doc

    def all_text(self) -> Iterator[tuple[int, str]]:
        yield from self.prose
        yield from ((n, t) for n, t, _ in self.code)


def _join_continuations(lines: list[str]) -> Iterator[tuple[int, str]]:
    """Shell lines continued with a trailing backslash, joined (with the index of their first line)."""
    start, parts = 0, []
    for index, line in enumerate(lines):
        if not parts:
            start = index
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


def github_slugs(headings: Iterable[str]) -> set[str]:
    """Anchors GitHub generates for these headings (duplicates get -1, -2, ...)."""
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    for heading in headings:
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts as its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


# ------------------------------------------------------------------------------------------ the checker

_PATH = r"/[A-Za-z0-9_\-{}|.#/]*"
_SHELL_SEPARATOR = re.compile(r"\s(?:;|&&|\|\|)\s|;\s")
_CLIENT_CALL = re.compile(r"\.(get|post|put|patch|delete)\(\s*[\"'][^\"']*$")
_METHOD_PATH = re.compile(rf"\b({'|'.join(METHODS)})\s+({_PATH})")
_URL = re.compile(
    rf"(?:\b({'|'.join(METHODS)})\s+)?(?:https?://)?(?<![\w.])(?:localhost|127\.0\.0\.1):(\d{{2,5}})({_PATH})?"
)
_TOKEN = re.compile(r"(?<![\w.:/$-])([A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]*)*)")
_ALERTNAME = re.compile(r"\balertname\s*(=~|!=|!~|=)\s*[\"']?([A-Za-z0-9_]+)")
_MAKE = re.compile(r"(?:^|[;&|(]\s*|\$\s+|(?:^|\s)(?:[A-Z_][A-Z0-9_]*=\S*\s+)+)make\s+([a-z][\w-]*)")
_CLI = re.compile(rf"\bpython3?\s+-m\s+({CLI_MODULES})\b((?:[ \t]+[^\s|;&#`)]+)*)")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s+<?(\S+?)>?(?:\s|$)")


def _clean_path(raw: str) -> str:
    path = raw.rstrip(".,:;")
    if "#" in path and not path.startswith("/#"):
        path = path.split("#", 1)[0]
    return path.rstrip("/") or "/"


def _segments_match(template: str, path: str) -> bool:
    t_parts, p_parts = template.strip("/").split("/"), path.strip("/").split("/")
    if len(t_parts) != len(p_parts):
        return False
    for t, p in zip(t_parts, p_parts, strict=True):
        t_param, p_param = t.startswith("{"), p.startswith(("{", "<"))
        if p_param and not t_param:  # the doc's placeholder must be a parameter of the route too
            return False
        if not t_param and t != p:
            return False
    return True


class Checker:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts

    def check(self, doc: Doc) -> list[str]:
        problems: list[str] = []
        checks = (self.endpoints, self.metrics, self.alerts, self.make_targets, self.cli_flags, self.links)
        for check in checks:
            problems.extend(f"{doc.name}:{line}: {message}" for line, message in check(doc))
        return sorted(set(problems), key=lambda p: (p.split(":")[0], int(p.split(":")[1]), p))

    # endpoints ------------------------------------------------------------------------------------------
    def _matches(self, service: str, path: str) -> list[tuple[str, set[str]]]:
        return [(t, m) for t, m in self.facts.routes[service].items() if _segments_match(t, path)]

    def _endpoint(self, path: str, method: str | None, services: Iterable[str]) -> str | None:
        services = list(services)
        where = services[0] if len(services) == 1 else "any lab service or allow-listed API"
        shown = f"{method} {path}" if method else path
        matches = [(s, t, m) for s in services for t, m in self._matches(s, path)]
        if not matches:
            return f"endpoint `{shown}`: no such path in {where}"
        if method and not any(not m or method in m for _, _, m in matches):
            owners = ", ".join(sorted({s for s, _, _ in matches}))
            allowed = ", ".join(sorted({x for _, _, m in matches for x in m}))
            return f"endpoint `{shown}`: {owners} serves it with {allowed} only"
        fault_routes = [s for s, t, _ in matches if t == "/admin/faults/{name}" and s in self.facts.faults]
        name = path.rsplit("/", 1)[-1]
        if fault_routes and name != "all" and not name.startswith(("{", "<")):
            known = set().union(*(self.facts.faults[s] for s in fault_routes))
            if name not in known:
                owners = ", ".join(fault_routes)
                return f"fault `{name}` ({path}): {owners} knows only {', '.join(sorted(known))}"
        return None

    def _command_endpoints(self, text: str) -> Iterator[str]:
        curl_method = None
        if re.search(r"\bcurl\b", text):
            explicit = re.search(rf"(?:-X|--request)\s*({'|'.join(METHODS)})\b", text)
            sends = re.search(r"\s(?:-d|--data\S*|--json|-F|--form)\b", text)
            curl_method = explicit.group(1) if explicit else ("POST" if sends else "GET")
        seen_spans: list[tuple[int, int]] = []
        for match in _URL.finditer(text):
            seen_spans.append(match.span())
            port, raw = int(match.group(2)), match.group(3)
            service = SERVICE_PORTS.get(port)
            if service is None or not raw or (raw == "/" and service in OWN_SERVICES):
                continue
            path = _clean_path(raw)
            # httpx.post("http://localhost:8000/predict", ...) in a Python one-liner says its method too.
            client_call = _CLIENT_CALL.search(text, 0, match.start())
            client_method = client_call.group(1).upper() if client_call else None
            method = match.group(1) or client_method or (curl_method if service in OWN_SERVICES else None)
            if problem := self._endpoint(path, method, [service]):
                yield f"{problem} (port {port})"
        for match in _METHOD_PATH.finditer(text):
            if any(a <= match.start() < b for a, b in seen_spans):
                continue
            path = _clean_path(match.group(2))
            if path != "/" and (problem := self._endpoint(path, match.group(1), self.facts.routes)):
                yield problem

    def endpoints(self, doc: Doc) -> Iterator[tuple[int, str]]:
        for number, line in doc.all_text():
            # One shell command at a time: `curl A; curl -X POST B` gives A no method of B's.
            for text in _SHELL_SEPARATOR.split(line):
                yield from ((number, problem) for problem in self._command_endpoints(text))
        for number, text, kind in doc.code:
            if kind != "span":
                continue
            bare = re.fullmatch(r"(/[A-Za-z][\w\-{}|/]*)(\?\S*)?", text)
            if not bare or bare.group(1).strip("/").split("/")[0] in FS_ROOTS:
                continue
            if problem := self._endpoint(_clean_path(bare.group(1)), None, self.facts.routes):
                yield number, problem

    # metrics --------------------------------------------------------------------------------------------
    def metrics(self, doc: Doc) -> Iterator[tuple[int, str]]:
        for number, text, _ in doc.code:
            for match in _TOKEN.finditer(text):
                token, after = match.group(1), text[match.end() : match.end() + 1]
                if ":" in token:
                    parts = token.split(":")
                    shaped = len(parts) == 3 and all(re.fullmatch(r"[a-z_][a-z0-9_]*", p) for p in parts)
                    if shaped and token not in self.facts.recording_rules:
                        yield number, f"recording rule `{token}` is in no rule file of prometheus/"
                    continue
                if not token.startswith(METRIC_PREFIXES) or token != token.lower() or token.endswith("_"):
                    continue  # not a metric name, or only a prefix (`ml_`, `ml_feature_*`)
                if token in NOT_METRICS or token in self.facts.rule_groups:
                    continue
                if after in {".", "/", "("}:
                    continue  # a module, a file, a directory or a function call
                if token not in self.facts.metrics:
                    yield number, f"metric `{token}` is not exported by ml_api or rag_api"

    # alerts ---------------------------------------------------------------------------------------------
    def looks_like_alert(self, name: str) -> bool:
        return (
            re.fullmatch(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*", name) is not None
            and len(re.findall(r"[A-Z][a-z]+|[A-Z]+(?![a-z])|\d+", name)) >= 2
            and name.startswith(ALERT_PREFIXES)
            and name not in self.facts.class_names
        )

    def alerts(self, doc: Doc) -> Iterator[tuple[int, str]]:
        for number, text, kind in doc.code:
            if kind == "span" and self.looks_like_alert(text) and text not in self.facts.alerts:
                yield number, f"alert `{text}` is not in prometheus/rules/alerts.yml"
            for op, name in _ALERTNAME.findall(text):
                if op in {"=", "!="} and name not in self.facts.alerts:
                    yield number, f"alert `alertname={name}` is not in prometheus/rules/alerts.yml"

    # make -----------------------------------------------------------------------------------------------
    def make_targets(self, doc: Doc) -> Iterator[tuple[int, str]]:
        for number, text, _ in doc.code:
            for line in text.splitlines():
                for target in _MAKE.findall(line.strip()):
                    if target not in self.facts.make_targets:
                        yield number, f"`make {target}`: no such target in the Makefile"

    # CLI flags ------------------------------------------------------------------------------------------
    def cli_flags(self, doc: Doc) -> Iterator[tuple[int, str]]:
        for number, text, _ in doc.code:
            for match in _CLI.finditer(text):
                module, args = match.group(1), match.group(2).split()
                if module == "labctl" and args[:1] == ["demo"]:
                    module, args = "simulations", ["all", *args[1:]]  # it runs `simulations all ARGS`
                subs: list[str] = []
                if module in WITH_SUBCOMMANDS and args and not args[0].startswith("-"):
                    subs = [sub for sub in re.split(r"[{},|]", args[0]) if sub]
                    if not all(re.fullmatch(r"[a-z][\w-]*", sub) for sub in subs):
                        continue  # a placeholder (`<sub>`, `...`): which subcommand is unknown
                flags = [a.split("=", 1)[0] for a in args if a.startswith("--") and len(a) > 2]
                for sub in subs or [None]:
                    yield from self._flags(number, module, sub, flags)

    def _flags(
        self, number: int, module: str, sub: str | None, flags: list[str]
    ) -> Iterator[tuple[int, str]]:
        if sub is None and not flags:
            return
        argv = (module, sub) if sub else (module,)
        code, help_text = self.facts.help_text(argv)
        command = "python -m " + " ".join(argv)
        if code != 0:
            yield number, f"`{command} --help` fails (exit {code}): no such command?"
            return
        known = set(re.findall(r"(?<![\w-])(--[A-Za-z0-9][\w-]*)", help_text)) | {"--help"}
        for flag in flags:
            if flag not in known:
                yield number, f"`{command} {flag}`: no such flag in its --help"

    # links ----------------------------------------------------------------------------------------------
    def links(self, doc: Doc) -> Iterator[tuple[int, str]]:
        base = doc.path.parent if doc.path else ROOT / "docs"
        for number, text in doc.prose:
            targets = [m.group(1) for m in _LINK.finditer(text)]
            if ref := _REF_LINK.match(text):
                targets.append(ref.group(1))
            for target in targets:
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                if not file_part:
                    headings, where = doc.headings, "here"
                else:
                    resolved = (base / file_part).resolve()
                    if not resolved.exists():
                        yield number, f"link `{target}`: {file_part} does not exist"
                        continue
                    if not anchor or resolved.suffix != ".md":
                        continue
                    headings = Doc.parse(resolved.read_text(encoding="utf-8"), file_part).headings
                    where = f"in {file_part}"
                if anchor and anchor not in github_slugs(headings):
                    yield number, f"link `{target}`: no heading with that anchor {where}"


def _load(path: Path) -> Doc:
    return Doc.parse(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), path)


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s) in the docs:\n  " + "\n  ".join(problems)


# ------------------------------------------------------------------------------------------------ tests


def test_the_docs_exist() -> None:
    """Every stage doc is linked from the README's stage list, and every link there exists."""
    names = {p.name for p in STAGE_DOCS}
    linked = set(re.findall(r"\]\(docs/(stage-[\w-]+\.md)\)", (ROOT / "README.md").read_text()))
    assert len(names) >= 7 and linked == names, sorted(names ^ linked)
    for extra in ("troubleshooting.md", "notifications.md", "profiles.md", "metrics.md", "alerts.md"):
        assert (ROOT / "docs" / extra).is_file(), extra


def test_docs_name_only_real_endpoints_metrics_alerts_targets_flags_and_links(facts: Facts) -> None:
    checker = Checker(facts)
    problems = [problem for path in DOC_FILES for problem in checker.check(_load(path))]
    assert not problems, _report(problems)


def test_every_alert_has_a_runbook_and_a_stage(facts: Facts) -> None:
    assert len(facts.alerts) >= 10, facts.alerts
    runbooks = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    stages = "\n".join(p.read_text(encoding="utf-8") for p in STAGE_DOCS)
    problems = []
    for alert in sorted(facts.alerts):
        if not re.search(rf"^##+\s+{alert}\s*$", runbooks, flags=re.M):
            problems.append(f"{alert}: no section `## {alert}` in docs/runbooks.md")
        if not re.search(rf"\b{alert}\b", stages):
            problems.append(f"{alert}: not mentioned in any docs/stage-*.md")
    assert not problems, _report(problems)


SYNTHETIC = """\
# Bogus page

Call `GET /predict` and `POST /predictions`, then `DELETE /chat`; see `/drift/statuz` and
`POST /admin/faults/latency` (fine) but `POST /admin/faults/slowness` is not a fault.

```bash
curl -s localhost:8000/predict
curl -s -X POST localhost:8001/chat -d '{"query": "hi"}'
curl -s localhost:9090/api/v1/query_nonsense
curl -s localhost:8001/ready; curl -s -X POST localhost:8001/feedback -d '{}'
python -c 'import httpx; httpx.get("http://localhost:8001/monitor/inference")'
python -m simulations drift --drift-amount 2 --bogus-flag 3
python -m labctl up --no-such-option
python -m simulations teleport
make lab
make bogus-target
amtool silence add alertname=NoSuchAlertAtAll
```

```promql
rate(ml_bogus_requests_total[1m])
ml_predictions_total
service:ml_nothing:rate1m
ml_feature_ticket_length_characters_bucket
```

Alerts: `MLDataDriftDetected` is real, `MLBogusAlertFiring` is not; `MLSettings` is a class.
Links: [ok](metrics.md), [missing](no-such-file.md), [bad anchor](alerts.md#no-such-heading),
[good anchor](#bogus-page).
"""


def test_the_checker_reports_bogus_names_and_accepts_real_ones(facts: Facts) -> None:
    """The checker can fail: every bogus name of a synthetic page is reported, no real one is."""
    problems = Checker(facts).check(Doc.parse(SYNTHETIC, "synthetic.md", ROOT / "docs" / "synthetic.md"))
    text = "\n".join(problems)
    expected = [
        "synthetic.md:3: endpoint `GET /predict`: ml_api serves it with POST only",  # wrong method
        "endpoint `POST /predictions`: no such path",
        "endpoint `DELETE /chat`",
        "endpoint `/drift/statuz`: no such path",
        "fault `slowness`",
        "endpoint `GET /predict`: ml_api serves it with POST only (port 8000)",  # curl without -d
        "endpoint `/api/v1/query_nonsense`: no such path in prometheus",
        "`python -m simulations drift --bogus-flag`",
        "endpoint `GET /monitor/inference`: rag_api serves it with POST only (port 8001)",  # httpx.get
        "`python -m labctl up --no-such-option`",
        "`python -m simulations teleport --help` fails",
        "`make bogus-target`",
        "alert `alertname=NoSuchAlertAtAll`",
        "metric `ml_bogus_requests_total`",
        "recording rule `service:ml_nothing:rate1m`",
        "alert `MLBogusAlertFiring`",
        "link `no-such-file.md`",
        "link `alerts.md#no-such-heading`",
    ]
    missing = [e for e in expected if e not in text]
    assert not missing, f"not reported: {missing}\nreported:\n{text}"
    for real in (
        "/admin/faults/latency`",
        "--drift-amount",
        "`make lab`",
        "`ml_predictions_total`",
        "ml_feature_ticket_length_characters_bucket",
        "MLDataDriftDetected",
        "MLSettings",
        "POST /chat",
        "link `metrics.md`",
        "#bogus-page",
        "/ready",  # a GET, though the next command of its line is a POST
        "/feedback",
    ):
        assert real not in text, f"{real} wrongly reported:\n{text}"
    assert len(problems) == len(expected), text


def test_metric_names_follow_the_suffix_rules() -> None:
    exposition = '# TYPE a_total counter\n# TYPE h histogram\nh_bucket{le="1.0"} 1.0\n# TYPE g gauge\ng 1.0\n'
    assert metric_names_from_exposition(exposition) == {
        "a_total", "a_created", "h", "h_bucket", "h_sum", "h_count", "h_created", "g",
    }  # fmt: skip


def test_make_help_lists_every_target() -> None:
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert _make_targets() - set(re.findall(r"\bmake ([\w.-]+)", listed.stdout)) == set()


def test_github_slugs() -> None:
    assert github_slugs(["No data in Grafana", "`make lab` fails", "Step 1: set-up", "Step 1: set-up"]) == {
        "no-data-in-grafana",
        "make-lab-fails",
        "step-1-set-up",
        "step-1-set-up-1",
    }


def _alert_table(path: Path, columns: int) -> dict[str, list[str]]:
    """Rows (of `columns` cells or more) whose first cell is a backticked alert name: name -> cells."""
    rows: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`([A-Za-z0-9]+)`", cells[0])
        if line.startswith("| `") and name and len(cells) >= columns:
            rows.setdefault(name.group(1), cells)
    return rows
