"""Our widgets, screens and app must not assign attributes Textual already uses.

Textual keeps state in plain attributes and reactives (Screen.focused, Widget._nodes, ...). Assigning one by
accident in a subclass does not fail where it happens: the app hangs or crashes later, far away. This has bitten
three times, so every `self.<name> = ...` under aw_tui/ui is checked against the Textual base classes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import aw_tui.ui
from textual.dom import DOMNode

# Public attributes Textual means subclasses to set.
INTENDED = {"border_title", "border_subtitle", "title", "sub_title", "show_root", "guide_depth", "can_focus",
            "tooltip", "disabled", "display", "visible"}  # fmt: skip
# Textual internals replaced on purpose. aw_tui.ui.widgets.scrolling puts a StylesCache subclass in place of a
# widget's own; tests/ui/test_scrolling.py checks that the screen still shows what Textual's would.
REPLACED = {"_styles_cache"}


def textual_bases(cls: type) -> list[type]:
    return [base for base in cls.__mro__ if base.__module__.startswith("textual.")]


def assigned_names(cls: type) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(inspect.getsource(cls))):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            leaves = [leaf for target in targets for leaf in (target.elts if isinstance(target, ast.Tuple) else [target])]
            for leaf in leaves:  # `self.x = ...`, not `self.query_one(X).y = ...`
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
                    names.add(leaf.attr)
    return names


def our_textual_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(aw_tui.ui.__path__, "aw_tui.ui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, DOMNode):
                found.append(cls)
    return found


def test_no_ui_class_assigns_an_attribute_textual_uses():
    classes = our_textual_classes()
    assert len(classes) >= 8  # the walk found the app, the screens and the widgets
    clashes = []
    for cls in classes:
        reserved = set()
        for base in textual_bases(cls):
            reserved |= set(dir(base))
            try:
                reserved |= set(vars(base()))  # attributes set in __init__
            except TypeError:
                pass  # a base that needs arguments; its class attributes are still covered by dir()
        for name in sorted(assigned_names(cls) & reserved - INTENDED - REPLACED):
            clashes.append(f"{cls.__module__}.{cls.__name__}.{name}")
    assert clashes == []
