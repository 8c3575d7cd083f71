from __future__ import annotations

import shutil

import pytest


@pytest.hookimpl(trylast=True)  # after -m has deselected: the unit lane needs neither tool
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The audio tools are installed by scripts/setup.sh; without them a test would fail for the
    # wrong reason, so say so loudly instead of letting it look like a product failure.
    if not any(item.get_closest_marker("integration") or item.get_closest_marker("tools") for item in items):
        return
    missing = [t for t in ("ffmpeg", "espeak-ng") if shutil.which(t) is None]
    if missing:
        raise pytest.UsageError(f"missing {', '.join(missing)}: run scripts/setup.sh first")
