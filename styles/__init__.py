"""TCSS files for the Textual app, shipped inside the wheel as aw_tui.styles."""
