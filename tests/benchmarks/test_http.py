"""benchmarks.http's own plumbing (the benchmark itself is run by hand: `make bench`): which cores it pins
to, and that no server is left running when one of them cannot start."""

from __future__ import annotations

import pytest

from benchmarks import http


def test_the_cores_pinned_are_ones_this_process_may_use() -> None:
    assert http.bench_cpus({0, 1}) == (0, 1)
    # A container or `taskset -c 2,3`: cores 0 and 1 are not allowed, and pinning to them failed every child.
    assert http.bench_cpus({3, 2}) == (2, 3)
    assert http.bench_cpus({5}) == (None, None)  # one core: server and client share it, nothing pinned
    assert http._pin(None) is None


def test_a_server_that_cannot_start_does_not_leave_the_other_running(monkeypatch: pytest.MonkeyPatch) -> None:
    apps = {
        "bare": ("benchmarks.bare_app:app", {}, "/docs"),
        "broken": ("benchmarks.no_such_module:app", {}, "/docs"),  # uvicorn exits: serve raises SystemExit
    }
    started: list = []
    real_serve = http.serve

    def serve(app: str, env: dict[str, str], ready_path: str):
        process, base = real_serve(app, env, ready_path, timeout=60)
        started.append(process)
        return process, base

    monkeypatch.setattr(http, "serve", serve)  # the real one, recording what it started
    with pytest.raises(SystemExit), http.serving(apps):
        pass
    assert len(started) == 1, "the bare app started, the broken one never answered"
    assert started[0].poll() is not None, "the bare app's server was left running"
