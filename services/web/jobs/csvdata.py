"""Reading uploaded CSV files into numeric matrices, with errors a person can act on.

Batches and training both take CSV uploads. Every error names the line
(counting the header as line 1) and the column, so a user can fix the file
instead of guessing why it was refused.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np

#: Column carried from a batch input to its results, when present.
ID_COLUMN = "id"
#: Largest magnitude a float32 holds.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class CsvError(ValueError):
    """The file is not a CSV the platform can use; the message says where and why."""


@dataclass(frozen=True)
class NumericTable:
    """Numeric columns of a CSV file in the requested order, plus optional pass-through ids."""

    columns: list[str]
    matrix: np.ndarray
    ids: list[str] | None


def text_lines(binary: IO[bytes]) -> Iterable[str]:
    """Decode an uploaded file as UTF-8 (a leading BOM, as Excel writes, is dropped)."""
    binary.seek(0)
    return codecs.iterdecode(binary, "utf-8-sig")


def read_header(binary: IO[bytes]) -> list[str]:
    """The column names of the first line; CsvError if it is missing, blank or has duplicates."""
    try:
        header = next(csv.reader(text_lines(binary)), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CsvError(f"line 1: not a readable UTF-8 CSV file ({exc})") from None
    if not header or not any(name.strip() for name in header):
        raise CsvError("the file is empty: the first line must name the columns")
    names = [name.strip() for name in header]
    if "" in names:
        raise CsvError(f"line 1: column {names.index('') + 1} has no name")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CsvError(f"line 1: column {name!r} appears twice")
        seen.add(name)
    return names


def parse_number(text: str, *, line: int, column: str, allow_missing: bool) -> float:
    """One cell as a float; an empty cell is NaN (a missing value) only where allowed."""
    stripped = text.strip()
    if stripped == "":
        if allow_missing:
            return math.nan
        raise CsvError(f"line {line}, column {column!r}: the value is empty")
    try:
        value = float(stripped)
    except ValueError:
        raise CsvError(f"line {line}, column {column!r}: {stripped[:40]!r} is not a number") from None
    if math.isnan(value) and allow_missing:
        return value
    if not math.isfinite(value):
        raise CsvError(f"line {line}, column {column!r}: {stripped[:40]!r} is not a finite number")
    # Models compute in float32: a larger value would silently become infinite (as the api refuses it too).
    if abs(value) > FLOAT32_MAX:
        raise CsvError(f"line {line}, column {column!r}: {stripped[:40]!r} is outside the float32 range")
    return value


def read_numeric(
    binary: IO[bytes],
    columns: Sequence[str],
    *,
    allow_missing: bool = False,
    keep_ids: bool = False,
    max_rows: int | None = None,
) -> NumericTable:
    """Read ``columns`` (in that order) of every data line as float64.

    Extra columns are ignored; with ``keep_ids`` the ``id`` column, when
    present, is returned as text. ``allow_missing`` turns empty cells into NaN
    (XGBoost's missing value) instead of refusing them.
    """
    header = read_header(binary)
    missing = [name for name in columns if name not in header]
    if missing:
        shown = ", ".join(repr(name) for name in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise CsvError(f"line 1: missing column(s) {shown}{more}; the file has {', '.join(header[:20])}")
    positions = [header.index(name) for name in columns]
    id_position = header.index(ID_COLUMN) if keep_ids and ID_COLUMN in header else None
    rows: list[list[float]] = []
    ids: list[str] = []
    reader = csv.reader(text_lines(binary))
    next(reader)
    try:
        for line_number, record in enumerate(reader, start=2):
            if not record or all(not cell.strip() for cell in record):
                continue  # blank lines (often a trailing one) carry no row
            if len(record) != len(header):
                raise CsvError(
                    f"line {line_number}: {len(record)} values, but the header names {len(header)}"
                )
            rows.append(
                [
                    parse_number(record[pos], line=line_number, column=name, allow_missing=allow_missing)
                    for pos, name in zip(positions, columns, strict=True)
                ]
            )
            if id_position is not None:
                ids.append(record[id_position].strip())
            if max_rows is not None and len(rows) > max_rows:
                raise CsvError(f"the file has more than {max_rows} rows")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CsvError(f"not a readable UTF-8 CSV file ({exc})") from None
    if not rows:
        raise CsvError("the file has a header but no data rows")
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns))
    return NumericTable(columns=list(columns), matrix=matrix, ids=ids if id_position is not None else None)
