"""Staff category pages: the tree with product counts, create, rename, move a subtree, move up
or down among siblings, delete an empty category.

Each change commits, then moves the catalog cache version (category trees and breadcrumbs are
cached reads). Refusals are shown on the page beside the form they are about: errors are keyed
"new" for the create form and the category id for that category's forms.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from storage import catalog_admin, categories, category_order, transaction
from storage.errors import CategoryCycle, CategoryNotEmpty, CategoryNotFound, DuplicateSlug
from web.admin import messages
from web.admin.common import flatten, saved
from web.catalog import catalog_changed
from web.fields import FormId, Line100, Slug
from web.forms import Form
from web.keys import DB, MIN_LSN, REQUEST_ID
from web.params import path_id
from web.render import render

Name = Line100


class CategoryIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: Name
    slug: Slug
    parent_id: FormId | None = None


class RenameIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: Name
    slug: Slug


class MoveIn(BaseModel):
    parent_id: FormId | None = None


def _id(request: web.Request) -> int:
    return path_id(request)


CATEGORY_FIELDS = [("name", "Name"), ("slug", "Slug"), ("parent_id", "Parent")]


def _summary(forms: dict[str, Form[Any]]) -> list[messages.Problem]:
    """The refused form's errors atop the page; a category's inputs carry its id in theirs."""
    key, form = next(((k, f) for k, f in forms.items() if f.errors), ("", None))
    if form is None:
        return []
    if key == "new":
        anchors = {"parent_id": "f-parent-new"}
    else:
        anchors = {name: f"f-{name.removesuffix('_id')}-{key}" for name, _ in CATEGORY_FIELDS}
    return messages.summary(form.errors, CATEGORY_FIELDS, anchors)


async def category_page(
    request: web.Request,
    *,
    forms: dict[str, Form[Any]] | None = None,
    status: int = 200,
) -> web.Response:
    """The tree with a rename, move and delete form per category, and the create form."""
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    tree = await categories.tree(reader)
    nodes = flatten(tree)
    levels = [tree] + [node.children for node, _ in nodes if node.children]
    context = {
        "nodes": nodes,
        "firsts": {level[0].id for level in levels if level},
        "lasts": {level[-1].id for level in levels if level},
        "counts": await category_order.product_counts(reader, tree),
        "forms": forms or {},
        "summary": _summary(forms or {}),
        "saved": saved(request, status),
    }
    return render(request, "admin/categories.html", context, status=status)


async def create_category(request: web.Request) -> web.Response:
    """Add a category under the chosen parent (or at the top)."""
    form = await messages.read(request, CategoryIn, blank_as_none=True)
    if form.data is not None:
        try:
            async with transaction(request.config_dict[DB]) as conn:
                await categories.create(
                    conn, slug=form.data.slug, name=form.data.name, parent_id=form.data.parent_id
                )
        except DuplicateSlug:
            form.fail("slug", "Another category has this slug.")
        except CategoryNotFound:
            form.fail("parent_id", "This parent no longer exists.")
        else:
            return await _done(request)
    return await category_page(request, forms={"new": form}, status=422)


async def rename_category(request: web.Request) -> web.Response:
    """Change a category's name and slug."""
    category_id = _id(request)
    form = await messages.read(request, RenameIn)
    if form.data is not None:
        try:
            async with transaction(request.config_dict[DB]) as conn:
                await categories.rename(conn, category_id, name=form.data.name, slug=form.data.slug)
                await _reindex_under(conn, request, category_id)
        except DuplicateSlug:
            form.fail("slug", "Another category has this slug.")
        except CategoryNotFound:
            raise web.HTTPNotFound(text="No such category.") from None
        else:
            return await _done(request)
    return await category_page(request, forms={str(category_id): form}, status=422)


async def move_category(request: web.Request) -> web.Response:
    """Move a category and everything under it to a new parent (blank: the top level)."""
    category_id = _id(request)
    form = await messages.read(request, MoveIn, blank_as_none=True)
    status = 422
    if form.data is not None:
        try:
            async with transaction(request.config_dict[DB]) as conn:
                await categories.move(conn, category_id, form.data.parent_id)
                await _reindex_under(conn, request, category_id)
        except CategoryCycle:
            form.fail("parent_id", "A category cannot move under itself or its subcategories.")
            status = 409
        except CategoryNotFound as exc:
            if exc.category == category_id:
                raise web.HTTPNotFound(text="No such category.") from None
            form.fail("parent_id", "This parent no longer exists.")
        else:
            return await _done(request)
    return await category_page(request, forms={str(category_id): form}, status=status)


async def delete_category(request: web.Request) -> web.Response:
    """Delete a category without subcategories (its products keep no category)."""
    category_id = _id(request)
    form: Form[Any] = Form(values={})
    try:
        async with transaction(request.config_dict[DB]) as conn:
            await _reindex_under(conn, request, category_id)
            await categories.delete(conn, category_id)
    except CategoryNotEmpty:
        form.fail("form", "This category has subcategories: move or delete them first.")
    except CategoryNotFound:
        raise web.HTTPNotFound(text="No such category.") from None
    else:
        return await _done(request)
    return await category_page(request, forms={str(category_id): form}, status=409)


async def shift_category(request: web.Request) -> web.Response:
    """Move a category up or down among its siblings (the last path part says which); one
    already first or last stays where it is."""
    category_id = _id(request)
    direction: category_order.Direction = (
        "up" if request.match_info["direction"] == "up" else "down"
    )
    try:
        async with transaction(request.config_dict[DB]) as conn:
            moved = await category_order.shift(conn, category_id, direction)
    except CategoryNotFound:
        raise web.HTTPNotFound(text="No such category.") from None
    if moved:
        await catalog_changed(request)
    raise web.HTTPSeeOther(f"/admin/categories?saved=1#category-{category_id}")


async def _reindex_under(conn: Any, request: web.Request, category_id: int) -> None:
    """Search documents carry the names of a product's category and its ancestors: rebuild the
    documents of every product at or under a renamed, moved or deleted category."""
    await catalog_admin.reindex_under(conn, category_id, request_id=request.get(REQUEST_ID))


async def _done(request: web.Request) -> web.Response:
    await catalog_changed(request)
    raise web.HTTPSeeOther("/admin/categories?saved=1")


def add_routes(app: web.Application) -> None:
    """The category routes on the /admin application."""
    app.router.add_get("/categories", category_page, name="admin_categories")
    app.router.add_post("/categories", create_category)
    one = "/categories/{id:[0-9]{1,19}}"
    app.router.add_post(one + "/rename", rename_category)
    app.router.add_post(one + "/move", move_category)
    app.router.add_post(one + "/delete", delete_category)
    app.router.add_post(one + "/{direction:up|down}", shift_category)
