"""Pages of CSV batches (/batches/): list, upload, progress, results download."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.pages import paginate
from jobs.forms import BatchForm
from jobs.models import Job, JobStatus
from jobs.services import results_lines, submit_batch


@permission_required("jobs.view_job", raise_exception=True)
def batch_list(request: HttpRequest) -> HttpResponse:
    """Every job, newest first: web batches and the api's async jobs."""
    jobs = Job.objects.select_related("model_version", "api_key").order_by("-created_at")
    return render(request, "jobs/list.html", {"page": paginate(request, jobs)})


@permission_required("jobs.add_job", raise_exception=True)
def batch_new(request: HttpRequest) -> HttpResponse:
    """Upload a CSV batch; on success the job is queued and its chunks are published."""
    if request.method == "POST":
        form = BatchForm(request.POST, request.FILES)
        if form.is_valid() and form.model_version is not None and form.table is not None:
            job = submit_batch(
                model_version=form.model_version,
                table=form.table,
                input_name=form.cleaned_data["file"].name,
                created_by=request.user.get_username(),
            )
            job.refresh_from_db()
            if job.status == JobStatus.FAILED:
                messages.error(request, f"The batch could not be queued: {job.error}")
            else:
                messages.success(request, f"Queued {job.n_rows} rows in {job.n_chunks} chunk(s).")
            return redirect("jobs:detail", job_id=job.id)
    else:
        initial = {key: request.GET[key] for key in ("model_name", "version") if key in request.GET}
        form = BatchForm(initial=initial)
    return render(request, "jobs/new.html", {"form": form})


@permission_required("jobs.view_job", raise_exception=True)
def batch_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    """One job's progress (the page refreshes itself until the job is finished)."""
    job = get_object_or_404(Job.objects.select_related("model_version", "api_key"), pk=job_id)
    percent = 100 if job.status == JobStatus.SUCCEEDED else int(100 * job.chunks_done / max(job.n_chunks, 1))
    return render(request, "jobs/detail.html", {"job": job, "percent": percent})


@permission_required("jobs.view_job", raise_exception=True)
def batch_status(request: HttpRequest, job_id: str) -> JsonResponse:
    """Progress as JSON, for scripts and polling pages."""
    job = get_object_or_404(Job, pk=job_id)
    return JsonResponse(
        {
            "id": str(job.id),
            "status": job.status,
            "chunks_done": job.chunks_done,
            "n_chunks": job.n_chunks,
            "rows": job.n_rows,
            "error": job.error,
        }
    )


@permission_required("jobs.view_job", raise_exception=True)
def batch_results(request: HttpRequest, job_id: str) -> StreamingHttpResponse:
    """The outputs of a succeeded job as CSV, streamed chunk by chunk."""
    job = get_object_or_404(Job.objects.select_related("model_version"), pk=job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise Http404("the job has no results yet")
    response = StreamingHttpResponse(results_lines(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="batch-{job.id}-results.csv"'
    return response
