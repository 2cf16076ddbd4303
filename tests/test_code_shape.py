"""The code's shape (issue 15): no source file over 500 lines, no function over 80, and
``dualtalk_core`` free of ROS imports. Why a test: the limits keep modules readable, and a
limit that is only checked by hand drifts."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "build" not in p.parts)


def test_no_source_file_over_500_lines():
    long = {str(p.relative_to(SRC)): n for p in _sources()
            if (n := p.read_text().count("\n")) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_80_lines():
    long = {}
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(SRC)}:{node.lineno} {node.name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_core_imports_no_ros():
    ros = ("rclpy", "dualtalk_msgs", "dualtalk_ros", "diagnostic_msgs", "sensor_msgs")
    offenders = []
    for p in (SRC / "dualtalk_core").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{p.relative_to(SRC)}: {n}" for n in names if n.split(".")[0] in ros]
    assert not offenders, offenders
