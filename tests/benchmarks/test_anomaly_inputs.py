"""benchmarks.anomaly on the inputs a held-out NAB-layout directory may hold: NAB's own label file
(`labels/combined_windows.json`) or none, irregular timestamps, a 22,695-point series, a constant one,
negative values, NaN and empty rows, a file with no rows. The run must finish and write every series'
results file, one row per input row, scores in [0, 1]."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import anomaly as bench
from benchmarks import nab_score

FMT = "%Y-%m-%d %H:%M:%S"


def needs_prometheus() -> None:
    for name in ("promtool", "prometheus"):
        if shutil.which(name) is None:
            pytest.skip(f"{name} is not on PATH (`make tools`)")


def write(path: Path, stamps: pd.DatetimeIndex, values: list[str] | np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": stamps.strftime(FMT), "value": values}).to_csv(path, index=False)


def crafted(data: Path, rng: np.random.Generator) -> dict[str, int]:
    """The crafted files; returns each key's row count."""
    n = 700
    grid = pd.date_range("2015-03-01", periods=n, freq="5min")
    irregular = pd.Timestamp("2015-03-01") + pd.to_timedelta(np.cumsum(rng.integers(1, 900, n)), unit="s")
    write(data / "realOdd" / "irregular.csv", pd.DatetimeIndex(irregular), rng.normal(50, 2, n))
    write(data / "realOdd" / "constant.csv", grid, np.full(n, 3.0))
    negative = rng.normal(-40, 1, n)
    negative[500:] -= 30
    write(data / "realOdd" / "negative.csv", grid, negative)
    holes = [f"{v:.3f}" for v in rng.normal(10, 1, n)]
    for i in range(100, 160):
        holes[i] = ""
    holes[300], holes[301] = "nan", "NaN"
    write(data / "realOdd" / "nan_rows.csv", grid, holes)
    long = 22_695
    wave = 70 + 5 * np.sin(np.arange(long) * 2 * np.pi / 288) + rng.normal(0, 0.5, long)
    wave[20_000:] += 25
    write(data / "realLong" / "machine.csv", pd.date_range("2014-01-01", periods=long, freq="5min"), wave)
    (data / "realOdd" / "no_rows.csv").write_text("timestamp,value\n")
    return {
        "realOdd/irregular.csv": n,
        "realOdd/constant.csv": n,
        "realOdd/negative.csv": n,
        "realOdd/nan_rows.csv": n,
        "realLong/machine.csv": long,
        "realOdd/no_rows.csv": 0,
    }


def check_results(output: Path, rows: dict[str, int]) -> dict[str, pd.DataFrame]:
    frames = {}
    for key, count in rows.items():
        frame = pd.read_csv(output / key)
        assert list(frame.columns) == ["timestamp", "value", "anomaly_score", "label"], key
        assert len(frame) == count, key
        assert frame["anomaly_score"].between(0, 1).all(), key
        frames[key] = frame
    return frames


def test_odd_series_with_nab_label_file(tmp_path: Path) -> None:
    needs_prometheus()
    data, output = tmp_path / "data", tmp_path / "out"
    rows = crafted(data, np.random.default_rng(3))
    start = pd.Timestamp("2014-01-01") + pd.Timedelta(minutes=5 * 19_900)
    window = [[str(start), str(start + pd.Timedelta(hours=16))]]
    labels = {key: [] for key in rows} | {"realLong/machine.csv": window}
    (data / "labels").mkdir()
    (data / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    assert bench.main(["--data", str(data), "--output", str(output)]) == 0
    frames = check_results(output, rows)
    assert frames["realLong/machine.csv"]["label"].sum() == 16 * 12 + 1
    assert (frames["realOdd/constant.csv"]["anomaly_score"] == 0).all()
    # The shift 8 days after the first three weeks' wave is found inside its window.
    machine = frames["realLong/machine.csv"]
    assert (machine["anomaly_score"][machine["label"] == 1] >= 0.5).any()
    assert nab_score.main(["--data", str(data), "--results", str(output)]) == 0


def test_no_label_file(tmp_path: Path) -> None:
    needs_prometheus()
    data, output = tmp_path / "data", tmp_path / "out"
    grid = pd.date_range("2015-03-01", periods=400, freq="5min")
    write(data / "plain" / "a.csv", grid, np.random.default_rng(1).normal(0, 1, 400))
    write(data / "plain" / "b.csv", grid, [""] * 400)  # no value at all
    assert bench.main(["--data", str(data), "--output", str(output)]) == 0
    frames = check_results(output, {"plain/a.csv": 400, "plain/b.csv": 400})
    assert all((frame["label"] == 0).all() for frame in frames.values())
    assert (frames["plain/b.csv"]["anomaly_score"] == 0).all()


def test_only_empty_series_need_no_prometheus(tmp_path: Path) -> None:
    data, output = tmp_path / "data", tmp_path / "out"
    (data / "c").mkdir(parents=True)
    (data / "c" / "empty.csv").write_text("timestamp,value\n")
    assert bench.main(["--data", str(data), "--output", str(output)]) == 0
    assert len(pd.read_csv(output / "c" / "empty.csv")) == 0
