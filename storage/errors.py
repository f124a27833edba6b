"""Storage exceptions. They carry no HTTP; web/problems.py maps them.

StorageError
├── Unavailable
│   ├── PoolExhausted
│   ├── ServerFull
│   └── DatabaseUnreachable
├── NotFound
│   ├── ProductNotFound
│   ├── UserNotFound
│   ├── AddressNotFound
│   ├── CategoryNotFound
│   ├── AttributeNotFound
│   ├── ChoiceNotFound
│   ├── ProductTypeNotFound
│   ├── AttributeNotDeclared
│   ├── VariantNotFound
│   ├── CartItemNotFound
│   ├── ShippingMethodNotFound
│   └── OrderNotFound
├── Conflict
│   ├── DuplicateSlug
│   │   ├── DuplicateCategorySlug
│   │   ├── DuplicateAttributeSlug
│   │   ├── DuplicateChoiceSlug
│   │   └── DuplicateProductTypeSlug
│   ├── DuplicateName
│   ├── AttributeAlreadyDeclared
│   ├── ChoiceInUse
│   ├── DuplicateSku
│   ├── EmailTaken
│   ├── CategoryCycle
│   ├── CategoryNotEmpty
│   ├── NotEnoughStock
│   ├── OutOfStock
│   ├── EmptyCart
│   ├── IdempotencyKeyReused
│   └── OrderNotPayable
└── Invalid
    ├── InvalidAttribute
    ├── InvalidProductType
    └── InvalidAttributeValues
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error storage/ raises on purpose."""


class Unavailable(StorageError):
    """The database cannot serve this request now; the same request may work in a moment."""

    retry_after = 1  # seconds, for the client's Retry-After


class PoolExhausted(Unavailable):
    """No connection of a pool could be had within its acquire timeout: every one is busy, or a
    new one could not be opened in time."""

    def __init__(self, pool: str, timeout: float) -> None:
        super().__init__(f"no {pool} database connection became free within {timeout:g} s")
        self.pool, self.timeout = pool, timeout


class ServerFull(Unavailable):
    """The server refused a new connection: it has as many clients as it allows (53300,
    max_connections, or a database's or role's CONNECTION LIMIT). The pools' own connections are
    fine; a moment later one may be free."""

    def __init__(self, pool: str) -> None:
        super().__init__(f"the {pool} database server has no room for another connection now")
        self.pool = pool


class DatabaseUnreachable(Unavailable):
    """No usable server answered: down, shutting down, not promoted yet (no writable host), or
    the connection lost its server mid-statement (storage.failover). A failover in progress
    looks like this; once a primary is back, the same request works."""

    retry_after = 2

    def __init__(self, pool: str, error: str) -> None:
        super().__init__(f"the {pool} database cannot be reached now ({error})")
        self.pool, self.error = pool, error


class NotFound(StorageError):
    """The row the caller named does not exist."""


class ProductNotFound(NotFound):
    def __init__(self, product: int | str) -> None:
        super().__init__(f"product {product!r} does not exist")
        self.product = product


class Conflict(StorageError):
    """The change contradicts data that is already there."""


class DuplicateSlug(Conflict):
    def __init__(self, slug: str) -> None:
        super().__init__(f"the slug {slug!r} is already taken")
        self.slug = slug


class UserNotFound(NotFound):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} does not exist")
        self.user_id = user_id


class AddressNotFound(NotFound):
    """No such address for this user (another user's address is 'not found' too)."""

    def __init__(self, address_id: int) -> None:
        super().__init__(f"address {address_id} does not exist")
        self.address_id = address_id


class EmailTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("an account with this email already exists")


class DuplicateSku(Conflict):
    def __init__(self, sku: str) -> None:
        super().__init__(f"the SKU {sku!r} is already taken")
        self.sku = sku


class CategoryNotFound(NotFound):
    def __init__(self, category: int | str) -> None:
        super().__init__(f"category {category!r} does not exist")
        self.category = category  # the id or slug that was asked for


class DuplicateCategorySlug(DuplicateSlug):
    """Another category has this slug."""


class CategoryCycle(Conflict):
    """A category cannot move under itself or one of its descendants."""

    def __init__(self, category_id: int, new_parent_id: int) -> None:
        super().__init__(
            f"category {category_id} cannot move under {new_parent_id}, which is inside it"
        )
        self.category_id, self.new_parent_id = category_id, new_parent_id


class CategoryNotEmpty(Conflict):
    def __init__(self, category_id: int) -> None:
        super().__init__(f"category {category_id} has subcategories")
        self.category_id = category_id


class AttributeNotFound(NotFound):
    def __init__(self, attribute_id: int) -> None:
        super().__init__(f"attribute {attribute_id} does not exist")
        self.attribute_id = attribute_id


class ProductTypeNotFound(NotFound):
    def __init__(self, product_type_id: int) -> None:
        super().__init__(f"product type {product_type_id} does not exist")
        self.product_type_id = product_type_id


class DuplicateAttributeSlug(DuplicateSlug):
    """Another attribute has this slug."""


class DuplicateProductTypeSlug(DuplicateSlug):
    """Another product type has this slug."""


class DuplicateChoiceSlug(DuplicateSlug):
    """The attribute already has a choice with this slug."""


class DuplicateName(Conflict):
    """Another attribute, product type or choice of the same attribute has this name (any case)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the name {name!r} is taken")
        self.name = name


class ChoiceNotFound(NotFound):
    def __init__(self, choice_id: int) -> None:
        super().__init__(f"choice {choice_id} does not exist")
        self.choice_id = choice_id


class AttributeNotDeclared(NotFound):
    """The product type does not (or no longer) declare this attribute."""

    def __init__(self, attribute_id: int) -> None:
        super().__init__(f"the type does not declare attribute {attribute_id}")
        self.attribute_id = attribute_id


class AttributeAlreadyDeclared(Conflict):
    """The product type already declares this attribute."""

    def __init__(self, attribute_id: int) -> None:
        super().__init__(f"the type already declares attribute {attribute_id}")
        self.attribute_id = attribute_id


class ChoiceInUse(Conflict):
    """Products or variants still carry this choice, so it cannot be removed."""

    def __init__(self, products: int, variants: int) -> None:
        super().__init__(f"{products} products and {variants} variants use this choice")
        self.products, self.variants = products, variants


class Invalid(StorageError):
    """The caller's data breaks a rule of the catalog."""


class InvalidAttribute(Invalid):
    """An attribute definition that cannot be stored: bad kind, choices, slug, name or unit."""


class InvalidProductType(Invalid):
    """A product type definition that cannot be stored: bad level or a repeated attribute."""


class InvalidAttributeValues(Invalid):
    """Attribute values that do not fit a product type; `errors` maps each bad key to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.errors = errors


class VariantNotFound(NotFound):
    """No such variant on sale (also for a variant of an unpublished product)."""

    def __init__(self, variant: int | str) -> None:
        super().__init__(f"variant {variant!r} is not on sale")
        self.variant = variant


class CartItemNotFound(NotFound):
    def __init__(self, variant_id: int) -> None:
        super().__init__(f"variant {variant_id} is not in the cart")
        self.variant_id = variant_id


class ShippingMethodNotFound(NotFound):
    def __init__(self, code: str) -> None:
        super().__init__(f"there is no shipping method {code!r}")
        self.code = code


class OrderNotFound(NotFound):
    """No such order for this customer (another customer's order is 'not found' too)."""

    def __init__(self, number: str) -> None:
        super().__init__(f"order {number!r} does not exist")
        self.number = number


class NotEnoughStock(Conflict):
    """A cart line asks for more units than the shop has."""

    def __init__(self, sku: str, available: int, requested: int) -> None:
        unit = "unit" if available == 1 else "units"
        super().__init__(
            f"only {available} {unit} of {sku} in stock" if available else f"{sku} is sold out"
        )
        self.sku, self.available, self.requested = sku, available, requested


class OutOfStock(Conflict):
    """Checkout found lines the stock cannot cover; `shortages` maps each SKU to what is left."""

    def __init__(self, shortages: dict[str, int]) -> None:
        super().__init__(
            "not enough stock for "
            + ", ".join(f"{sku} ({left} left)" for sku, left in sorted(shortages.items()))
        )
        self.shortages = shortages


class EmptyCart(Conflict):
    def __init__(self) -> None:
        super().__init__("the cart is empty")


class IdempotencyKeyReused(Conflict):
    """The Idempotency-Key was already used for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__("this Idempotency-Key was used for a different request")
        self.key = key


class OrderNotPayable(Conflict):
    """The order takes no other card now: paid, cancelled, or its last capture still running.
    `reason` is domain.payments.retry_refusal's."""

    MESSAGES = {
        "paid": "This order is already paid.",
        "cancelled": "This order is cancelled: it can no longer be paid.",
        "processing": "The payment of this order is being processed: wait for its outcome.",
        "not_pending": "This order is already paid.",
    }

    def __init__(self, number: str, reason: str) -> None:
        super().__init__(self.MESSAGES.get(reason, "This order cannot be paid now."))
        self.number, self.reason = number, reason
