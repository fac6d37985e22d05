"""A tiny order-pricing module (the aw-tui demo project)."""
