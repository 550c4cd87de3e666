"""Pages of the ``reviews`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from reviews import views

app_name = "reviews"

urlpatterns: list[URLPattern] = [
    path("", views.review_list, name="list"),
    path("policies/", views.policy_list, name="policies"),
    path("policies/new/", views.policy_create, name="policy_create"),
    path("policies/<str:model_name>/", views.policy_edit, name="policy_edit"),
    path("<int:pk>/", views.review_detail, name="detail"),
    path("<int:pk>/decide/", views.review_decide, name="decide"),
]
