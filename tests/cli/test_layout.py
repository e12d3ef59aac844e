"""The CLI package's layout: one module per subcommand, no import circle, lazy heavy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from ecgssl import cli

CLI_DIR = Path(cli.__file__).parent


@pytest.mark.parametrize("name", cli.COMMANDS)
def test_a_command_module_imports_only_the_shared_helpers(name):
    """``register`` is defined, and of ``ecgssl.cli`` only ``ecgssl.cli.common`` is imported."""
    tree = ast.parse((CLI_DIR / f"{name}.py").read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ecgssl.cli"):
            assert node.module == "ecgssl.cli.common", f"{name}.py imports {node.module}"
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("ecgssl.cli") for a in node.names), name


def test_every_subcommand_is_registered_in_order():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(cli.COMMANDS)


def test_help_loads_neither_torch_nor_lightning():
    code = ("import sys; from ecgssl.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
