"""The on-disk code cache: later processes reuse a compile, and a file that is
corrupted, foreign, renamed or tampered with is never used."""

from __future__ import annotations

import errno
import hmac
import json
import os
import struct
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import jit
from jit.runtime import diskcache
from jit.runtime.codecache import CACHE

LOOP = "ldxb %r3, [%r1]\nmov %r0, 0\nl:\nadd %r0, 1\njne %r0, %r3, l\nexit"
# not proven safe: every access checked at run time, so the entry carries checks and notes
UNPROVEN = "ldxdw %r2, [%r1]\nand %r2, 7\nmov %r3, %r1\nadd %r3, %r2\nldxb %r0, [%r3]\nexit"


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(diskcache.ENV_VAR, raising=False)
    CACHE.clear()
    diskcache.open_cache.cache_clear()
    yield
    CACHE.clear()
    diskcache.open_cache.cache_clear()


def compile_fresh(source: str, directory: Path, **options: object) -> jit.compile:
    """Compile as a new process would: nothing in the in-process cache."""
    CACHE.clear()
    return jit.compile(source, cache_dir=directory, **options)


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + diskcache.SUFFIX))


def test_a_second_compile_reads_the_file(tmp_path: Path) -> None:
    first = compile_fresh(UNPROVEN, tmp_path)
    disk = diskcache.open_cache(os.fspath(tmp_path))
    assert (disk.misses, disk.hits, disk.writes) == (1, 0, 1) and len(entries(tmp_path)) == 1
    second = compile_fresh(UNPROVEN, tmp_path)
    assert (disk.misses, disk.hits, disk.rejected) == (1, 1, 0)
    assert second.code == first.code and second.native.offsets == first.native.offsets
    assert second.native.labels == first.native.labels and second.native.checks == first.native.checks
    assert second.native.facts == first.native.facts and second.native.assembly == first.native.assembly
    assert second.verification == first.verification and second.verification.unproven
    data = bytes(range(8, 16)) + b"\x55" * 8
    assert second(data) == first(data) == jit.interpret(jit.assemble(UNPROVEN), data)
    with pytest.raises(jit.MemoryAccessError):
        second(b"\x07")  # the run-time checks came back from the file too


def test_a_later_process_hits(tmp_path: Path) -> None:
    script = (
        "import os, jit\nfrom jit.runtime import diskcache\n"
        f"fn = jit.compile({LOOP!r})\n"
        "disk = diskcache.open_cache(os.environ['BPFJIT_CACHE_DIR'])\n"
        "print(fn(b'\\x09'), disk.hits, disk.writes)\n"
    )
    env = {**os.environ, diskcache.ENV_VAR: os.fspath(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True) for _ in range(2)]
    assert [run.stdout.split() for run in runs] == [["9", "0", "1"], ["9", "1", "0"]], [r.stderr for r in runs]


def test_the_environment_variable_chooses_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(diskcache.ENV_VAR, os.fspath(tmp_path / "made"))
    jit.compile(LOOP)
    assert len(entries(tmp_path / "made")) == 1
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o700


def test_cache_false_uses_no_file(tmp_path: Path) -> None:
    jit.compile(LOOP, cache=False, cache_dir=tmp_path)
    assert not tmp_path.exists() or not entries(tmp_path)


def test_each_architecture_and_option_has_its_own_file(tmp_path: Path) -> None:
    compile_fresh(LOOP, tmp_path, arch="arm64", emulate=True)
    compile_fresh(LOOP, tmp_path, arch="x86_64", emulate=True)
    compile_fresh(LOOP, tmp_path, arch="x86_64", emulate=True, max_steps=100)
    assert len(entries(tmp_path)) == 3
    again = compile_fresh(LOOP, tmp_path, arch="arm64", emulate=True)
    assert diskcache.open_cache(os.fspath(tmp_path)).hits == 1 and again(b"\x04") == 4


def test_programs_with_maps_stay_in_memory(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures"
    elf = next(path for path in sorted(fixture.glob("*.o")) if jit.Program.from_elf(path).maps)
    jit.compile(elf, cache_dir=tmp_path)
    assert entries(tmp_path) == []  # their code holds this process's map addresses


def test_a_changed_compiler_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile_fresh(LOOP, tmp_path)
    monkeypatch.setattr(diskcache, "source_digest", lambda: b"another version")
    compile_fresh(LOOP, tmp_path)
    assert len(entries(tmp_path)) == 2 and diskcache.open_cache(os.fspath(tmp_path)).hits == 0


def corrupt_cases() -> dict[str, object]:
    def flip(at: int):
        def change(blob: bytes) -> bytes:
            return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]

        return change

    return {
        "empty": lambda blob: b"",
        "truncated": lambda blob: blob[: len(blob) // 2],
        "garbage": lambda blob: os.urandom(len(blob)),
        "bad magic": flip(0),
        "bad tag": flip(len(diskcache.MAGIC)),
        "changed header": flip(len(diskcache.MAGIC) + 40),
        "changed code": flip(-1),
        "appended": lambda blob: blob + b"\xcc",
    }


@pytest.mark.parametrize("change", corrupt_cases().values(), ids=corrupt_cases().keys())
def test_a_damaged_file_is_rejected_and_rewritten(tmp_path: Path, change) -> None:
    first = compile_fresh(LOOP, tmp_path)
    [path] = entries(tmp_path)
    path.write_bytes(change(path.read_bytes()))
    second = compile_fresh(LOOP, tmp_path)
    disk = diskcache.open_cache(os.fspath(tmp_path))
    assert (disk.hits, disk.rejected, disk.writes) == (0, 1, 2)
    assert second.code == first.code and second(b"\x06") == 6
    compile_fresh(LOOP, tmp_path)
    assert disk.hits == 1  # the rewritten file is good


def test_a_file_signed_with_another_key_is_rejected(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    compile_fresh(LOOP, mine)
    compile_fresh("mov %r0, 1\nexit", theirs)
    [forged] = entries(theirs)
    [target] = entries(mine)
    target.write_bytes(forged.read_bytes())  # someone else's valid code under my program's name
    assert compile_fresh(LOOP, mine)(b"\x03") == 3
    assert diskcache.open_cache(os.fspath(mine)).rejected == 1


def test_a_valid_file_under_another_name_is_rejected(tmp_path: Path) -> None:
    compile_fresh(LOOP, tmp_path)
    compile_fresh("mov %r0, 1\nexit", tmp_path)
    loop, other = entries(tmp_path)
    data = {path: path.read_bytes() for path in (loop, other)}
    loop.write_bytes(data[other])
    other.write_bytes(data[loop])
    assert compile_fresh(LOOP, tmp_path)(b"\x02") == 2
    assert diskcache.open_cache(os.fspath(tmp_path)).rejected == 1


def test_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(jit.UsageError, match="writable by other users"):
        jit.compile(LOOP, cache_dir=shared)


def test_a_key_others_may_read_is_refused(tmp_path: Path) -> None:
    compile_fresh(LOOP, tmp_path)
    (tmp_path / diskcache.KEY_FILE).chmod(0o644)
    diskcache.open_cache.cache_clear()
    with pytest.raises(jit.UsageError, match="readable or writable by other users"):
        compile_fresh(LOOP, tmp_path)


def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(jit.UsageError, match="cache_dir"):
        jit.compile(LOOP, cache_dir=tmp_path / "file")
    with pytest.raises(jit.UsageError, match="file path"):
        jit.compile(LOOP, cache_dir=3)


def test_a_failed_write_warns_and_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile_fresh(LOOP, tmp_path)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(diskcache.tempfile, "mkstemp", full)
    with pytest.warns(RuntimeWarning, match="cannot write compiled code.*No space left"):
        assert compile_fresh("mov %r0, 5\nexit", tmp_path)() == 5
    assert len(entries(tmp_path)) == 1


def test_clear_removes_the_entries_and_keeps_the_key(tmp_path: Path) -> None:
    compile_fresh(LOOP, tmp_path)
    compile_fresh("mov %r0, 1\nexit", tmp_path)
    assert diskcache.open_cache(os.fspath(tmp_path)).clear() == 2
    assert entries(tmp_path) == [] and (tmp_path / diskcache.KEY_FILE).exists()


def _compile_in_worker(directory: str) -> tuple[int, int]:
    fn = jit.compile(LOOP, cache_dir=directory)
    return fn(b"\x07"), len(fn.code)


def test_concurrent_processes_agree(tmp_path: Path) -> None:
    """Eight processes race to make the key and write the same entry."""
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_compile_in_worker, [os.fspath(tmp_path)] * 8))
    assert len(set(results)) == 1 and results[0][0] == 7
    assert len(entries(tmp_path)) == 1 and not list(tmp_path.glob(".tmp-*"))
    assert compile_fresh(LOOP, tmp_path)(b"\x07") == 7
    assert diskcache.open_cache(os.fspath(tmp_path)).hits == 1


def test_canonical_forms_are_stable_and_distinct() -> None:
    assert diskcache.canonical(frozenset({3, 1, 2})) == diskcache.canonical(frozenset({2, 3, 1}))
    assert diskcache.canonical({"b": 1, "a": 2}) == diskcache.canonical({"a": 2, "b": 1})
    forms = [diskcache.canonical(value) for value in (1, True, "1", b"1", (1,), frozenset({1}), None, 0, False)]
    assert len(set(forms)) == len(forms)
    with pytest.raises(diskcache.Unkeyable):
        diskcache.canonical(object())


def resigned(blob: bytes, secret: bytes, change) -> bytes:
    """``blob`` with its JSON header changed by ``change`` and signed again with ``secret``."""
    start = len(diskcache.MAGIC) + 32
    body = blob[start:]
    (length,) = struct.unpack_from("<I", body)
    header = json.loads(body[4 : 4 + length])
    change(header)
    text = json.dumps(header).encode()
    body = struct.pack("<I", len(text)) + text + body[4 + length :]
    return diskcache.MAGIC + hmac.digest(secret, body, "sha256") + body


def set_field(record: dict, name: str, value: object) -> None:
    """Set a field of a record stored as {"map": [[name, value], ...]}."""
    pairs = record["map"]
    [index] = [i for i, (key, _) in enumerate(pairs) if key == name]
    pairs[index][1] = value


MALFORMED = {
    "labels not a map": lambda h: h.update(labels=[1, 2]),
    "too few offsets": lambda h: h.update(offsets=h["offsets"][:-1]),
    "offsets out of order": lambda h: h.update(offsets=h["offsets"][::-1]),
    "entry past the code": lambda h: h.update(entry=1 << 20),
    "offset not an int": lambda h: h["offsets"].__setitem__(0, "0"),
    "unknown record": lambda h: h.update(verification={"x": 1}),
    "unknown enum": lambda h: set_field(
        h["verification"], "regions", {"map": [[4, {"set": [{"enum": "Op", "name": "ADD"}]}]]}
    ),
    "check on no instruction": lambda h: h.update(checks=[[999, 1]]),
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_file_with_malformed_records_is_rejected(tmp_path: Path, change) -> None:
    """Authentic but wrong (as a bug of ours could write it): the shape checks refuse it."""
    compile_fresh(UNPROVEN, tmp_path)
    disk = diskcache.open_cache(os.fspath(tmp_path))
    [path] = entries(tmp_path)
    path.write_bytes(resigned(path.read_bytes(), disk._secret, change))
    fn = compile_fresh(UNPROVEN, tmp_path)
    assert (disk.hits, disk.rejected) == (0, 1)
    assert fn(bytes(16)) == jit.interpret(jit.assemble(UNPROVEN), bytes(16))


def test_the_cache_command_counts_and_clears(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jit.tools.cli import main

    compile_fresh(LOOP, tmp_path)
    compile_fresh("mov %r0, 1\nexit", tmp_path)
    assert main(["cache", "--dir", os.fspath(tmp_path)]) == 0
    assert "2 compiled programs" in capsys.readouterr().out
    assert main(["cache", "--dir", os.fspath(tmp_path), "--clear"]) == 0
    assert "removed 2" in capsys.readouterr().out and entries(tmp_path) == []
    assert main(["cache"]) == 1  # no --dir and no BPFJIT_CACHE_DIR
    assert "pass --dir DIR or set BPFJIT_CACHE_DIR" in capsys.readouterr().err
