"""Project configuration of the web service: settings, URLs, WSGI entry point."""
