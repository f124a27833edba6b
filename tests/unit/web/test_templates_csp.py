"""The page templates hold nothing the Content-Security-Policy (web.security) would refuse:
no inline script, no inline event handler, no `javascript:` URL, no <style> element. Every
template is read, including pages the browser tests never open."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from web.security import PAGE_POLICY

TEMPLATES = sorted((Path(__file__).parents[3] / "web" / "templates").rglob("*.html"))
SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE | re.DOTALL)


def test_there_are_templates() -> None:
    assert len(TEMPLATES) > 20


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_template_has_nothing_the_policy_refuses(template: Path) -> None:
    text = template.read_text("utf-8")
    for attributes in SCRIPT.findall(text):
        # A script is a file of ours, or a JSON data block (never run, so never refused).
        data = ('type="application/json"', 'type="application/ld+json"')
        assert "src=" in attributes or any(kind in attributes for kind in data), attributes
    assert not HANDLER.search(text), HANDLER.search(text)
    assert "javascript:" not in text.lower()
    assert "<style" not in text.lower()


def test_the_page_policy_allows_no_inline_script() -> None:
    script_src = next(d for d in PAGE_POLICY.split("; ") if d.startswith("script-src "))
    assert script_src == "script-src 'self'"
    assert "unsafe-eval" not in PAGE_POLICY and "style-src 'self'" in PAGE_POLICY
