"""The server-drawn SVG charts: valid XML, one drawn point per sample, gaps kept, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from actors.ops.history import Point
from web.ops.charts import Chart, Series, draw

SVG = "{http://www.w3.org/2000/svg}"
P95 = Series("request_p95_seconds", "Request time, 95th percentile", "s", "unused")


def parse(markup: str) -> ET.Element:
    """Our own SVG, parsed (the stdlib parser: no entities or DTD in what draw() makes)."""
    return ET.fromstring(markup)  # noqa: S314


def drawn_points(root: ET.Element) -> int:
    """How many samples the SVG draws: polyline vertices plus lone dots."""
    vertices = sum(len(line.attrib["points"].split()) for line in root.iter(f"{SVG}polyline"))
    return vertices + len(list(root.iter(f"{SVG}circle")))


def chart_of(values: list[float | None], series: Series = P95) -> Chart:
    since = 1_800_000_000.0
    points = [Point(since + 60 * (i + 1), v) for i, v in enumerate(values)]
    return Chart(series, points, since, since + 60 * len(values))


def test_a_chart_is_valid_svg_with_a_point_per_sample_and_its_title() -> None:
    values: list[float | None] = [0.01 * i for i in range(1, 61)]
    root = parse(str(draw(chart_of(values))))
    assert root.tag == f"{SVG}svg" and root.attrib["role"] == "img"
    assert drawn_points(root) == len(values)
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.text == "Request time, 95th percentile (s)"
    assert desc is not None and "60 samples" in (desc.text or "")
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any(t.endswith("UTC") for t in texts)  # times on the x axis
    units = [t for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "axis-unit"]
    assert [u.text for u in units] == ["seconds"]  # the y axis's unit
    last = [t for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "last"]
    assert last and last[0].text == "last 600 ms"


def test_missing_samples_leave_gaps_and_a_lone_sample_is_a_dot() -> None:
    values: list[float | None] = [1, 2, 3, None, None, 4, 5, None, 6, None]
    root = parse(str(draw(chart_of(values))))
    lines = list(root.iter(f"{SVG}polyline"))
    dots = list(root.iter(f"{SVG}circle"))
    assert [len(line.attrib["points"].split()) for line in lines] == [3, 2]
    assert len(dots) == 1
    assert drawn_points(root) == sum(v is not None for v in values)


def test_an_empty_chart_says_so() -> None:
    root = parse(str(draw(chart_of([None] * 5))))
    assert drawn_points(root) == 0
    assert "no samples" in ET.tostring(root, encoding="unicode")


def test_text_in_a_chart_is_escaped() -> None:
    hostile = Series("x", '<script>alert("x")</script> & co', "/min", "unused")
    markup = str(draw(chart_of([1.0, 2.0], hostile)))
    assert "<script>" not in markup
    root = parse(markup)
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == '<script>alert("x")</script> & co (/min)'
