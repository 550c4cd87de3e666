"""Model loading: cached per version, verified against its sha256."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost

from inference_worker.models import ModelLoadError


@pytest.mark.parametrize("ext", [".json", ".ubj"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_loaded_models_predict_like_the_booster_itself(
    engine, store, cache, kind, ext, register_model, train_model
):
    booster = train_model(kind)
    registered = register_model(booster, ext)
    rows = np.random.default_rng(1).normal(size=(17, 5)).astype(np.float32)
    model = cache.get(registered.id)
    np.testing.assert_array_equal(model.predict(rows), booster.predict(xgboost.DMatrix(rows)))
    assert model.n_features == 5
    assert model.device == "cpu"


def test_a_model_is_loaded_once_and_evicted_least_recently_used(
    engine, store, cache, register_model, train_model
):
    ids = [register_model(train_model("regression", seed=seed)).id for seed in range(3)]
    first = cache.get(ids[0])
    assert cache.get(ids[0]) is first
    cache.get(ids[1])
    cache.get(ids[2])
    assert len(cache) == 2
    assert cache.get(ids[0]) is not first  # evicted, then loaded again


def test_a_tampered_artifact_is_refused(engine, store, cache, register_model, train_model):
    registered = register_model(train_model("binary"))
    registered.path.write_text(registered.path.read_text().replace("1", "2", 1))
    with pytest.raises(ModelLoadError, match="does not match its sha256"):
        cache.get(registered.id)


def test_a_missing_artifact_or_version_is_refused(engine, store, cache, register_model, train_model):
    registered = register_model(train_model("binary"))
    registered.path.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        cache.get(registered.id)
    with pytest.raises(ModelLoadError, match="not registered"):
        cache.get(9999)


def test_a_file_that_is_not_a_booster_is_refused(engine, store, cache, register_model, train_model):
    registered = register_model(train_model("binary"))
    registered.path.write_text("{}")
    import hashlib

    from sqlalchemy import update

    from inference_common.schema import model_versions

    with engine.begin() as conn:
        conn.execute(
            update(model_versions)
            .where(model_versions.c.id == registered.id)
            .values(sha256=hashlib.sha256(b"{}").hexdigest())
        )
    with pytest.raises(ModelLoadError, match="not a booster"):
        cache.get(registered.id)


def test_a_recently_used_model_survives_eviction(cache, register_model, train_model):
    ids = [register_model(train_model("regression", seed=seed)).id for seed in range(3)]
    first = cache.get(ids[0])
    second = cache.get(ids[1])
    assert cache.get(ids[0]) is first  # now the most recently used
    cache.get(ids[2])  # evicts ids[1]
    assert len(cache) == 2
    assert cache.get(ids[0]) is first
    assert cache.get(ids[1]) is not second


def test_a_loaded_model_carries_its_registry_facts(engine, store, register_model, train_model):
    from inference_worker.models import ModelCache

    registered = register_model(train_model("multiclass", n_features=7), ".ubj", name="iris")
    model = ModelCache(engine, store, "cpu").get(registered.id)
    assert (model.model_version_id, model.name, model.n_features) == (registered.id, "iris", 7)
    assert model.version == registered.path.stem[:8]
    assert model.load_seconds > 0
    assert model.booster.num_features() == 7
    rows = np.random.default_rng(4).normal(size=(3, 7)).astype(np.float32)
    assert model.predict(rows).shape == (3, 3)


def test_file_sha256_matches_the_files_digest(tmp_path):
    from inference_common.artifacts import file_sha256

    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_truncated_artifact_fails_its_checksum(cache, register_model, train_model):
    registered = register_model(train_model("regression"), ".ubj")
    data = registered.path.read_bytes()
    registered.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="does not match its sha256"):
        cache.get(registered.id)
    assert len(cache) == 0
