"""A member of staff: the /admin pages in a browser session, and the staff API with a token.

Edits prices (only of the products this member looks after, so the next read must show their own
price, nobody else's) and the stock of the hot products (each change recorded with its amount:
the stock invariant adds them up), ships, delivers and cancels orders. A save refused because
someone else changed the same field meanwhile is saved again now and then, as people do.
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal, InvalidOperation

from tests.soak import html
from tests.soak.client import Answer, Client
from tests.soak.journal import StockChange
from tests.soak.journeys import User
from tests.soak.tree import STAFF_PASSWORD

ROW_ID = re.compile(r"^v-(\d+)-id$")
ORDER_LINK = re.compile(r"^/admin/orders/[0-9A-Z-]+$")
WEIGHTS = {"price": 18, "stock": 25, "ship": 22, "deliver": 8, "cancel": 7, "look": 5}
ACTIONS = {"ship": "confirmed", "deliver": "shipped", "cancel": "pending"}


class Staff(User):
    kind = "staff"
    lane = 3

    def setup(self) -> None:
        self.api = Client(
            f"{self.name}-api", self.ports, self.journal, self.rng, f"10.3.200.{self.index + 1}"
        )
        self.email_address = f"staff{self.index}@soak.example.com"
        self.tracking = 0

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.api.close()

    async def begin(self) -> None:
        page = await self.client.get("/login?next=/admin/")
        form = html.form_to(page.text, "/login") if page.ok else None
        if form is not None:
            form.set("email", self.email_address)
            form.set("password", STAFF_PASSWORD)
            answer = await self.client.post("/login", data=form.fields)
            if not answer.ok:
                self.unexpected("staff sign in", answer)
        answer = await self.api.request(
            "POST",
            "/api/v1/auth/login",
            json_body={"email": self.email_address, "password": STAFF_PASSWORD},
        )
        token = (answer.json() or {}).get("access_token") if answer.status == 200 else None
        if token:
            self.api.headers["Authorization"] = f"Bearer {token}"
        else:
            self.unexpected("staff API login", answer)

    async def step(self) -> None:
        action = self.choose(WEIGHTS)
        if action in ACTIONS:
            await self.move(action)
        else:
            await getattr(self, action)()

    async def look(self) -> None:
        await self.client.get(self.rng.choice(("/admin/", "/admin/products", "/admin/orders")))

    # -- the product form --------------------------------------------------------------------

    async def _editor(self, product_id: int) -> html.Form | None:
        page = await self.client.get(f"/admin/products/{product_id}")
        form = html.form_to(page.text, f"/admin/products/{product_id}") if page.ok else None
        if form is None and page.ok:
            self.note(f"no product form on /admin/products/{product_id}")
        return form

    def _rows(self, form: html.Form) -> dict[int, str]:
        """variant id -> the row index of the form."""
        rows = {}
        for name, value in form.fields:
            found = ROW_ID.match(name)
            if found and value.isdigit():
                rows[int(value)] = found.group(1)
        return rows

    async def price(self) -> None:
        """Change one variant's price; the page the save leads to, and the product as the API
        shows it to this member next, must have the new price."""
        mine = self.catalog.price_products.get(self.index) or []
        if not mine:
            return
        form = await self._editor(self.rng.choice(mine))
        rows = self._rows(form) if form else {}
        if form is None or not rows:
            return
        variant_id, row = self.rng.choice(sorted(rows.items()))
        try:
            cents = int(Decimal(form.get(f"v-{row}-price")) * 100)
        except InvalidOperation:
            self.note(f"unreadable price {form.get(f'v-{row}-price')!r}")
            return
        new = max(100, round(cents * self.rng.uniform(0.8, 1.25) / 10) * 10)
        if new == cents:
            new += 10
        text = f"{new // 100}.{new % 100:02d}"
        form.set(f"v-{row}-price", text)
        slug, sku = form.get("slug"), form.get(f"v-{row}-sku")
        answer = await self.client.post(form.action, data=form.fields)
        if not (_saved(answer, form.action) and answer.ok):
            if self.answered(answer) and answer.status != 422:
                self.unexpected("price save", answer)
            return
        after = html.form_to(answer.text, form.action)
        shown = None
        if after is not None:
            shown_row = self._rows(after).get(variant_id)
            shown = after.get(f"v-{shown_row}-price") if shown_row else None
        self.journal.read(
            self.name,
            "the product page a price save leads to shows the new price",
            shown == text,
            f"{form.action} {sku}: saved {text}, shown {shown}",
        )
        product = await self.client.get(f"/api/v1/products/{slug}")
        if product.status == 200:
            prices = {
                v["sku"]: (v.get("price") or {}).get("amount")
                for v in (product.json() or {}).get("variants", [])
            }
            self.journal.read(
                self.name,
                "the product read next (API) shows the new price",
                prices.get(sku) == new,
                f"/api/v1/products/{slug} {sku}: saved {new}, shown {prices.get(sku)}",
            )

    async def stock(self) -> None:
        """Restock a hot variant (now and then correct it down); the change is recorded."""
        hot = self.rng.choice(self.catalog.hot)
        form = await self._editor(hot.product_id)
        rows = self._rows(form) if form else {}
        if form is None or not rows:
            return
        variant_id, row = self.rng.choice(sorted(rows.items()))
        old = int(form.get(f"v-{row}-stock") or 0)
        if self.rng.random() < 0.9 or old < 3:
            new = old + self.rng.randint(3, 15)
        else:
            new = old - self.rng.randint(1, 3)
        form.set(f"v-{row}-stock", str(new))
        answer = await self.client.post(form.action, data=form.fields)
        if answer.status == 422 and self.rng.random() < 0.5:
            # Someone changed the stock meanwhile (a sale): the page shows it beside ours and
            # saving again writes ours over what is stored now (the form's new `original`).
            again = html.form_to(answer.text, form.action)
            now = _original_stock(again, variant_id) if again else None
            again_row = self._rows(again).get(variant_id) if again else None
            if again is not None and now is not None and again_row is not None:
                again.set(f"v-{again_row}-stock", str(new))
                old, form = now, again
                answer = await self.client.post(form.action, data=form.fields)
        self._record(answer, form.action, variant_id, new - old)

    def _record(self, answer: Answer, action: str, variant_id: int, amount: int) -> None:
        saved = _saved(answer, action)
        lost = not answer.redirected and (answer.status is None or answer.status >= 500)
        if not saved and not lost:
            return  # refused (422): nothing written
        certain = saved
        change = StockChange(self.name, variant_id, amount, certain, time.time())
        self.journal.stock_changes.append(change)

    # -- orders ------------------------------------------------------------------------------

    async def move(self, action: str) -> None:
        """Ship, deliver or cancel an order found in the admin list, by form or by API."""
        status = ACTIONS[action]
        if action == "cancel" and self.rng.random() < 0.5:
            status = "confirmed"
        listing = await self.client.get(f"/admin/orders?status={status}")
        found = [
            link for link in html.links(listing.text, "/admin/orders/") if ORDER_LINK.match(link)
        ]
        if not found:
            return
        link = self.rng.choice(found[:10])
        number = link.rsplit("/", 1)[1]
        self.tracking += 1
        fields = {
            "ship": {"tracking_number": f"TRACK-{self.index}-{self.tracking}"},
            "deliver": {},
            "cancel": {"note": "soak: staff cancelled"},
        }[action]
        if self.rng.random() < 0.4:
            body = fields if action != "deliver" else None
            path = f"/api/v1/staff/orders/{number}/{action}"
            answer = await self.api.request("POST", path, json_body=body)
            if answer.status == 200:
                state = (answer.json() or {}).get("status")
                self.journal.read(
                    self.name,
                    "the staff API's answer to a move shows the new status",
                    state == _moved(action),
                    f"{number} {action}: {state}",
                )
            return
        page = await self.client.get(link)
        form = html.form_to(page.text, f"{link}/{action}") if page.ok else None
        if form is None:
            return  # someone moved it meanwhile: the page offers other actions
        for name, value in fields.items():
            form.set(name, value)
        answer = await self.client.post(form.action, data=form.fields)
        if _saved(answer, link) and answer.ok:
            shown = re.search(r'id="status">([a-z]+)<', answer.text)
            self.journal.read(
                self.name,
                "the order page a staff move leads to shows the new status",
                shown is not None and shown.group(1) == _moved(action),
                f"{number} {action}: {shown.group(1) if shown else None}",
            )


def _saved(answer: Answer, page: str) -> bool:
    """Whether a staff form's POST was answered with the 303 back to its page (a 303 to the
    sign-in page is no save)."""
    return answer.redirected and answer.path.partition("?")[0] == page


def _moved(action: str) -> str:
    return {"ship": "shipped", "deliver": "delivered", "cancel": "cancelled"}[action]


def _original_stock(form: html.Form, variant_id: int) -> int | None:
    """The stock of the variant as stored when the page was made (its `original` field)."""
    try:
        rows = json.loads(form.get("original"))["rows"]
        return int(rows[str(variant_id)]["stock"])
    except (ValueError, KeyError, TypeError):
        return None
