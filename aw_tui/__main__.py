from aw_tui.cli import entry

entry()
