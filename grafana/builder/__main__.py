"""`python -m grafana.builder` (`make dashboards`): writes grafana/dashboards/<uid>.json, one per board."""

from __future__ import annotations

import sys

from .registry import write


def main() -> int:
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
