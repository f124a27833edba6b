"""The pages' Jinja Environment answers `x.y` exactly as Jinja's own does, only faster for dicts."""

from __future__ import annotations

from types import SimpleNamespace

import jinja2
import pytest

from web.render import Environment

TEMPLATE = (
    "{{ d.name }}|{{ d.missing is undefined }}|{{ d['name'] }}|"
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{{ o.name }}|{{ n.name }}"
)


@pytest.mark.parametrize("environment", [jinja2.Environment, Environment])
def test_attribute_lookups_are_jinjas(environment: type[jinja2.Environment]) -> None:
    # A key named like a dict method stays the method, as in Jinja: `d.items()` still works.
    data = {"name": "Mug <b>", "items": "not the method"}
    page = environment(autoescape=True).from_string(TEMPLATE)
    rendered = page.render(d=data, o=SimpleNamespace(name="Tee"), n=None)
    assert rendered == (
        "Mug &lt;b&gt;|True|Mug &lt;b&gt;|name=Mug &lt;b&gt;;items=not the method;|Tee|"
    )


def test_a_missing_key_is_undefined_and_strict_undefined_still_raises() -> None:
    env = Environment(undefined=jinja2.StrictUndefined)
    with pytest.raises(jinja2.UndefinedError, match="'dict object' has no attribute 'nope'"):
        env.from_string("{{ d.nope }}").render(d={})
