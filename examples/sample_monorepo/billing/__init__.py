"""Charging invoices through the payment gateway."""

from billing.gateway import charge

__all__ = ["charge"]
