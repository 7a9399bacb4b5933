"""Tests of the Python tools under tools/, and of the documents' structure (run by scripts/check-tooling.sh, so by `make test`)."""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))
