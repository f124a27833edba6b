"""An app client on the JSON API (/api/v1), as a mobile app would use it.

Signed in (register, login, refresh tokens, a bearer header) or a guest with the X-Cart-Token the
API handed out; browses products and search, changes its cart, checks out with an
Idempotency-Key (sending duplicates on purpose, at once and after the answer), lists its orders
and cancels some. After its own writes it checks that its next read shows them.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from tests.soak.client import Answer
from tests.soak.journal import CheckoutAttempt
from tests.soak.journeys import ADDRESS, CVC, EXPIRY, User, digits

API = "/api/v1"
WEIGHTS = {"browse": 25, "add": 22, "cart": 12, "checkout": 16, "refresh": 6, "orders": 8}


class AppClient(User):
    kind = "app"
    lane = 2

    def setup(self) -> None:
        self.account: tuple[str, str] | None = None  # email, password
        self.refresh_token: str | None = None
        self.cart_token: str | None = None
        self.keys = 0

    async def begin(self) -> None:
        if self.rng.random() < 0.6:
            email, password = self.email(), self.password()
            answer = await self.client.request(
                "POST",
                f"{API}/auth/register",
                json_body={"email": email, "password": password, "name": self.name},
            )
            if answer.status == 201:
                self.account = (email, password)
                self._session(answer.json())
            else:
                self.unexpected("register", answer)

    def _session(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("access_token"):
            self.client.headers["Authorization"] = f"Bearer {body['access_token']}"
            self.refresh_token = body.get("refresh_token")

    def _cart_headers(self) -> dict[str, str]:
        return {"X-Cart-Token": self.cart_token} if self.cart_token else {}

    async def step(self) -> None:
        action = self.choose(WEIGHTS)
        if action in ("refresh", "orders") and self.account is None:
            action = "browse"
        await getattr(self, action)()

    async def call(self, method: str, path: str, body: Any = None) -> Answer:
        """One API call; a 401 (an expired or revoked session) signs in again and retries."""
        answer = await self.client.request(
            method, f"{API}{path}", json_body=body, headers=self._cart_headers()
        )
        if answer.status == 401 and self.account is not None and await self.login():
            answer = await self.client.request(
                method, f"{API}{path}", json_body=body, headers=self._cart_headers()
            )
        return answer

    async def login(self) -> bool:
        assert self.account is not None
        self.client.headers.pop("Authorization", None)
        email, password = self.account
        answer = await self.client.request(
            "POST", f"{API}/auth/login", json_body={"email": email, "password": password}
        )
        if answer.status == 200:
            self._session(answer.json())
            return True
        self.unexpected("login", answer)
        return False

    async def browse(self) -> None:
        where = self.choose({"list": 3, "product": 4, "search": 3, "categories": 1})
        if where == "list":
            sort = self.rng.choice(("", "&sort=price_asc", "&sort=newest", "&in_stock=true"))
            await self.call("GET", f"/products?limit=20{sort}")
        elif where == "product" and self.catalog.products:
            slug = self.rng.choice(self.catalog.products + [h.slug for h in self.catalog.hot])
            await self.call("GET", f"/products/{slug}")
        elif where == "search" and self.catalog.words:
            await self.call("GET", f"/search?q={quote(self.rng.choice(self.catalog.words))}")
        else:
            await self.call("GET", "/categories")

    async def add(self, check: bool = True) -> None:
        _, sku = self.catalog.hot_pick(self.rng)
        quantity = self.rng.choice((1, 1, 2, 3))
        answer = await self.call("POST", "/cart/items", {"sku": sku, "quantity": quantity})
        if answer.status != 201:
            return
        body = answer.json() or {}
        if body.get("cart_token"):
            self.cart_token = body["cart_token"]
        if check:
            cart = await self.call("GET", "/cart")
            if cart.status == 200:
                skus = {item["sku"] for item in (cart.json() or {}).get("items", [])}
                self.journal.read(self.name, "API cart shows the line just added", sku in skus, sku)

    async def cart(self) -> None:
        """Change or remove a line, or several at once (concurrent calls of one client)."""
        cart = await self.call("GET", "/cart")
        items = (cart.json() or {}).get("items", []) if cart.status == 200 else []
        if not items:
            return
        if self.rng.random() < 0.2:
            await asyncio.gather(self.add(check=False), self.add(check=False), self._change(items))
            return
        item = self.rng.choice(items)
        if self.rng.random() < 0.3:
            answer = await self.call("DELETE", f"/cart/items/{item['variant_id']}")
            expected = None
        else:
            quantity = self.rng.choice((1, 2, 3))
            answer = await self.call(
                "PATCH", f"/cart/items/{item['variant_id']}", {"quantity": quantity}
            )
            expected = quantity
        if answer.status != 200:
            return
        again = await self.call("GET", "/cart")
        if again.status == 200:
            shown = {
                i["variant_id"]: i["quantity"] for i in (again.json() or {}).get("items", [])
            }.get(item["variant_id"])
            self.journal.read(
                self.name,
                "API cart shows the change just made",
                shown == expected,
                f"variant {item['variant_id']}: set {expected}, shown {shown}",
            )

    async def _change(self, items: list[dict[str, Any]]) -> None:
        item = self.rng.choice(items)
        await self.call("PATCH", f"/cart/items/{item['variant_id']}", {"quantity": 1})

    async def checkout(self) -> None:
        card = self.card()
        self.keys += 1
        key = f"{self.name}-{self.seed}-{self.keys}"
        body: dict[str, Any] = {
            "shipping_address": ADDRESS,
            "shipping_method": self.rng.choice(("standard", "express")),
            "card": {"number": card, "expiry": EXPIRY, "cvc": CVC},
        }
        if self.account is None:
            body["email"] = self.email("-guest")
        attempt = CheckoutAttempt(self.name, "api", key, digits(card), 1)
        self.journal.checkouts.append(attempt)

        async def submit() -> Answer:
            return await self.client.request(
                "POST",
                f"{API}/checkout",
                json_body=body,
                headers={"Idempotency-Key": key, **self._cart_headers()},
            )

        roll = self.rng.random()
        if roll < 0.2:  # the same key twice at once, on purpose
            attempt.submits = 2
            answers = list(await asyncio.gather(submit(), submit()))
        elif roll < 0.3:  # a retry after the answer, as after a lost connection
            attempt.submits = 2
            answers = [await submit(), await submit()]
        else:
            answers = [await submit()]
        for answer in answers:
            if answer.status == 201:
                number = (answer.json() or {}).get("number")
                if number:
                    attempt.numbers.append(number)
        if attempt.numbers and self.account is not None:
            number = attempt.numbers[0]
            seen = await self.call("GET", f"/orders/{number}")
            if not self.answered(seen):
                return  # no answer at all: the request invariant has it
            self.journal.read(
                self.name,
                "the order just placed is there (API)",
                seen.status == 200,
                f"{number}: {seen.status}",
            )

    async def refresh(self) -> None:
        if self.refresh_token is None:
            return
        answer = await self.client.request(
            "POST", f"{API}/auth/refresh", json_body={"refresh_token": self.refresh_token}
        )
        if answer.status == 200:
            self._session(answer.json())
        elif answer.status is not None and answer.status < 500:
            self.unexpected("refresh", answer)
            await self.login()

    async def orders(self) -> None:
        listed = await self.call("GET", "/orders")
        items = (listed.json() or {}).get("items", []) if listed.status == 200 else []
        if not items:
            return
        order = self.rng.choice(items)
        await self.call("GET", f"/orders/{order['number']}")
        if self.rng.random() < 0.25 and order.get("status") in ("pending", "confirmed"):
            await self.call(
                "POST", f"/orders/{order['number']}/cancel", {"note": "changed my mind"}
            )
