"""Versioned static URLs (web/assets.py)."""

from __future__ import annotations

from pathlib import Path

from web.assets import StaticUrls


def test_a_static_url_carries_a_version_that_follows_the_content(tmp_path: Path) -> None:
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "site.css").write_text("body { color: red }")
    before = StaticUrls(tmp_path)("css/site.css")
    assert before.startswith("/static/css/site.css?v=")
    (tmp_path / "css" / "site.css").write_text("body { color: blue }")
    after = StaticUrls(tmp_path)("css/site.css")
    assert after.startswith("/static/css/site.css?v=") and after != before


def test_an_unknown_file_gets_an_unversioned_url(tmp_path: Path) -> None:
    assert StaticUrls(tmp_path)("js/missing.js") == "/static/js/missing.js"
