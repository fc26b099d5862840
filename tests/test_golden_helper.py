"""tests/conftest.py `assert_golden`: only UPDATE_GOLDEN=1 rewrites a golden file; any
other value (0, false) compares, so a stale golden still fails."""

from __future__ import annotations

import pytest

from tests.conftest import assert_golden


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_only_update_golden_1_rewrites(tmp_path, monkeypatch, value):
    golden = tmp_path / "g.txt"
    golden.write_text("old\n")
    monkeypatch.setenv("UPDATE_GOLDEN", value)
    with pytest.raises(AssertionError, match="differs"):
        assert_golden(golden, "new\n")
    assert golden.read_text() == "old\n"
    monkeypatch.setenv("UPDATE_GOLDEN", "1")
    assert_golden(golden, "new\n")
    assert golden.read_text() == "new\n"
