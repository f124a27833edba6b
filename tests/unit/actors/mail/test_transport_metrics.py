"""aioshop_emails_total's kind label: the templates' names, nothing else."""

from __future__ import annotations

from pathlib import Path

from actors.mail import transport
from actors.mail.render import KINDS, ORDER_SUBJECTS, REFUND_KIND, RenderedEmail


def test_every_kind_an_actor_sends_is_a_label_value() -> None:
    kinds = (*ORDER_SUBJECTS, REFUND_KIND)
    sent = {*KINDS, *(f"order_{kind}" for kind in kinds), "low_stock"}
    assert sent == transport.EMAIL_KINDS
    assert all(transport.kind_label(kind) == kind for kind in sent)


def test_a_kind_outside_the_templates_is_other() -> None:
    for kind in ("", "order_base", "base", "Order_Placed", "x" * 100, "../verify_email"):
        assert transport.kind_label(kind) == "other"
    assert transport.kind_label(RenderedEmail("s", "t", "h").kind) == "other"


def test_the_kinds_are_the_templates_on_disk() -> None:
    folder = Path(transport.__file__).parent / "templates" / "email"
    for kind in transport.EMAIL_KINDS:
        assert (folder / f"{kind}.txt").exists() and (folder / f"{kind}.html").exists()
