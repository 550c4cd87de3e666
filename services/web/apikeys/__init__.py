"""API keys that clients present to the inference API (``Authorization: Bearer``)."""
