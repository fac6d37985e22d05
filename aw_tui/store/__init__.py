"""The run directory on disk. No textual, no litellm."""
