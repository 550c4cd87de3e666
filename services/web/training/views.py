"""Training pages (/models/train/): runs, a new run, a run's progress."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.pages import paginate
from training.forms import TrainingForm
from training.models import RunStatus, TrainingRun
from training.services import start_run


@permission_required("training.view_trainingrun", raise_exception=True)
def run_list(request: HttpRequest) -> HttpResponse:
    """Training runs, newest first."""
    runs = TrainingRun.objects.select_related("model_version").order_by("-created_at", "-id")
    return render(request, "training/list.html", {"page": paginate(request, runs)})


@permission_required("training.add_trainingrun", raise_exception=True)
def run_new(request: HttpRequest) -> HttpResponse:
    """The training form; a valid submission queues a run and opens its page."""
    if request.method == "POST":
        form = TrainingForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            run = start_run(
                model_name=data["model_name"],
                dataset=data["dataset"],
                label_column=data["label_column"].strip(),
                objective=data["objective"],
                params=form.params(),
                include_feedback=data["include_feedback"],
                created_by=request.user.get_username(),
            )
            run.refresh_from_db()
            if run.status == RunStatus.FAILED:
                messages.error(request, f"The training run could not be queued: {run.message}")
            else:
                messages.success(request, f"Training run {run.pk} queued.")
            return redirect("training:detail", run_id=run.pk)
    else:
        form = TrainingForm(initial={"model_name": request.GET.get("name", "")})
    return render(request, "training/new.html", {"form": form})


@permission_required("training.view_trainingrun", raise_exception=True)
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's progress (the page refreshes itself until the run is finished) and outcome."""
    run = get_object_or_404(TrainingRun.objects.select_related("model_version"), pk=run_id)
    return render(request, "training/detail.html", {"run": run})


@permission_required("training.view_trainingrun", raise_exception=True)
def run_status(request: HttpRequest, run_id: int) -> JsonResponse:
    """A run's progress as JSON, for scripts and polling pages."""
    run = get_object_or_404(TrainingRun.objects.select_related("model_version"), pk=run_id)
    version = run.model_version
    return JsonResponse(
        {
            "id": run.pk,
            "status": run.status,
            "progress": run.progress,
            "message": run.message,
            "metrics": run.metrics,
            "model_version": {"name": version.name, "version": version.version} if version else None,
        }
    )
