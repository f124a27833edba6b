"""Reading the /ops pages as an operator reads them: the overview's lights and first numbers, the
workers page's rows, the queues page's rows. Only what the templates mark (data- attributes and
the cells' classes), with the standard library's HTMLParser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
MARKS = frozenset(
    {"data-component", "data-number", "data-kind", "data-status", "data-census", "data-queue"}
)
CLASSES = frozenset({"ready", "delayed", "unacked", "dead", "consumers", "oldest", "form-error"})


@dataclass
class Marked:
    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Collector(HTMLParser):
    """Every element carrying one of MARKS or CLASSES, in page order, with its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Marked] = []
        self._open: list[tuple[str, Marked | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        marked = None
        if MARKS & a.keys() or CLASSES & set(a.get("class", "").split()):
            marked = Marked(tag, a)
            self.found.append(marked)
        if tag not in VOID:
            self._open.append((tag, marked))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for _, marked in self._open:
            if marked is not None:
                marked.parts.append(data)


def marked(html: str) -> list[Marked]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.found


@dataclass(frozen=True)
class Light:
    component: str
    colour: str  # green, amber, red, grey
    reason: str


@dataclass
class Overview:
    lights: list[Light]
    numbers: dict[str, str]  # data-number -> the tile's number as shown


def overview(html: str) -> Overview:
    lights, numbers = [], {}
    for element in marked(html):
        if "data-component" in element.attrs:
            component = element.attrs["data-component"]
            colour = element.attrs.get("data-status", "?")
            # "Redis: red, ConnectionError ..." -> the reason after the name and the colour
            reason = element.text.partition(": ")[2].removeprefix(f"{colour}, ")
            lights.append(Light(component, colour, reason))
        elif "data-number" in element.attrs:
            numbers[element.attrs["data-number"]] = element.text
    return Overview(lights, numbers)


@dataclass(frozen=True)
class ProcessRow:
    kind: str  # worker, relay
    host: str  # the machine's HOST_NAME
    pid: str
    status: str  # green, red, grey
    reason: str  # "silent for 17 s"


@dataclass
class Workers:
    rows: list[ProcessRow]
    census: dict[str, str]  # kind -> "Workers: 2 alive, 1 silent, 0 stopped."


def workers(html: str) -> Workers:
    rows, census = [], {}
    kind, host, pid = "", "", ""
    for element in marked(html):
        if element.tag == "tr" and "data-kind" in element.attrs:
            kind, pid = element.attrs["data-kind"], element.attrs.get("data-pid", "?")
            # data-process is kind:host:pid (a host name has no ":")
            host = element.attrs.get("data-process", "?:?:?").split(":")[1]
        elif element.tag == "td" and "data-status" in element.attrs and kind:
            status = element.attrs["data-status"]
            rows.append(ProcessRow(kind, host, pid, status, element.text))
        elif "data-census" in element.attrs:
            census[element.attrs["data-census"]] = element.text
    return Workers(rows, census)


@dataclass
class Queues:
    rows: dict[str, dict[str, str]]  # queue -> {"ready": "3", "dead": "1", ...}
    error: str | None  # the page's "The queues cannot be read now" alert


def queues(html: str) -> Queues:
    rows: dict[str, dict[str, str]] = {}
    error = None
    current: dict[str, str] | None = None
    for element in marked(html):
        if element.tag == "tr" and "data-queue" in element.attrs:
            current = rows.setdefault(element.attrs["data-queue"], {})
        elif "form-error" in element.classes and "queues cannot be read" in element.text:
            error = element.text
        elif current is not None and element.tag == "td":
            for name in CLASSES & element.classes:
                current[name] = element.text
    return Queues(rows, error)
