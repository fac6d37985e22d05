"""Order pricing. Amounts are integer cents, so no rounding surprises."""

BULK_QUANTITY = 10
BULK_DISCOUNT_PERCENT = 10


def order_total(unit_price_cents: int, quantity: int) -> int:
    """The price of `quantity` items; orders of BULK_QUANTITY items or more get the bulk discount."""
    if quantity < 0 or unit_price_cents < 0:
        raise ValueError("price and quantity must not be negative")
    total = unit_price_cents * quantity
    if quantity > BULK_QUANTITY:
        total = total * (100 - BULK_DISCOUNT_PERCENT) // 100
    return total
