"""Pages of the human review queue and of the review policies."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.pages import filter_query, paginate
from audit.models import Source
from audit.services import record
from reviews.forms import DecisionForm, ReviewPolicyForm
from reviews.models import ReviewItem, ReviewPolicy, ReviewStatus
from reviews.services import AlreadyDecidedError, decide, feature_names_of, model_answer


@require_GET
@permission_required("reviews.view_reviewitem", raise_exception=True)
def review_list(request: HttpRequest) -> HttpResponse:
    """The queue: pending items by default, oldest first, filterable by model name and status."""
    model = request.GET.get("model", "").strip()
    status = request.GET.get("status", ReviewStatus.PENDING)
    items = ReviewItem.objects.select_related("model_version").order_by("created_at", "id")
    if model:
        items = items.filter(model_version__name=model)
    if status in ReviewStatus.values:
        items = items.filter(status=status)
    else:
        status = ""
    backlog = (
        ReviewItem.objects.filter(status=ReviewStatus.PENDING)
        .values("model_version__name")
        .annotate(count=Count("id"))
        .order_by("model_version__name")
    )
    return render(
        request,
        "reviews/list.html",
        {
            "page": paginate(request, items),
            "query": filter_query(request),
            "model": model,
            "status": status,
            "statuses": ReviewStatus.choices,
            "backlog": backlog,
            "backlog_total": sum(row["count"] for row in backlog),
            "model_names": ReviewItem.objects.values_list("model_version__name", flat=True)
            .distinct()
            .order_by("model_version__name"),
        },
    )


def _render_item(
    request: HttpRequest, item: ReviewItem, form: DecisionForm | None = None, status: int = 200
) -> HttpResponse:
    try:
        answer: float | None = model_answer(item.model_version.objective, item.outputs)
    except ValueError:
        answer = None
    return render(
        request,
        "reviews/detail.html",
        {
            "item": item,
            "features": list(zip(feature_names_of(item.model_version), item.features, strict=False)),
            "model_answer": answer,
            "form": form or DecisionForm(),
            "can_decide": request.user.has_perm("reviews.decide_reviewitem"),
        },
        status=status,
    )


@require_GET
@permission_required("reviews.view_reviewitem", raise_exception=True)
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One queued row: its features by name, the model's outputs and score, and the decision form."""
    item = get_object_or_404(ReviewItem.objects.select_related("model_version", "prediction"), pk=pk)
    return _render_item(request, item)


@require_POST
@permission_required("reviews.decide_reviewitem", raise_exception=True)
def review_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Accept or override an item; a second decision is refused with 409 Conflict."""
    item = get_object_or_404(ReviewItem.objects.select_related("model_version", "prediction"), pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _render_item(request, item, form, status=400)
    data = form.cleaned_data
    try:
        decided = decide(
            item.pk,
            user=request.user,
            accept=data["decision"] == DecisionForm.ACCEPT,
            label=data.get("label"),
            reason=data.get("reason") or "",
        )
    except AlreadyDecidedError:
        item.refresh_from_db()
        messages.error(
            request, f"This item was already {item.status} by {item.decided_by or 'someone'}; not changed."
        )
        return _render_item(request, item, status=409)
    except ValueError as exc:
        form.add_error(None, str(exc))
        return _render_item(request, item, form, status=400)
    messages.success(request, f"Row {decided.row_index} of {decided.prediction_id} {decided.status}.")
    following = (
        ReviewItem.objects.filter(status=ReviewStatus.PENDING, model_version__name=item.model_version.name)
        .order_by("created_at", "id")
        .first()
    )
    # Straight on to the next pending item of the same model: reviewers work through a queue.
    if following is not None:
        return redirect("reviews:detail", pk=following.pk)
    return redirect("reviews:list")


@require_GET
@permission_required("reviews.view_reviewpolicy", raise_exception=True)
def policy_list(request: HttpRequest) -> HttpResponse:
    """Every model name's review policy."""
    return render(
        request,
        "reviews/policies.html",
        {
            "policies": ReviewPolicy.objects.order_by("model_name"),
            "can_add": request.user.has_perm("reviews.add_reviewpolicy"),
            "can_change": request.user.has_perm("reviews.change_reviewpolicy"),
        },
    )


def _save_policy(request: HttpRequest, form: ReviewPolicyForm, action: str) -> ReviewPolicy:
    with transaction.atomic():
        policy = form.save(commit=False)
        policy.updated_by = request.user.get_username()
        policy.save()
        record(
            action,
            policy,
            actor=policy.updated_by,
            source=Source.WEB,
            enabled=policy.enabled,
            band_low=policy.band_low,
            band_high=policy.band_high,
            rules=policy.rules,
        )
    return policy


@require_http_methods(["GET", "POST"])
@permission_required("reviews.add_reviewpolicy", raise_exception=True)
def policy_create(request: HttpRequest) -> HttpResponse:
    """Create the review policy of a model name that has none."""
    initial = {"model_name": request.GET.get("model", "")}
    form = ReviewPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        policy = _save_policy(request, form, "review_policy.create")
        messages.success(request, f"Review policy for {policy.model_name} created.")
        return redirect("reviews:policies")
    return render(request, "reviews/policy_form.html", {"form": form, "policy": None})


@require_http_methods(["GET", "POST"])
@permission_required("reviews.change_reviewpolicy", raise_exception=True)
def policy_edit(request: HttpRequest, model_name: str) -> HttpResponse:
    """Change a model name's band, rules or whether the policy is on."""
    policy = get_object_or_404(ReviewPolicy, model_name=model_name)
    form = ReviewPolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        _save_policy(request, form, "review_policy.change")
        messages.success(request, f"Review policy for {policy.model_name} saved.")
        return redirect("reviews:policies")
    return render(request, "reviews/policy_form.html", {"form": form, "policy": policy})
