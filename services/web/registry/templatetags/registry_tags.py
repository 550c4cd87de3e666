"""Small formatting filters for the registry pages."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

#: Shown for a missing value (an en dash).
MISSING = "\u2013"


@register.filter
def percent(value: Any, digits: int = 1) -> str:
    """0.1234 -> "12.3%"; MISSING for None."""
    if value is None:
        return MISSING
    return f"{float(value) * 100:.{digits}f}%"


@register.filter
def number(value: Any, digits: int = 4) -> str:
    """A compact number for metrics and scores; MISSING for missing values."""
    if value is None:
        return MISSING
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return str(value)


@register.filter
def ms(value: Any) -> str:
    """Milliseconds with one decimal; MISSING for missing values."""
    return MISSING if value is None else f"{float(value):.1f} ms"
