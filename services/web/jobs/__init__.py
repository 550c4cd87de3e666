"""Asynchronous batch jobs and the chunks the worker computes for them."""
