"""Celery workers of the inference platform: XGBoost models, micro-batching, audit rows."""
