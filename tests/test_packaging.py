"""What gets installed: one top-level package, ``jit`` (backends/ and bench/ live
in it as jit.backends and jit.bench), so users' own modules never clash with ours."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO

CLASHING = "raise SystemExit(\"the user's own {name}.py was imported instead of the library's\")\n"


def test_jit_works_beside_a_users_backends_and_bench_modules(tmp_path) -> None:
    for name in ("backends", "bench"):
        (tmp_path / f"{name}.py").write_text(CLASHING.format(name=name))
    script = (
        "import jit, jit.bench.suite\n"
        "print(jit.compile('mov %r0, 7\\nexit')(), jit.compile('mov %r0, 8\\nexit', arch='arm64')())\n"
        "print(len(jit.bench.suite.SUITE) > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7", "8", "True"]


def test_the_wheel_holds_only_the_jit_package(tmp_path) -> None:
    """Built as pip builds it (isolated, setuptools from the package index)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("bpfjit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "jit",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    assert {
        "jit/backends/x86_64.py",
        "jit/backends/arm64.py",
        "jit/bench/runner.py",
        "jit/bench/programs/crc32.bin",
    } <= set(names)
    top_level = next(name for name in names if name.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).split() == [b"jit"]
