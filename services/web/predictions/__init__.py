"""Prediction audit log written by the worker."""
