"""The Textual app. Never imports litellm."""
