"""Model registry pages: versions per name, upload, stage changes, roll back and comparison.

Reading needs ``registry.view_modelversion``; uploading ``add_modelversion``;
every stage change ``promote_modelversion``. State changes are POST-only and
go through ``registry.services`` so that each one is audited (source=web).
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.models import AuditEvent, Source
from inference_common.settings import model_store
from registry.forms import StageForm, UploadModelForm
from registry.models import ModelVersion, Stage
from registry.services import RegistryError, previous_production, register_model, rollback, set_stage
from registry.stats import MAX_RECORDS, paired_stats, requests_since, version_stats
from responsecache.models import ResponseCachePolicy

#: Windows the compare page offers, in hours.
WINDOWS = (1, 24, 168)
DEFAULT_WINDOW = 24


def _versions_of(name: str) -> list[ModelVersion]:
    versions = list(ModelVersion.objects.filter(name=name).order_by("-created_at", "-id"))
    if not versions:
        raise Http404(f"no model named {name!r}")
    return versions


@permission_required("registry.view_modelversion", raise_exception=True)
def model_list(request: HttpRequest) -> HttpResponse:
    """Every model name with its versions, stages, metrics and last day's traffic."""
    versions = list(ModelVersion.objects.order_by("name", "-created_at", "-id"))
    counts = requests_since(versions, timezone.now() - timedelta(hours=24))
    grouped: dict[str, list[ModelVersion]] = defaultdict(list)
    for version in versions:
        version.requests_24h = counts.get(version.pk, 0)  # type: ignore[attr-defined]
        grouped[version.name].append(version)
    models = [{"name": name, "versions": rows} for name, rows in grouped.items()]
    return render(request, "registry/model_list.html", {"models": models})


@permission_required("registry.view_modelversion", raise_exception=True)
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """One name: its versions with one-click stage actions and the recent stage history."""
    versions = _versions_of(name)
    counts = requests_since(versions, timezone.now() - timedelta(hours=24))
    for version in versions:
        version.requests_24h = counts.get(version.pk, 0)  # type: ignore[attr-defined]
    by_stage = {version.stage: version for version in versions if version.stage != Stage.STAGING}
    production = by_stage.get(Stage.PRODUCTION)
    challengers = [by_stage[stage] for stage in (Stage.CANARY, Stage.SHADOW) if stage in by_stage]
    history = AuditEvent.objects.filter(
        object_type=ModelVersion._meta.label_lower, detail__name=name
    ).order_by("-created_at", "-id")[:20]
    return render(
        request,
        "registry/model_detail.html",
        {
            "name": name,
            "versions": versions,
            "production": production,
            "challengers": challengers,
            "rollback_target": previous_production(name),
            "history": history,
            "cache_policy": ResponseCachePolicy.objects.filter(model_name=name).first(),
            "can_promote": request.user.has_perm("registry.promote_modelversion"),
        },
    )


@require_POST
@permission_required("registry.promote_modelversion", raise_exception=True)
def change_stage(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """Move one version to the posted stage (canary with its traffic percentage)."""
    model_version = get_object_or_404(ModelVersion, name=name, version=version)
    form = StageForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a stage, and a traffic percentage of 1-100 for a canary.")
        return redirect("registry:detail", name=name)
    stage = form.cleaned_data["stage"]
    percent = form.cleaned_data["traffic_percent"] if stage == Stage.CANARY else None
    try:
        demoted = set_stage(
            model_version,
            stage,
            traffic_percent=percent,
            actor=request.user.get_username(),
            source=Source.WEB,
        )
    except RegistryError as exc:
        messages.error(request, str(exc))
        return redirect("registry:detail", name=name)
    if demoted is not None:
        messages.info(request, f"Archived version {demoted.version} (was production).")
    share = f" with {percent}% of traffic" if percent else ""
    messages.success(request, f"{name} version {version} is now {stage}{share}.")
    return redirect("registry:detail", name=name)


@require_POST
@permission_required("registry.promote_modelversion", raise_exception=True)
def roll_back(request: HttpRequest, name: str) -> HttpResponse:
    """Put the previous production version back into production."""
    _versions_of(name)
    try:
        restored = rollback(name, actor=request.user.get_username(), source=Source.WEB)
    except RegistryError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Rolled back: {name} version {restored.version} is production again.")
    return redirect("registry:detail", name=name)


@permission_required("registry.add_modelversion", raise_exception=True)
def upload(request: HttpRequest) -> HttpResponse:
    """Register an uploaded booster file as a new version (validated by loading it)."""
    if request.method != "POST":
        form = UploadModelForm(initial={"name": request.GET.get("name", "")})
        return render(request, "registry/upload.html", {"form": form})
    form = UploadModelForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        if data["stage"] == Stage.PRODUCTION and not request.user.has_perm("registry.promote_modelversion"):
            form.add_error("stage", "You may upload to staging only; promoting needs the promote permission.")
        else:
            model_version = _register_upload(request, form, data)
            if model_version is not None:
                messages.success(
                    request,
                    f"Registered {model_version.name} version {model_version.version} "
                    f"({model_version.stage}) with {model_version.n_features} features: "
                    f"{', '.join(model_version.feature_names)}.",
                )
                return redirect(
                    f"{reverse('registry:detail', args=[model_version.name])}#v-{model_version.pk}"
                )
    return render(request, "registry/upload.html", {"form": form}, status=400)


def _register_upload(
    request: HttpRequest, form: UploadModelForm, data: dict[str, Any]
) -> ModelVersion | None:
    """Write the upload to a temporary file with its extension and register it; errors go on the form."""
    upload_file = data["file"]
    suffix = Path(upload_file.name).suffix.lower()
    # XGBoost picks the format from the extension, so the temporary file keeps it.
    with tempfile.TemporaryDirectory(prefix="upload-") as folder:
        path = Path(folder) / f"model{suffix}"
        with path.open("wb") as out:
            for chunk in upload_file.chunks():
                out.write(chunk)
        try:
            registration = register_model(
                name=data["name"],
                path=path,
                store=model_store(),
                version=data["version"],
                stage=data["stage"],
                description=data["description"],
                metrics=data["metrics"],
                created_by=request.user.get_username(),
                source=Source.WEB,
            )
        except RegistryError as exc:
            # The message names the temporary path; the user knows the file by its own name.
            form.add_error("file", str(exc).replace(str(path), upload_file.name))
            return None
    return registration.model_version


def _window(request: HttpRequest) -> int:
    try:
        hours = int(request.GET.get("hours", DEFAULT_WINDOW))
    except ValueError:
        return DEFAULT_WINDOW
    return hours if hours in WINDOWS else DEFAULT_WINDOW


@permission_required("registry.view_modelversion", raise_exception=True)
def compare(request: HttpRequest, name: str) -> HttpResponse:
    """Two versions side by side: metadata, metrics, live traffic and paired shadow answers."""
    versions = _versions_of(name)
    by_version = {version.version: version for version in versions}
    production = next((v for v in versions if v.stage == Stage.PRODUCTION), None)
    challenger = next((v for v in versions if v.stage in (Stage.CANARY, Stage.SHADOW)), None)
    default_a = production or versions[0]
    default_b = challenger or next((v for v in versions if v != default_a), default_a)
    a = by_version.get(request.GET.get("a", ""), default_a)
    b = by_version.get(request.GET.get("b", ""), default_b)
    hours = _window(request)
    since = timezone.now() - timedelta(hours=hours)
    metric_names = sorted(set(a.metrics or {}) | set(b.metrics or {}))
    metric_rows = []
    for metric in metric_names:
        first, second = (a.metrics or {}).get(metric), (b.metrics or {}).get(metric)
        both = isinstance(first, (int, float)) and isinstance(second, (int, float))
        metric_rows.append(
            {"name": metric, "a": first, "b": second, "diff": second - first if both else None}
        )
    paired = None
    pair_labels = None
    stages = {a.stage, b.stage}
    if Stage.PRODUCTION in stages and stages & {Stage.CANARY, Stage.SHADOW} and a != b:
        primary, other = (a, b) if a.stage == Stage.PRODUCTION else (b, a)
        paired = paired_stats(other, primary, since)
        pair_labels = (primary, other)
    return render(
        request,
        "registry/compare.html",
        {
            "name": name,
            "versions": versions,
            "a": a,
            "b": b,
            "stats_a": version_stats(a, since),
            "stats_b": version_stats(b, since),
            "metric_rows": metric_rows,
            "paired": paired,
            "pair_labels": pair_labels,
            "hours": hours,
            "windows": WINDOWS,
            "max_records": MAX_RECORDS,
            "last_change": ModelVersion.objects.filter(name=name).aggregate(last=Max("stage_changed_at"))[
                "last"
            ],
            "can_promote": request.user.has_perm("registry.promote_modelversion"),
        },
    )
