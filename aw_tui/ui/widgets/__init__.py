"""Widgets of the aw-tui app, one per module."""
