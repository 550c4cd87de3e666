"""``make bench``: the platform against the in-process limit, a naive Celery design and MLServer."""
