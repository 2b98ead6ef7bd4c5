"""The lab as the simulations see it: labctl's one client of the lab's HTTP APIs (labctl.client).

`Lab` is that client; `LabError` carries a hint a person can act on when the lab is not what a simulation
expects.
"""

from __future__ import annotations

from labctl.client import LabClient as Lab
from labctl.client import LabError, LabUrls

__all__ = ["Lab", "LabError", "LabUrls"]
