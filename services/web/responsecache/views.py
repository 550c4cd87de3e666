"""The response cache policy page of a model name (``/models/<name>/cache/``).

Anyone who may see the registry sees the policy; changing it or clearing the
cached answers needs ``registry.promote_modelversion``, like every other
change to what answers a model's clients. Each change is audited (source=web).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audit.models import Source
from registry.models import ModelVersion
from responsecache.forms import ResponseCachePolicyForm
from responsecache.models import ResponseCachePolicy
from responsecache.services import clear, save_policy

#: The permission that changes a policy (the one that changes stages).
CHANGE_PERMISSION = "registry.promote_modelversion"


@require_http_methods(["GET", "POST"])
@permission_required("registry.view_modelversion", raise_exception=True)
def policy(request: HttpRequest, name: str) -> HttpResponse:
    """Show a model name's cache policy; create or change it on POST."""
    if not ModelVersion.objects.filter(name=name).exists():
        raise Http404(f"no model named {name!r}")
    current = ResponseCachePolicy.objects.filter(model_name=name).first()
    can_change = request.user.has_perm(CHANGE_PERMISSION)
    if request.method == "POST" and not can_change:
        raise PermissionDenied
    form = ResponseCachePolicyForm(
        request.POST or None, instance=current or ResponseCachePolicy(model_name=name)
    )
    if request.method == "POST" and form.is_valid():
        saved = save_policy(form.save(commit=False), actor=request.user.get_username(), source=Source.WEB)
        state = f"on (TTL {saved.ttl_s} s, up to {saved.max_entries} answers)" if saved.enabled else "off"
        messages.success(request, f"Response cache for {name} is {state}.")
        return redirect("registry:detail", name=name)
    return render(
        request,
        "responsecache/policy.html",
        {"name": name, "form": form, "policy": current, "can_change": can_change},
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def clear_answers(request: HttpRequest, name: str) -> HttpResponse:
    """Stop serving every answer cached so far for ``name`` (a new generation)."""
    cleared = clear(
        get_object_or_404(ResponseCachePolicy, model_name=name),
        actor=request.user.get_username(),
        source=Source.WEB,
    )
    messages.success(
        request,
        f"Cached answers of {name} cleared (generation {cleared.generation}); the api stops "
        "serving the earlier ones within API_CACHE_TTL_S.",
    )
    return redirect("registry:cache", name=name)
