"""API key pages: list, create (the raw key is shown once), edit and revoke.

The raw key exists only in the response to the creating POST: it is not
stored, not put in the messages framework (which may persist it in a cookie
or session) and the response is marked ``no-store``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from apikeys.forms import KeyForm, key_settings
from apikeys.models import ApiKey
from apikeys.services import ApiKeyError, issue_key, revoke_key, update_key
from audit.models import Source


@permission_required("apikeys.view_apikey", raise_exception=True)
def key_list(request: HttpRequest) -> HttpResponse:
    """Every key with its scopes, limit, creator, last use and revocation."""
    show_revoked = request.GET.get("revoked") == "1"
    keys = ApiKey.objects.order_by("revoked", "name", "prefix")
    if not show_revoked:
        keys = keys.filter(revoked=False)
    return render(
        request,
        "apikeys/key_list.html",
        {
            "keys": keys,
            "show_revoked": show_revoked,
            "revoked_count": ApiKey.objects.filter(revoked=True).count(),
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required("apikeys.add_apikey", raise_exception=True)
def key_create(request: HttpRequest) -> HttpResponse:
    """Create a key and show the raw value in this response only."""
    form = KeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = issue_key(
                **key_settings(form.cleaned_data), created_by=request.user.get_username(), source=Source.WEB
            )
        except ApiKeyError as exc:
            form.add_error(None, str(exc))
        else:
            response = render(request, "apikeys/key_created.html", {"key": issued.api_key, "raw": issued.raw})
            # Neither the browser nor a proxy may keep the page that holds the secret.
            add_never_cache_headers(response)
            response["Cache-Control"] = "no-store, private"
            return response
    return _form_page(request, {"form": form, "creating": True})


@require_http_methods(["GET", "POST"])
@permission_required("apikeys.add_apikey", raise_exception=True)
def key_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a key's name, scopes or rate limit (managing keys needs the same right as creating them)."""
    api_key = get_object_or_404(ApiKey, pk=pk)
    if api_key.revoked:
        messages.error(request, f"{api_key} is revoked; create a new key instead.")
        return redirect("apikeys:list")
    initial = {
        "name": api_key.name,
        "scopes": api_key.scopes,
        "rate_limit_per_minute": api_key.rate_limit_per_minute,
    }
    form = KeyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            changed = update_key(
                api_key,
                **key_settings(form.cleaned_data),
                actor=request.user.get_username(),
                source=Source.WEB,
            )
        except ApiKeyError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Updated {api_key}." if changed else f"{api_key}: nothing changed.")
            return redirect("apikeys:list")
    return _form_page(request, {"form": form, "key": api_key, "creating": False})


@require_http_methods(["GET", "POST"])
@permission_required("apikeys.revoke_apikey", raise_exception=True)
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes the key (the api refuses it from then on)."""
    api_key = get_object_or_404(ApiKey, pk=pk)
    if request.method == "POST":
        if revoke_key(api_key, actor=request.user.get_username(), source=Source.WEB):
            messages.success(request, f"Revoked {api_key}.")
        else:
            messages.info(request, f"{api_key} was already revoked.")
        return redirect("apikeys:list")
    return render(request, "apikeys/key_revoke.html", {"key": api_key})


def _form_page(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The create/edit form; 400 when it comes back from a POST (only refused submissions do)."""
    status = 400 if request.method == "POST" else 200
    return render(request, "apikeys/key_form.html", context, status=status)
