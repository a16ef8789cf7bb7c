"""Copy-and-patch assembly: the emitter's text to machine code without keystone
parsing every line of every program.

Keystone stays the assembler of record. :class:`PatchAssembler` keeps the
bytes keystone produced for each distinct line (an instruction's encoding
does not depend on where it lands: the emitters use no RIP- or PC-relative
operand but branches), assembles the lines it has not seen in one keystone
call, and copies the rest. Branches to labels are the only instructions whose
bytes depend on the layout: a :class:`BranchForm` per mnemonic encodes them,
and the layout is computed as keystone (LLVM's MC layer) computes it: every
relaxable branch starts in its short form and grows to its long form while
its displacement does not fit, until nothing changes. The result is the same
bytes keystone would give for the whole text, which
``tests/test_patching.py`` checks on every ISA row, the conformance suite,
the bench programs and generated programs, for both architectures
(``CodegenOptions.assembler = "keystone"`` assembles with keystone alone).

The memo is a bounded per-architecture cache (cleared when it grows past
:data:`MEMO_LINES`), shared by every compilation in the process.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from jit.core.errors import CompileError

MEMO_LINES = 1 << 16
_UNSEEN = object()


@dataclass(frozen=True)
class BranchForm:
    """How one branch mnemonic is encoded: ``encode(displacement, long)``
    returns its bytes, the displacement counted from the end of the branch;
    ``short``/``long`` are its sizes (``short`` None: one form only) and
    ``short_range`` the displacements its short form holds."""

    long: int
    encode: Callable[[int, bool], bytes]
    short: int | None = None
    short_range: range = range(0)


class _Branch:
    __slots__ = ("end", "form", "is_long", "target")

    def __init__(self, target: str, form: BranchForm):
        self.target, self.form = target, form
        self.is_long = form.short is None
        self.end = 0  # the offset just past the branch, in the current layout

    @property
    def size(self) -> int:
        return self.form.long if self.is_long else self.form.short  # type: ignore[return-value]


class PatchAssembler:
    """Assembly text to (machine code, label offsets) by copy and patch (module docstring).

    ``assemble`` is keystone's path (text, what) -> bytes; ``branch_form``
    gives the :class:`BranchForm` of a mnemonic and its operands other than
    the label, or None when the line is not a branch; it is asked only for
    ``mnemonics`` (the branch mnemonics) whose last operand is a label the
    text defines; ``width``, the size of every instruction when the
    ISA has one (ARM64: 4), lets new lines be split without marker labels."""

    def __init__(
        self,
        assemble: Callable[[str, str], bytes],
        branch_form: Callable[[str, tuple[str, ...]], BranchForm | None],
        mnemonics: Iterable[str],
        width: int | None = None,
    ):
        self._keystone = assemble
        self._branch_form = branch_form
        self._mnemonics = frozenset(mnemonics)
        self._width = width
        self._memo: dict[str, bytes] = {}
        # The memo's lines that are not branch mnemonics: never a branch to a label, so
        # copied without looking inside them.
        self._fixed: dict[str, bytes] = {}
        self._forms: dict[tuple[str, ...], BranchForm | None] = {}  # branch_form's answers

    def assemble(self, text: str, what: str) -> tuple[bytes, dict[str, int]]:
        """The machine code of ``text`` and the offset of each label it defines."""
        lines = [line.strip() for line in text.split("\n")]
        defined = {line[:-1] for line in lines if line[-1:] == ":"}
        mnemonics, forms, fixed = self._mnemonics, self._forms, self._fixed
        items: list = []  # fixed code (a list of bytes and unseen lines per run), label names (str) and _Branch
        run: list = []
        unseen: set[str] = set()
        for line in lines:
            code = fixed.get(line)  # most lines: an instruction seen before that is not a branch
            if code is not None:
                run.append(code)
                continue
            if not line:
                continue
            if line[-1] == ":":
                items += (run, line[:-1])
                run = []
                continue
            mnemonic, _, rest = line.partition(" ")
            if mnemonic in mnemonics:
                *operands, target = (part.strip() for part in rest.split(","))
                form = forms.get(key := (mnemonic, *operands), _UNSEEN) if target in defined else None
                if form is _UNSEEN:
                    form = forms[key] = self._branch_form(mnemonic, tuple(operands))
                if form is not None:
                    items += (run, _Branch(target, form))
                    run = []
                    continue
            code = self._memo.get(line)
            if code is None:
                unseen.add(line)
                code = line
            run.append(code)
        items.append(run)
        self._learn(unseen, what)
        memo = self._memo
        items = [
            b"".join([code if code.__class__ is bytes else memo[code] for code in item])
            if item.__class__ is list
            else item
            for item in items
        ]
        # The layout with every relaxable branch short: each label's offset and the
        # number of branches before it; each branch's end. Growing branch k by
        # delta moves everything after it by delta, so a layout is these plus the
        # growth of the branches before each point.
        branches: list[_Branch] = []
        label_at: dict[str, tuple[int, int]] = {}
        offset = 0
        for item in items:
            if item.__class__ is bytes:
                offset += len(item)
            elif item.__class__ is str:
                label_at[item] = (offset, len(branches))
            else:
                offset += item.size
                item.end = offset
                branches.append(item)
        while True:  # a consistent layout, then every short branch checked against it
            growth = [0]  # growth[k]: bytes added by branches 0..k-1
            for branch in branches:
                delta = branch.form.long - branch.form.short if branch.is_long and branch.form.short else 0
                growth.append(growth[-1] + delta)
            grew = False
            for k, branch in enumerate(branches):
                if not branch.is_long:
                    at, before = label_at[branch.target]
                    if at + growth[before] - (branch.end + growth[k]) not in branch.form.short_range:
                        branch.is_long = grew = True
            if not grew:
                break
        placed = {name: at + growth[before] for name, (at, before) in label_at.items()}
        out = []
        k = 0
        for item in items:
            if item.__class__ is bytes:
                out.append(item)
            elif item.__class__ is _Branch:
                end = item.end + growth[k + 1]
                out.append(item.form.encode(placed[item.target] - end, item.is_long))
                k += 1
        return b"".join(out), placed

    def _learn(self, new_lines: set[str], what: str) -> None:
        """Keystone's bytes for every line in ``new_lines`` (none in the memo), in one call."""
        if not new_lines:
            return
        if len(self._memo) + len(new_lines) > MEMO_LINES:
            self._memo.clear()  # a text needs at most its own lines: those just found new stay valid
            self._fixed.clear()
        new = sorted(new_lines)
        if self._width is not None:
            # Keystone's ARM64 parser, given many marker labels, later fails valid texts
            # ("Unknown error") in other instances too: fixed-width code needs no marks.
            code = self._keystone("\n".join(new) + "\n", what)
            if len(code) != self._width * len(new):
                raise CompileError(f"{what}: {len(new)} instructions assembled to {len(code)} bytes")
            learned = {line: code[i * self._width : (i + 1) * self._width] for i, line in enumerate(new)}
        else:
            marks = [f"patch_mark_{i}" for i in range(len(new) + 1)]
            body = "".join(f"{mark}:\n{line}\n" for mark, line in zip(marks, new)) + f"{marks[-1]}:\n"
            table = "".join(f".quad {', '.join(marks[i : i + 64])}\n" for i in range(0, len(marks), 64))
            code = self._keystone(body + table, what)
            split = len(code) - 8 * len(marks)
            ends = struct.unpack_from(f"<{len(marks)}Q", code, split)
            learned = {line: code[ends[i] : ends[i + 1]] for i, line in enumerate(new)}
        self._memo.update(learned)
        mnemonics = self._mnemonics
        self._fixed.update((line, code) for line, code in learned.items() if line.partition(" ")[0] not in mnemonics)


def branch_table(forms: Mapping[str, BranchForm]) -> Callable[[str, tuple[str, ...]], BranchForm | None]:
    """A ``branch_form`` for mnemonics whose encoding needs no other operand."""
    return lambda mnemonic, operands: None if operands else forms.get(mnemonic)
