"""Model registry: versions of XGBoost models, their artifacts and stages."""
