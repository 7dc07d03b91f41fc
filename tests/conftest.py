from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realaigym"


@pytest.fixture
def realaigym_data() -> Path:
    """The real pendubot recordings beside the project; skips where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA}")
    return SHARED_DATA
