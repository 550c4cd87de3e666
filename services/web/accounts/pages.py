"""Helpers shared by the views of the product pages (templates: accounts/templates/includes/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest


def paginate(request: HttpRequest, object_list: QuerySet[Any] | Sequence[Any]) -> Page:
    """The page of ``object_list`` that ``?page=`` asks for, ``settings.PAGE_SIZE`` rows a page.

    A missing or malformed number gives the first page and one past the end the
    last, so a stale link never fails (``Paginator.get_page``).
    """
    return Paginator(object_list, settings.PAGE_SIZE).get_page(request.GET.get("page"))


def filter_query(request: HttpRequest) -> str:
    """The request's query string without ``page``: links to other pages keep the list's filters."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()
