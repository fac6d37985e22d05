"""README.md's two set-up commands are the ones CI runs and the ones that work."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shell_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_word_for_word():
    readme_commands = shell_blocks((REPO / "README.md").read_text())
    test_command = next(cmd for cmd in readme_commands if "pytest" in cmd)
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_main_command_uses_commands_that_exist():
    from aw_tui.cli import build_parser

    main_command = shell_blocks((REPO / "README.md").read_text())[0]
    parser = build_parser()
    for part in main_command.split("&&"):
        words = part.split()
        if words and words[0] == "aw-tui":
            parser.parse_args(words[1:])  # exits 2 on an unknown command or option
