"""Validation raises real exceptions: no ``assert`` in the library (``python -O`` drops them)."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "memcim"


def _asserts(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]


def test_no_assert_statement_in_the_library():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50  # the walk really sees the package
    found = {p.relative_to(SRC).as_posix(): _asserts(p) for p in files}
    found = {rel: lines for rel, lines in found.items() if lines}
    assert not found, f"assert statements (vanish under python -O; raise instead): {found}"


def test_public_validation_still_raises_under_python_O():
    script = textwrap.dedent(
        """
        import sys
        import torch
        from memcim import ConfigError
        from memcim import metrics

        assert False, "unreachable: python -O must drop this"
        print("optimize", sys.flags.optimize)
        probs = torch.full((4, 3), 1 / 3)
        y = torch.tensor([0, 1, 2, 0])
        cases = {
            "probs not a tensor": lambda: metrics.ece([[0.5, 0.5]], y),
            "labels not a tensor": lambda: metrics.accuracy(probs, [0, 1, 2, 0]),
            "scores not a tensor": lambda: metrics.ood_auroc([0.1], torch.tensor([0.2])),
            "R not a matrix": lambda: metrics.acc(object()),
        }
        for name, call in cases.items():
            try:
                call()
            except ConfigError as error:
                print("raised", name, "|", error)
            else:
                print("DID NOT RAISE", name)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    done = subprocess.run([sys.executable, "-O", "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "optimize 1" in out  # the asserts really were compiled away
    assert "DID NOT RAISE" not in out, out
    assert out.count("raised") == 4, out
    assert "probs=" in out and "y=" in out and "R=" in out  # errors name the argument
