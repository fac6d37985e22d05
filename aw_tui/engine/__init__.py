"""Doing the work: LLM adapter, tools, agent loop, orchestrator. No textual."""
