"""aw-tui: supervise long analyst/worker LLM coding-agent runs from one terminal."""

__version__ = "0.1.0"
