"""The product in a real browser: the path a team takes from a model file to audited answers.

One module-scoped tour uploads a model through the form, promotes it, creates
an API key and a review policy; the tests then use the API as a client would
and follow the results through the audit log, the review queue and a CSV
batch. Every step goes through the pages, as a person would.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
import xgboost
from playwright.sync_api import Browser, Page, expect

from support.browsing import Site, log_in
from support.polling import poll

FEATURES = ["income", "debt_ratio", "age", "utilisation"]


@dataclass(frozen=True)
class Tour:
    """What the set-up made through the pages."""

    model: str
    version: str
    booster: xgboost.Booster
    key: str


def _train(path: Path) -> xgboost.Booster:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(400, len(FEATURES))).astype(np.float32)
    labels = (features[:, 0] - features[:, 1] + 0.3 * rng.normal(size=400) > 0).astype(np.float32)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": 7, "nthread": 1},
        xgboost.DMatrix(features, label=labels, feature_names=FEATURES),
        num_boost_round=20,
    )
    booster.save_model(str(path))
    return booster


@pytest.fixture(scope="module")
def tour(browser: Browser, site: Site, tmp_path_factory: pytest.TempPathFactory, request) -> Tour:
    """Upload, promote, create a key and a review policy, all through the pages."""
    model = f"credit-risk-{secrets.token_hex(3)}"
    path = tmp_path_factory.mktemp("tour") / "credit-risk.json"
    booster = _train(path)
    shoot = request.getfixturevalue("shoot")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(site.timeout * 1000)
    page = context.new_page()
    log_in(page, site, site.admin_user, site.admin_password)

    # Upload the saved booster through the form.
    page.goto(site.url("/models/upload/"))
    page.fill("#id_name", model)
    page.set_input_files("#id_file", str(path))
    page.fill("#id_metrics", '{"auc": 0.93, "logloss": 0.31}')
    shoot(page, "model-upload")
    page.click("main button[type=submit]")
    for name in FEATURES:
        expect(page.locator("main")).to_contain_text(name)

    # Promote it to production in one click on the model page.
    page.goto(site.url(f"/models/{model}/"))
    page.click("button[data-action=promote]")
    expect(page.locator("main .badge.production").first).to_be_visible()
    version = page.locator("main tr:has(.badge.production) td").first.inner_text().strip().lstrip("v")
    shoot(page, "model-detail")

    # A key for the API: its raw value is shown once.
    page.goto(site.url("/keys/new/"))
    page.fill("#id_name", f"{model} tour")
    page.check("input[name=scopes][value=predict]")
    page.check("input[name=scopes][value=jobs]")
    page.click("main button[type=submit]")
    key = page.locator("#raw-key").inner_text().strip()
    assert key.startswith("ipk_")

    # Every answer of this model goes to review: the band covers all scores.
    page.goto(site.url("/reviews/policies/new/"))
    page.fill("#id_model_name", model)
    page.fill("#id_band_low", "0")
    page.fill("#id_band_high", "1")
    page.click("main button[type=submit]")
    expect(page.locator("main")).to_contain_text(model)
    context.close()
    return Tour(model=model, version=version, booster=booster, key=key)


def test_an_uploaded_and_promoted_model_answers_on_the_api(tour: Tour, site: Site) -> None:
    rows = [[1.0, -0.5, 0.2, 0.1], [-1.0, 0.5, 0.0, 0.3]]
    response = poll(
        lambda: requests.post(
            f"{site.api}/v1/models/{tour.model}:predict",
            json={"instances": rows},
            headers={"Authorization": f"Bearer {tour.key}"},
            timeout=30,
        ),
        lambda r: r.status_code != 404,  # the api caches the registry for API_CACHE_TTL_S
        site.timeout,
    )
    assert response.status_code == 200, response.text
    expected = tour.booster.predict(
        xgboost.DMatrix(np.asarray(rows, dtype=np.float32), feature_names=FEATURES)
    )
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-6)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _page(browser: Browser, site: Site) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(site.timeout * 1000)
    page = context.new_page()
    log_in(page, site, site.admin_user, site.admin_password)
    return page


def _predict(site: Site, tour: Tour, rows: list[list[float]], trace_id: str) -> requests.Response:
    """One v1 request carrying our own W3C trace context, as an instrumented client would."""
    headers = {
        "Authorization": f"Bearer {tour.key}",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    return poll(
        lambda: requests.post(
            f"{site.api}/v1/models/{tour.model}:predict",
            json={"instances": rows},
            headers=headers,
            timeout=30,
        ),
        lambda r: r.status_code != 404,  # the api caches the registry for API_CACHE_TTL_S
        site.timeout,
    )


def test_a_prediction_made_through_the_api_is_found_in_the_audit_log_by_its_trace_id(
    tour: Tour, site: Site, browser: Browser, shoot
) -> None:
    trace_id = secrets.token_hex(16)
    response = _predict(site, tour, [[0.4, 0.1, -0.3, 0.9]], trace_id)
    assert response.status_code == 200, response.text
    request_id = response.headers["X-Request-ID"]

    page = _page(browser, site)
    page.goto(site.url("/predictions/"))
    page.fill("input[name=trace_id]", trace_id)
    poll(
        lambda: (
            page.click("form.filters button[type=submit]"),
            page.locator("main tbody tr").all_inner_texts(),
        )[1],
        lambda rows: any(request_id in row for row in rows),
        site.timeout,
    )
    shoot(page, "predictions")
    page.click(f"a:text('{request_id}')")
    main = page.locator("main")
    expect(main).to_contain_text(request_id)
    expect(main).to_contain_text(tour.model)
    link = page.locator("a:text('View trace')")
    expect(link).to_have_attribute("href", re.compile(trace_id))
    shoot(page, "prediction-detail")
    page.context.close()


def test_a_reviewer_overrides_a_flagged_prediction_and_the_label_is_kept(
    tour: Tour, site: Site, browser: Browser, shoot
) -> None:
    response = _predict(site, tour, [[-0.2, 0.3, 0.5, 0.1]], secrets.token_hex(16))
    assert response.status_code == 200, response.text
    request_id = response.headers["X-Request-ID"]

    page = _page(browser, site)
    page.goto(site.url(f"/reviews/?model={tour.model}&status=pending"))
    row = page.locator(f"main tbody tr:has-text('{request_id}')")
    poll(lambda: (page.reload(), row.count())[1], lambda count: count == 1, site.timeout)
    shoot(page, "reviews")
    row.locator("a:text('Review')").click()
    expect(page.locator("main")).to_contain_text(FEATURES[0])
    page.fill("#id_label", "1")
    page.fill("#id_reason", "confirmed by the customer's repayment history")
    page.click("button:text('Override')")
    expect(page.locator("main")).to_contain_text("overridden")
    page.goto(site.url(f"/reviews/?model={tour.model}&status=overridden"))
    expect(page.locator(f"main tbody tr:has-text('{request_id}')")).to_have_count(1)
    page.context.close()


def test_a_csv_batch_runs_through_the_queue_to_a_downloadable_result(
    tour: Tour, site: Site, browser: Browser, shoot, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(300, len(FEATURES))).round(4)
    source = tmp_path / "applicants.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *FEATURES])
        writer.writerows([f"a{index}", *row] for index, row in enumerate(rows))

    page = _page(browser, site)
    page.goto(site.url("/batches/new/"))
    page.select_option("#id_model_name", tour.model)
    page.set_input_files("#id_file", str(source))
    page.click("main button[type=submit]")
    # The detail page refreshes itself until the job is finished.
    download = page.locator("a:text('Download results (CSV)')")
    expect(download).to_be_visible(timeout=site.timeout * 1000)
    shoot(page, "batch-detail")
    with page.expect_download() as info:
        download.click()
    result = _csv(Path(info.value.path()).read_text())
    page.context.close()

    assert [row["id"] for row in result] == [f"a{index}" for index in range(len(rows))]
    expected = tour.booster.predict(xgboost.DMatrix(rows.astype(np.float32), feature_names=FEATURES))
    np.testing.assert_allclose([float(row["prediction"]) for row in result], expected, rtol=1e-6)


def test_a_training_run_from_a_csv_registers_a_new_version_with_its_metrics(
    tour: Tour, site: Site, browser: Browser, shoot, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(400, len(FEATURES))).round(4)
    labels = (rows[:, 0] - rows[:, 1] > 0).astype(int)
    source = tmp_path / "history.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        writer.writerows([*row, label] for row, label in zip(rows, labels, strict=True))

    page = _page(browser, site)
    page.goto(site.url(f"/models/train/new/?name={tour.model}"))
    page.set_input_files("#id_dataset", str(source))
    page.select_option("#id_objective", "binary:logistic")
    page.fill("#id_num_boost_round", "30")
    page.check("#id_include_feedback")
    page.click("main button[type=submit]")
    expect(page.locator("main .badge.succeeded")).to_be_visible(timeout=site.timeout * 1000)
    expect(page.locator("main")).to_contain_text("auc")
    shoot(page, "training-run")
    page.goto(site.url(f"/models/{tour.model}/"))
    # The tour's version plus the trained one, which starts in staging.
    expect(page.locator("main tr:has(.badge.staging)")).to_have_count(1)
    page.context.close()


@pytest.mark.parametrize(
    ("path", "name", "heading"),
    [
        ("/dashboard/", "dashboard", "Dashboard"),
        ("/models/", "models", "Models"),
        ("/keys/", "keys", "API keys"),
        ("/reviews/", "review-queue", "Review queue"),
        ("/batches/", "batches", "Batch"),
        ("/models/train/", "training-runs", "Training"),
    ],
)
def test_each_main_page_renders_without_browser_errors(
    tour: Tour, site: Site, browser: Browser, shoot, path: str, name: str, heading: str
) -> None:
    page = _page(browser, site)
    errors: list[str] = []
    # A script or style blocked by the Content-Security-Policy shows up here too.
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.url(path))
    page.wait_for_load_state("networkidle")
    expect(page.locator("main h1")).to_contain_text(heading)
    if path == "/dashboard/":
        # uPlot draws into canvases once data.json has arrived.
        expect(page.locator("main canvas").first).to_be_visible()
    shoot(page, name)
    page.context.close()
    assert errors == []
