"""Pure data and pure functions: events, RunState and its reducer, ledger maths, formatting.

No I/O, no textual, no litellm.
"""
