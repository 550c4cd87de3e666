"""The landing page after login."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render


def home(request: HttpRequest) -> HttpResponse:
    """Open the dashboard when the user may see it, else list what they can open."""
    if request.user.has_perm("predictions.view_predictionrecord"):
        return redirect("/dashboard/")
    return render(request, "accounts/home.html")
