"""Reading uploaded invoice files."""

from ingest.parse import parse_rows

__all__ = ["parse_rows"]
