"""Kernel-start bytecode: planning by source hash, compiling once, linking into __pycache__."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jupyter_envs.engines.builders import bytecode


def test_plan_compile_and_link_reuse_one_pyc_per_source_content(tmp_path: Path) -> None:
    tag = sys.implementation.cache_tag
    cache = tmp_path / "cache"
    one, two = tmp_path / "one", tmp_path / "two"  # two environments, same package
    for site in (one, two):
        (site / "pkg").mkdir(parents=True)
        (site / "pkg" / "__init__.py").write_text("VALUE = 42\n")
        (site / "pkg" / "broken.py").write_text("def (:\n")  # cannot compile: left as is
    files = ["pkg/__init__.py", "pkg/broken.py", "pkg/absent.py"]

    first = bytecode.plan(files, [one], cache, tag)
    assert len(first.links) == 2  # absent.py is not installed here
    assert len(first.missing) == 2
    done = subprocess.run(
        bytecode.compile_command(sys.executable, first.missing, tmp_path),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # a source that cannot compile fails nothing
    assert "not compiled:" in done.stdout
    assert "broken.py" in done.stdout
    assert bytecode.link_cached(first.links) == 1

    second = bytecode.plan(files, [two], cache, tag)
    assert [source.name for source, _ in second.missing] == ["broken.py"]  # the rest is cached
    assert bytecode.link_cached(second.links) == 1
    pyc = two / "pkg" / "__pycache__" / f"__init__.{tag}.pyc"
    assert pyc.stat().st_ino == (one / "pkg" / "__pycache__" / f"__init__.{tag}.pyc").stat().st_ino
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11  # checked hash (PEP 552)
    # An edited source no longer matches its pyc: Python checks the hash and recompiles.
    (two / "pkg" / "__init__.py").write_text("VALUE = 7\n")
    out = subprocess.run(
        [sys.executable, "-c", "import pkg; print(pkg.VALUE)"],
        cwd=two, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "7"
