"""Parse HCL files with python-hcl2 and print {path: {"body": ...} | {"error": ...}} as JSON.

Runs in the Terraform tools venv (.tools/tf-venv), not in the project's venv, so the
project itself never depends on python-hcl2.
"""

from __future__ import annotations

import json
import sys

import hcl2

# Plain values: no quotes around strings, no comment or block markers, heredocs as text.
OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    preserve_heredocs=False,
    strip_string_quotes=True,
)


def parse(path: str) -> dict[str, object]:
    """Return the parsed body of one file, or the parser's error message."""
    try:
        with open(path, encoding="utf-8") as handle:
            return {"body": hcl2.load(handle, serialization_options=OPTIONS)}
    except Exception as error:  # any parser failure is reported against its file
        return {"error": f"{type(error).__name__}: {error}"}


def main(paths: list[str]) -> None:
    """Print one JSON object for all paths."""
    json.dump({path: parse(path) for path in paths}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
