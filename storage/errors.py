"""Storage exceptions. They carry no HTTP; web/problems.py maps them.

StorageError
├── NotFound
│   └── ProductNotFound
└── Conflict
    └── DuplicateSlug
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error storage/ raises on purpose."""


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
