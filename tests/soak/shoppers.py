"""A shopper on the storefront's HTML pages, as a browser without JavaScript would use them.

It browses (home, categories, search, products), adds to its cart from product pages, changes
and removes lines on the cart page, sometimes from "several tabs" at once (concurrent requests
with one cookie jar), signs up, in and out, checks out with a random test card through the form
(its CSRF token and idempotency token included), sometimes submitting it twice, and looks at and
cancels its orders. After its own writes it checks that the next page shows them.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

from tests.soak import html
from tests.soak.client import Answer
from tests.soak.journal import CheckoutAttempt
from tests.soak.journeys import ADDRESS, CVC, EXPIRY, User, digits

THANKS = re.compile(r"^/orders/([0-9A-Z-]+)/thanks$")
WEIGHTS = {
    "browse": 24,
    "add_hot": 20,
    "add_any": 8,
    "cart": 10,
    "tabs": 6,
    "checkout": 16,
    "account": 6,
    "orders": 5,
}


class Shopper(User):
    kind = "shopper"
    lane = 1

    def setup(self) -> None:
        self.registered: tuple[str, str] | None = None  # email, password
        self.signed_in = False
        self.cart_lines = 0  # as the last cart page showed it

    async def begin(self) -> None:
        await self.client.get("/")

    async def step(self) -> None:
        action = self.choose(WEIGHTS)
        if action == "checkout" and self.cart_lines == 0:
            action = "add_hot"
        await getattr(self, action)()

    # -- browsing ---------------------------------------------------------------------------

    async def browse(self) -> None:
        where = self.choose({"home": 2, "category": 3, "search": 3, "product": 4})
        if where == "home":
            answer = await self.client.get("/")
            found = html.links(answer.text, "/products/") if answer.ok else []
            if found:
                await self.client.get(self.rng.choice(found))
        elif where == "category" and self.catalog.categories:
            slug = self.rng.choice(self.catalog.categories)
            page = self.rng.choice(("", "?sort=price_asc", "?in_stock=true", ""))
            await self.client.get(f"/c/{slug}{page}")
        elif where == "search" and self.catalog.words:
            query = quote(" ".join(self.rng.sample(self.catalog.words, self.rng.choice((1, 2)))))
            await self.client.get(f"/search?q={query}")
        elif self.catalog.products:
            await self.client.get(f"/products/{self.rng.choice(self.catalog.products)}")

    # -- the cart ---------------------------------------------------------------------------

    async def add_hot(self) -> None:
        slug, sku = self.catalog.hot_pick(self.rng)
        await self.add(slug, sku, check=True)

    async def add_any(self) -> None:
        if self.catalog.products:
            await self.add(self.rng.choice(self.catalog.products), None, check=True)

    async def add(self, slug: str, sku: str | None, *, check: bool) -> Answer | None:
        """Add from the product page (`sku`: the variant a picker would choose, else the
        page's own); with `check`, the cart page the add leads to must show the line."""
        page = await self.client.get(f"/products/{slug}")
        form = html.form_to(page.text, "/cart/items") if page.ok else None
        if form is None:
            if page.ok:
                self.note(f"no add-to-cart form on /products/{slug}")
            return None
        if sku is not None:
            form.set("sku", sku)
        sku = form.get("sku")
        if not sku:
            return None  # sold out or no variant chosen: nothing to add
        form.set("quantity", str(self.rng.choice((1, 1, 1, 2, 3))))
        answer = await self.client.post("/cart/items", data=form.fields)
        if answer.redirected and answer.path == "/cart" and answer.ok:
            self.cart_lines = answer.text.count('class="cart-line')
            if check:
                shown = f"SKU {sku}" in answer.text
                self.journal.read(self.name, "cart page shows the line just added", shown, sku)
        return answer

    async def cart(self, check: bool = True) -> None:
        """Change a line's quantity or remove it; with `check`, the cart page it leads to must
        show the change."""
        page = await self.client.get("/cart")
        if not page.ok:
            return
        lines = [f for f in html.forms(page.text) if re.fullmatch(r"/cart/items/\d+", f.action)]
        self.cart_lines = len(lines)
        if not lines:
            return
        form = self.rng.choice(lines)
        variant = form.action.rsplit("/", 1)[1]
        if self.rng.random() < 0.35:
            answer = await self.client.post(f"{form.action}/remove", data=form.fields)
            if check and answer.redirected and answer.ok:
                gone = f'id="line-{variant}"' not in answer.text
                self.journal.read(self.name, "cart page lacks the line just removed", gone, variant)
            return
        quantity = self.rng.choice((0, 1, 2, 3, 5))
        form.set("quantity", str(quantity))
        answer = await self.client.post(form.action, data=form.fields)
        if check and answer.redirected and answer.ok:
            shown = _quantity_shown(answer.text, variant)
            expected = None if quantity == 0 else str(quantity)
            self.journal.read(
                self.name,
                "cart page shows the quantity just set",
                shown == expected,
                f"variant {variant}: set {quantity}, shown {shown}",
            )

    async def tabs(self) -> None:
        """Several tabs of one browser change the cart at once; no read-your-writes check
        (the tabs' writes race), but every answer counts for the other invariants."""
        work = []
        for _ in range(self.rng.choice((2, 3))):
            if self.rng.random() < 0.6:
                slug, sku = self.catalog.hot_pick(self.rng)
                work.append(self.add(slug, sku, check=False))
            else:
                work.append(self.cart(check=False))
        await asyncio.gather(*work)
        page = await self.client.get("/cart")
        if page.ok:
            self.cart_lines = page.text.count('class="cart-line')

    # -- checkout ---------------------------------------------------------------------------

    async def checkout(self) -> None:
        page = await self.client.get("/checkout")
        if not page.ok or page.redirected:
            self.cart_lines = 0 if page.redirected else self.cart_lines
            return
        form = html.form_to(page.text, "/checkout")
        if form is None:
            self.note("no checkout form on /checkout")
            return
        card = self.card()
        if not self.signed_in:
            form.set("email", self.email("-guest"))
        saved = [value for value in form.radios.get("address_id", []) if value != "new"]
        if saved and self.rng.random() < 0.7:
            form.set("address_id", self.rng.choice(saved))
        else:
            form.set("address_id", "new")
            for name, value in ADDRESS.items():
                form.set(name, value)
        if form.radios.get("shipping_method"):
            form.set("shipping_method", self.rng.choice(form.radios["shipping_method"]))
        form.set("card_number", card)
        form.set("card_expiry", EXPIRY)
        form.set("card_cvc", CVC)
        attempt = CheckoutAttempt(self.name, "store", form.get("idempotency_key"), digits(card), 1)
        self.journal.checkouts.append(attempt)
        roll = self.rng.random()
        if roll < 0.15:  # a double click: two submits at once
            attempt.submits = 2
            answers = await asyncio.gather(*(self._submit(form.fields) for _ in range(2)))
        elif roll < 0.25:  # the answer seemed slow: submitted again after it came
            attempt.submits = 2
            answers = [await self._submit(form.fields), await self._submit(form.fields)]
        else:
            answers = [await self._submit(form.fields)]
        for answer in answers:
            found = THANKS.match(answer.path) if answer.redirected else None
            if found is None:
                continue
            attempt.numbers.append(found.group(1))
            if not self.answered(answer):
                continue  # no page at all: the request invariant has it
            self.journal.read(
                self.name,
                "the confirmation page after checkout shows the order",
                answer.ok and found.group(1) in answer.text,
                f"{answer.path}: {answer.status}",
            )
        if attempt.numbers:
            self.cart_lines = 0
        elif any(a.status == 409 for a in answers) and self.rng.random() < 0.7:
            await self.cart()  # out of stock: change the cart before trying again

    async def _submit(self, fields: list[tuple[str, str]]) -> Answer:
        return await self.client.post("/checkout", data=fields)

    # -- account ----------------------------------------------------------------------------

    async def account(self) -> None:
        if self.signed_in:
            if self.rng.random() < 0.5:
                await self.sign_out()
            else:
                await self.client.get("/account")
        elif self.registered is None:
            await self.sign_up()
        else:
            await self.sign_in()

    async def sign_up(self) -> None:
        page = await self.client.get("/register")
        form = html.form_to(page.text, "/register") if page.ok else None
        if form is None:
            return
        email, password = self.email(), self.password()
        form.set("name", self.name.title())
        form.set("email", email)
        form.set("password", password)
        answer = await self.client.post("/register", data=form.fields)
        if answer.redirected and answer.ok:
            self.registered, self.signed_in = (email, password), True
        elif answer.status == 422 and "exists" in answer.text:
            self.registered = (email, password)  # an earlier answer was lost: it was made
        else:
            self.unexpected("sign up", answer)

    async def sign_in(self) -> None:
        assert self.registered is not None
        page = await self.client.get("/login")
        form = html.form_to(page.text, "/login") if page.ok else None
        if form is None:
            return
        form.set("email", self.registered[0])
        form.set("password", self.registered[1])
        answer = await self.client.post("/login", data=form.fields)
        self.signed_in = answer.redirected and answer.ok
        if not self.signed_in:
            self.unexpected("sign in", answer)

    async def sign_out(self) -> None:
        page = await self.client.get("/account")
        token = html.meta(page.text, "csrf-token") if page.ok else None
        if token is None:
            return
        answer = await self.client.post("/logout", data={"csrf_token": token})
        if answer.redirected:
            self.signed_in = False

    async def orders(self) -> None:
        """Look at one's orders; cancel one now and then."""
        if not self.signed_in:
            await self.account()
            return
        page = await self.client.get("/account/orders")
        numbers = [link for link in html.links(page.text, "/account/orders/") if "?" not in link]
        if not numbers:
            return
        order = self.rng.choice(numbers)
        await self.client.get(order)
        if self.rng.random() < 0.3:
            confirm = await self.client.get(f"{order}/cancel")
            form = html.form_to(confirm.text, f"{order}/cancel") if confirm.ok else None
            if form is not None:
                await self.client.post(form.action, data=form.fields)


def _quantity_shown(page: str, variant: str) -> str | None:
    """The quantity the cart page shows for a variant's line (None: no such line)."""
    found = re.search(rf'id="qty-{variant}"[^>]*?value="(\d+)"', page, re.DOTALL)
    return found.group(1) if found else None
