"""Pages of the ``jobs`` app (mounted in ``config.urls`` at /batches/)."""

from __future__ import annotations

from django.urls import URLPattern, path

from jobs import views

app_name = "jobs"

urlpatterns: list[URLPattern] = [
    path("", views.batch_list, name="list"),
    path("new/", views.batch_new, name="new"),
    path("<uuid:job_id>/", views.batch_detail, name="detail"),
    path("<uuid:job_id>/status.json", views.batch_status, name="status"),
    path("<uuid:job_id>/results.csv", views.batch_results, name="results"),
]
