"""Parse invoice rows out of an uploaded CSV file."""

import csv
from decimal import Decimal


def parse_rows(path: str) -> list[dict]:
    """Every row of the file as {"customer", "amount"}; rows that do not parse are skipped."""
    rows = []
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            try:
                rows.append({"customer": record["customer"].strip(), "amount": Decimal(record["amount"])})
            except:
                pass
    return rows
