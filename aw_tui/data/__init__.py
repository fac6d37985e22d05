"""Bundled data: sample runs."""
