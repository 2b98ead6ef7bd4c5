"""Ports and the rendered configuration of a native lab: targets, Prometheus, Alertmanager, rules, Grafana.

The repository's files are the source of truth (they carry the default ports of docs/metrics.md); a native
lab renders copies of them into its work directory with its own ports and paths, so several labs (the one
a user runs, a test's, a simulation's) can run side by side without touching the repository.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab_common.endpoints import ENDPOINTS, RECEIVER_INBOX_PATH, Ports
from lab_common.endpoints import free_ports as free_ports  # re-exported: the tests use it
from monitoring.render import Links

ROOT = Path(__file__).resolve().parents[1]

# Process -> (env var, default port), from the one table in lab_common.endpoints.
PORT_ENV: dict[str, tuple[str, int]] = {name: (e.env, e.port) for name, e in ENDPOINTS.items()}


_HOST_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):(\d{2,5})\b")


def rewrite_ports(text: str, replacements: Mapping[int, int]) -> str:
    """Replace the port of every local `host:port` whose port is a lab default; other ports stay."""

    def swap(match: re.Match[str]) -> str:
        port = int(match.group(2))
        return f"{match.group(1)}:{replacements.get(port, port)}"

    return _HOST_PORT.sub(swap, text)


def _map_strings(node: Any, fn) -> Any:
    if isinstance(node, str):
        return fn(node)
    if isinstance(node, list):
        return [_map_strings(item, fn) for item in node]
    if isinstance(node, dict):
        return {key: _map_strings(value, fn) for key, value in node.items()}
    return node


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dump_yaml(data: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- durations

_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(value: str | int | float) -> float:
    """Seconds of a Prometheus duration (`90s`, `5m`, `1h30m`)."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {value!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds % 1 else f"{int(seconds)}s"


# ------------------------------------------------------------------------------------------------- rules


def rule_files(prometheus_config: Path) -> list[Path]:
    """The rule files a Prometheus config loads (its globs resolved against the config's directory)."""
    config = _load_yaml(prometheus_config) or {}
    found: list[Path] = []
    for pattern in config.get("rule_files") or []:
        base = prometheus_config.parent
        path = Path(pattern)
        matches = sorted(path.parent.glob(path.name)) if path.is_absolute() else sorted(base.glob(pattern))
        found.extend(m for m in matches if m.is_file() and m not in found)
    return found


def shorten_rules(files: Iterable[Path], dest: Path, max_for: float) -> list[Path]:
    """Copies of rule files whose `for:` are scaled down so the longest is `max_for` seconds (fast
    end-to-end tests). Scaling, not capping, keeps their order: warnings wait longer than the criticals
    that inhibit them, so a critical is always active before its warning would be sent."""
    dest.mkdir(parents=True, exist_ok=True)
    loaded = [(src, _load_yaml(src) or {}) for src in files]
    rules = [
        rule
        for _, data in loaded
        for group in data.get("groups") or []
        for rule in group.get("rules") or []
        if "alert" in rule and "for" in rule
    ]
    longest = max((parse_duration(rule["for"]) for rule in rules), default=0.0)
    if longest > max_for:
        scale = max_for / longest
        for rule in rules:
            rule["for"] = format_duration(parse_duration(rule["for"]) * scale)
    return [_dump_yaml(data, dest / src.name) for src, data in loaded]


def contract_profile(text: str) -> str | None:
    """The profile whose `make generate` output `text` is (with the default links), else None."""
    from monitoring.alerts import ALERTS
    from monitoring.contract import PROFILES
    from monitoring.render import render_rules

    return next((p for p in PROFILES if render_rules(ALERTS, p) == text), None)


def render_rule_files(
    files: Iterable[Path], dest: Path, links: Links, *, max_for: float | None = None
) -> list[Path]:
    """Copies of the rule files for one lab. A file generated from the monitoring contract is rendered
    again with this lab's links (runbooks on its receiver, dashboards on its Grafana or, without one, the
    Prometheus graph), so every link of a notification answers; other files are copied as they are. With
    `max_for`, every `for:` is then scaled down (shorten_rules)."""
    from monitoring.alerts import ALERTS
    from monitoring.render import render_rules

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src in files:
        text = src.read_text(encoding="utf-8")
        profile = contract_profile(text)
        out = dest / src.name
        out.write_text(render_rules(ALERTS, profile, links) if profile else text, encoding="utf-8")
        written.append(out)
    if max_for is not None:
        written = shorten_rules(written, dest, max_for)
    return written


def lab_links(ports: Ports, *, grafana: bool) -> Links:
    """Where the notifications of a lab on `ports` link to (the names Prometheus's own links use)."""
    return Links(
        runbook_base=f"{ports.url('receiver_http', 'localhost')}/runbooks",
        dashboard_base=ports.url("grafana", "localhost") if grafana else None,
        prometheus_base=ports.url("prometheus", "localhost"),
    )


def alert_names(files: Iterable[Path]) -> list[str]:
    names = []
    for src in files:
        for group in (_load_yaml(src) or {}).get("groups") or []:
            names.extend(rule["alert"] for rule in group.get("rules") or [] if "alert" in rule)
    return names


# -------------------------------------------------------------------------------------------- rendering


@dataclass
class Rendered:
    """Paths of one lab's rendered configuration."""

    prometheus_config: Path
    alertmanager_config: Path
    slack_url_file: Path
    targets_dir: Path
    rules_dir: Path
    grafana_provisioning: Path | None


def render_targets(source_dir: Path, dest: Path, ports: Ports) -> list[Path]:
    """Every file_sd file of `source_dir`, with the lab's ports."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    replacements = ports.replacements()
    for src in sorted(source_dir.iterdir()):
        if src.is_file() and src.suffix in {".yml", ".yaml", ".json"}:
            out = dest / src.name
            out.write_text(rewrite_ports(src.read_text(encoding="utf-8"), replacements), encoding="utf-8")
            written.append(out)
    return written


def render_prometheus_config(
    source: Path,
    dest: Path,
    *,
    ports: Ports,
    targets_dir: Path,
    rules_dir: Path | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
) -> Path:
    """A copy of prometheus.yml for this lab.

    file_sd files are looked up by name in `targets_dir` (the rendered native targets), rule files in
    `rules_dir` (default: where the source config points), static targets and Alertmanager addresses get
    the lab's ports, and the intervals may be shortened (every job's own interval too).
    """
    config = _map_strings(_load_yaml(source) or {}, lambda s: rewrite_ports(s, ports.replacements()))
    glob_ = config.setdefault("global", {})
    if scrape_interval:
        glob_["scrape_interval"] = scrape_interval
        glob_["scrape_timeout"] = _timeout_for(scrape_interval, glob_.get("scrape_timeout"))
    if evaluation_interval:
        glob_["evaluation_interval"] = evaluation_interval

    rules = []
    for pattern in config.get("rule_files") or []:
        if rules_dir is not None:
            rules.append(str(rules_dir / Path(pattern).name))
        else:
            rules.append(str(pattern if Path(pattern).is_absolute() else source.parent / pattern))
    config["rule_files"] = rules

    def fix_sd(block: dict[str, Any]) -> None:
        for sd in block.get("file_sd_configs") or []:
            sd["files"] = [str(targets_dir / Path(f).name) for f in sd.get("files") or []]
            if scrape_interval:
                sd["refresh_interval"] = scrape_interval

    for job in config.get("scrape_configs") or []:
        fix_sd(job)
        if scrape_interval:
            if "scrape_interval" in job:
                job["scrape_interval"] = scrape_interval
            if "scrape_timeout" in job:
                job["scrape_timeout"] = _timeout_for(scrape_interval, job["scrape_timeout"])
    for am in (config.get("alerting") or {}).get("alertmanagers") or []:
        fix_sd(am)
    return _dump_yaml(config, dest)


def _timeout_for(interval: str, timeout: Any) -> str:
    # Prometheus refuses a scrape timeout longer than the interval.
    limit = parse_duration(interval)
    if timeout is None:
        return interval if limit < 10 else "10s"
    return format_duration(min(parse_duration(timeout), limit))


def render_slack_url_file(default_file: Path, dest: Path, ports: Ports) -> Path:
    """The webhook URL file Alertmanager reads (`api_url_file`), pointing at this lab's receiver."""
    if default_file.exists():
        url = rewrite_ports(default_file.read_text(encoding="utf-8").strip(), ports.replacements())
    else:
        url = f"http://127.0.0.1:{ports.receiver_http}/slack"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(url + "\n", encoding="utf-8")
    return dest


PASSWORD_FILE_KEYS = frozenset({"smtp_auth_password_file", "auth_password_file"})


def render_alertmanager_config(
    source: Path,
    dest: Path,
    *,
    ports: Ports,
    slack_url_file: Path,
    timings: Mapping[str, str] | None = None,
    templates_dir: Path | None = None,
) -> Path:
    """A copy of alertmanager.yml with the lab's ports (SMTP smarthost, webhooks), its Slack URL file,
    absolute template paths, and optionally other route timings (every route of the tree). With
    `templates_dir`, the templates are this lab's copies there (render_alertmanager_templates)."""
    config = _map_strings(_load_yaml(source) or {}, lambda s: rewrite_ports(s, ports.replacements()))

    def fix_urls(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"api_url_file", "slack_api_url_file"} and isinstance(value, str):
                    node[key] = str(slack_url_file)
                elif key in PASSWORD_FILE_KEYS and isinstance(value, str) and not Path(value).is_absolute():
                    # Alertmanager resolves these against its working directory, not the config's folder.
                    node[key] = str(source.parent / value)
                else:
                    fix_urls(value)
        elif isinstance(node, list):
            for item in node:
                fix_urls(item)

    fix_urls(config)
    templates = [
        t if Path(t).is_absolute() else str(source.parent / t) for t in config.get("templates") or []
    ]
    if templates and templates_dir is not None:
        templates = [str(render_alertmanager_templates(templates, templates_dir, ports) / "*.tmpl")]
    config["templates"] = templates
    if not config["templates"]:
        del config["templates"]
    if timings:

        def retime(route: dict[str, Any], top: bool) -> None:
            for key, value in timings.items():
                if top or key in route:
                    route[key] = value
            for child in route.get("routes") or []:
                retime(child, False)

        retime(config.setdefault("route", {}), True)
    return _dump_yaml(config, dest)


LINKS_TEMPLATE = "links.tmpl"  # alertmanager/templates/: where a notification links to "the alerts"


def native_links_template(ports: Ports) -> str:
    """links.tmpl for a native lab. Debian's Alertmanager has no web UI (`/` says so; its API works), so
    `.ExternalURL` is a dead end for a reader: the link goes to the receiver's inbox page instead, filtered on
    the group's alert, where its notifications and Alertmanager's alerts and silences (API v2) are listed."""
    inbox = ports.url("receiver_http", "localhost") + RECEIVER_INBOX_PATH
    return (
        "{{/* GENERATED by labctl for one native lab (labctl/config.py native_links_template); the\n"
        "  repository's alertmanager/templates/links.tmpl is for an Alertmanager with its web UI. */}}\n"
        '{{ define "lab.alerts.name" }}Alerts in the lab\'s inbox{{ end }}\n'
        f'{{{{ define "lab.alerts.url" }}}}{inbox}'
        "{{ with .GroupLabels.alertname }}?alert={{ . }}{{ end }}{{ end }}\n"
    )


def render_alertmanager_templates(patterns: Iterable[str], dest: Path, ports: Ports) -> Path:
    """Copies of the template files matched by `patterns` (absolute globs) in `dest`, links.tmpl replaced by
    this lab's (native_links_template). Returns `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for pattern in patterns:
        path = Path(pattern)
        for src in sorted(path.parent.glob(path.name)):
            if src.is_file():
                shutil.copyfile(src, dest / src.name)
    (dest / LINKS_TEMPLATE).write_text(native_links_template(ports), encoding="utf-8")
    return dest


def render_grafana_provisioning(source: Path, dest: Path, *, ports: Ports, dashboards_dir: Path) -> Path:
    """Grafana's provisioning with the lab's Prometheus/Alertmanager URLs and the repository's dashboards."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    compose_hosts = {"prometheus": ports.prometheus, "alertmanager": ports.alertmanager}
    for path in dest.rglob("*.y*ml"):
        text = rewrite_ports(path.read_text(encoding="utf-8"), ports.replacements())
        # Compose service names become local addresses.
        for host, port in compose_hosts.items():
            text = re.sub(rf"http://{host}:\d+", f"http://127.0.0.1:{port}", text)
        data = yaml.safe_load(text) or {}
        for provider in data.get("providers") or []:
            options = provider.setdefault("options", {})
            if "path" in options:
                options["path"] = str(dashboards_dir)
        _dump_yaml(data, path)
    return dest
