"""Assembler and disassembler for the conformance-suite dialect (FORMAT.md section 4).

Parsing is driven by :data:`jit.core.isa.ISA`: each mnemonic maps to its candidate
rows, and each row's :class:`~jit.core.isa.Form` syntax string (``"D, [S+off]"``,
``"local T32"``...) is compiled once into a list of operand parsers. Between
rows sharing a mnemonic (``add`` with a register or an immediate, the four
``call`` forms) the first row whose register operands line up wins.

Extensions beyond the suite's dialect, so that every decodable program can be
written: ``lddw.mapfd``/``.mapval``/``.var``/``.code``/``.mapidx``/
``.mapvalidx`` (LD_IMM64 with src 1..6), ``ldabsb/h/w I`` and
``ldindb/h/w %rS, I``.

Other BPF assemblers' common spellings are read too (uBPF's, llvm-mc's
mnemonic syntax): registers without ``%`` (``r0``), spaces inside memory
operands (``[r1 + 4]``), commas without a space, and ``;`` or ``//``
comments besides ``#``. :func:`disassemble` writes the suite's dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jit.core import isa
from jit.core.bytecode import Instruction, format_instruction
from jit.core.errors import AssemblyError, BpfError, UsageError
from jit.core.isa import Form, OpSpec
from jit.core.usage import check_bool, check_str
from jit.frontend.program import Program

if TYPE_CHECKING:
    from jit.frontend.mapbinding import Maps

_REGISTERS = {f"%r{n}": n for n in range(isa.MAX_REG + 1)}
_MEM = re.compile(r"\[(%r[0-9]+)(?:([+-])([0-9a-zA-Z]+))?\]")
_DEC = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_LABEL = re.compile(r"[A-Za-z0-9_.$][A-Za-z0-9_.$]*")
_CALL_MODES = ("helper", "local", "runtime")
_COMMENT = re.compile(r"#|;|//")
_BARE_REGISTER = re.compile(r"(?<![%\w.$])r([0-9]+)\b")
_SPACED_MEMORY = re.compile(r"\[\s*(%r[0-9]+)\s*(?:([+-])\s*([0-9a-zA-Z]+)\s*)?\]")
_TIGHT_COMMA = re.compile(r",(?=[^\s,])")


def _tokens(line: str) -> list[str]:
    """The line's tokens in the suite's dialect (see the module docstring)."""
    line = _COMMENT.split(line, 1)[0]
    if "r" in line:
        line = _BARE_REGISTER.sub(r"%r\1", line)
    if "[" in line:
        line = _SPACED_MEMORY.sub(lambda m: f"[{m.group(1)}{m.group(2) or ''}{m.group(3) or ''}]", line)
    return _TIGHT_COMMA.sub(", ", line).split()


class _Error(Exception):
    """An operand problem; :func:`assemble` adds the line number and text."""


# --- numbers and registers -----------------------------------------------------


def _number(token: str, lo_signed: int, hi_signed: int, bits: int, what: str, allow_unsigned_dec: bool = False) -> int:
    """Parse a signed-decimal or hex-bit-pattern number of ``bits`` bits."""
    if _HEX.fullmatch(token):
        value = int(token, 16)
        if value >= 1 << bits:
            raise _Error(f"{what} {token} is out of range (0x0..0x{(1 << bits) - 1:x})")
        return value - (1 << bits) if value >= 1 << (bits - 1) else value
    if _DEC.fullmatch(token):
        value = int(token)
        hi = (1 << bits) - 1 if allow_unsigned_dec else hi_signed
        if not lo_signed <= value <= hi:
            raise _Error(f"{what} {token} is out of range ({lo_signed}..{hi})")
        return value
    raise _Error(f"bad {what} {token!r} (expected signed decimal or 0x hex)")


def _imm32(token: str) -> int:
    return _number(token, -(1 << 31), (1 << 31) - 1, 32, "immediate")


def _imm64(token: str) -> int:
    """LD_IMM64 constant, returned unsigned as :class:`Instruction` stores it."""
    return _number(token, -(1 << 63), (1 << 63) - 1, 64, "64-bit immediate", allow_unsigned_dec=True) & ((1 << 64) - 1)


def _register(token: str) -> int:
    reg = _REGISTERS.get(token)
    if reg is None:
        raise _Error(f"bad register {token!r} (expected %r0..%r10)")
    return reg


def _memory(token: str) -> tuple[int, int]:
    """``[%rN]``, ``[%rN+off]`` or ``[%rN-off]`` -> (base register, offset)."""
    match = _MEM.fullmatch(token)
    if not match:
        raise _Error(f"malformed memory operand {token!r} (expected [%rN], [%rN+off] or [%rN-off])")
    base = _register(match.group(1))
    sign, text = match.group(2), match.group(3)
    if sign is None:
        return base, 0
    if sign == "+":
        return base, _number(text, -32768, 32767, 16, "offset")
    if not text.isdigit():
        raise _Error(f"bad offset in {token!r}: only decimal may follow '-'")
    if int(text) > 32768:
        raise _Error(f"offset -{text} is out of range (-32768..32767)")
    return base, -int(text)


def _displacement(token: str, bits: int) -> int:
    """A numeric jump target ``+N``/``-N``, range-checked for a ``bits``-bit field."""
    sign, text = token[0], token[1:]
    if _HEX.fullmatch(text) and sign == "+":
        value = int(text, 16)
    elif text.isdigit() and text.isascii():
        value = int(text) if sign == "+" else -int(text)
    else:
        raise _Error(f"bad jump target {token!r}")
    _check_displacement(value, bits)
    return value


def _check_displacement(value: int, bits: int) -> None:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not lo <= value <= hi:
        raise _Error(f"jump displacement {value:+d} does not fit the {bits}-bit field ({lo}..{hi})")


# --- operand patterns, compiled from Form.syntax ---------------------------------

# A pattern slot: (kind, field, bits). Kinds: "reg", "imm", "imm64", "mem",
# "target", "keyword" (field holds the word).
_Slot = tuple[str, str, int]

_SLOT_SYNTAX: dict[str, _Slot] = {
    "D": ("reg", "dst", 0),
    "%rD": ("reg", "dst", 0),
    "S": ("reg", "src", 0),
    "I": ("imm", "imm", 32),
    "Q": ("imm64", "imm", 64),
    "T": ("target", "off", 16),
    "T32": ("target", "imm", 32),
    "[D+off]": ("mem", "dst", 0),
    "[S+off]": ("mem", "src", 0),
}


def _compile_form(form: Form) -> tuple[_Slot, ...]:
    slots = []
    for word in form.syntax.replace(",", " ").split():
        if word in _SLOT_SYNTAX:
            slots.append(_SLOT_SYNTAX[word])
        elif word.isalpha() and word.islower():
            slots.append(("keyword", word, 0))
        else:
            raise ValueError(f"jit.core.isa: unknown operand syntax {word!r} in {form}")
    return tuple(slots)


_PATTERNS: dict[Form, tuple[_Slot, ...]] = {form: _compile_form(form) for form in Form}


# A candidate row with its compiled pattern.
_Row = tuple[OpSpec, tuple[_Slot, ...]]
_KEYWORDS = frozenset(name for pattern in _PATTERNS.values() for kind, name, _ in pattern if kind == "keyword")


def _shape(pattern: tuple[_Slot, ...]) -> tuple[str, ...]:
    """What a row's operand tokens look like: ``%`` a register, a keyword, or ``v`` a value."""
    return tuple("%" if kind == "reg" else name if kind == "keyword" else "v" for kind, name, _ in pattern)


def _build_index() -> tuple[dict[str, tuple[_Row, ...]], dict[tuple[str, tuple[str, ...]], _Row]]:
    """mnemonic -> candidate rows, and (mnemonic, operand shape) -> the row it selects."""
    rows: dict[str, tuple[_Row, ...]] = {}
    for spec in isa.ISA:
        rows[spec.mnemonic] = (*rows.get(spec.mnemonic, ()), (spec, _PATTERNS[spec.form]))
    for alias, target in isa.ALIASES.items():
        rows[alias] = rows[target]
    by_shape: dict[tuple[str, tuple[str, ...]], _Row] = {}
    for mnemonic, candidates in rows.items():
        for row in candidates:
            by_shape.setdefault((mnemonic, _shape(row[1])), row)
    return rows, by_shape


_MNEMONICS, _BY_SHAPE = _build_index()


@dataclass(slots=True)
class _LabelRef:
    """A jump target naming a label, resolved once every label is known."""

    label: str
    field: str
    bits: int
    index: int = 0  # of the instruction in the program
    slot: int = 0
    lineno: int = 0
    text: str = ""
    spec: OpSpec | None = None
    fields: dict[str, int] | None = None


def _parse_operands(pattern: tuple[_Slot, ...], operands: list[str]) -> tuple[dict[str, int], _LabelRef | None]:
    """The instruction fields the operands give, and the label the target names, if any."""
    fields: dict[str, int] = {}
    ref = None
    for (kind, name, bits), token in zip(pattern, operands):
        if kind == "reg":
            fields[name] = _register(token)
        elif kind == "imm":
            fields[name] = _imm32(token)
        elif kind == "imm64":
            fields[name] = _imm64(token)
        elif kind == "mem":
            fields[name], fields["off"] = _memory(token)
        elif kind == "target":
            if token[:1] in ("+", "-"):
                fields[name] = _displacement(token, bits)
            elif _LABEL.fullmatch(token):
                ref = _LabelRef(token, name, bits)
            else:
                raise _Error(f"bad jump target {token!r} (expected a label, +N or -N)")
    return fields, ref


def _split_mnemonic(tokens: list[str]) -> tuple[str, list[str]]:
    """The mnemonic (``lock [fetch] op`` spans several tokens) and its operands."""
    if tokens[0] != "lock":
        return tokens[0], tokens[1:]
    words = 3 if len(tokens) > 1 and tokens[1] == "fetch" else 2
    if len(tokens) < words:
        raise _Error("lock needs an atomic operation (add, or, and, xor, xchg, cmpxchg)")
    return " ".join(tokens[:words]), tokens[words:]


def _call_operands(operands: list[str]) -> list[str]:
    """``call helper X`` is ``call X``; any other two-word call needs a known mode."""
    if operands and operands[0] == "helper":
        if len(operands) != 2:
            raise _Error(f"call helper takes 1 operand, got {len(operands) - 1}")
        return operands[1:]
    if len(operands) == 2 and operands[0] not in _CALL_MODES:
        raise _Error(f"bad call mode {operands[0]!r} (expected helper, local or runtime)")
    return operands


def _closest_row(mnemonic: str, candidates: tuple[_Row, ...], operands: list[str]) -> _Row:
    """No row has the operands' shape: a row of the right size, whose parse gives a precise error."""
    row = next((r for r in candidates if len(r[1]) == len(operands)), None)
    if row is None:
        counts = sorted({len(r[1]) for r in candidates})
        hint = ""
        if any("," in t for t in operands):
            hint = " (operands are separated by ', ')"
        elif any(t.startswith("[") and not t.endswith("]") for t in operands):
            hint = " (a memory operand must not contain spaces)"
        raise _Error(f"{mnemonic} takes {' or '.join(map(str, counts))} operand(s), got {len(operands)}{hint}")
    for (kind, name, _), token in zip(row[1], operands):
        if kind == "keyword" and token != name:
            raise _Error(f"expected {name!r}, got {token!r}")
    return row


def _parse_instruction(tokens: list[str]) -> tuple[OpSpec, dict[str, int], _LabelRef | None]:
    mnemonic, raw_operands = _split_mnemonic(tokens)
    candidates = _MNEMONICS.get(mnemonic)
    if candidates is None:
        raise _Error(f"unknown mnemonic {mnemonic!r}")
    # One trailing comma is removed from each operand token (FORMAT.md 4.1).
    operands = [token[:-1] if token[-1] == "," else token for token in raw_operands]
    if mnemonic == "call":
        operands = _call_operands(operands)
    shape = tuple(["%" if t[:1] == "%" else t if t in _KEYWORDS else "v" for t in operands])
    spec, pattern = _BY_SHAPE.get((mnemonic, shape)) or _closest_row(mnemonic, candidates, operands)
    return (spec, *_parse_operands(pattern, operands))


def assemble(text: str, name: str = "prog", maps: Maps | None = None) -> Program:
    """Assemble conformance-suite assembly text into a :class:`Program`.

    Labels name slots (``lddw`` takes two). The first ``exit`` instruction
    defines the label ``exit`` unless the text defines ``exit:`` itself.
    Raises :class:`AssemblyError` naming the line (1-based) and showing it.
    ``maps`` (a list of :class:`jit.Map`, or a dict of them) binds
    ``lddw.mapfd %rN, I`` to map ``I`` of the list (``lddw.mapval %rN, I, OFF``:
    the address of byte OFF of array map ``I``'s first value); make maps with
    :func:`jit.create_map`.
    """
    prog = _assemble(check_str("text", text), check_str("name", name))
    if maps is None:
        return prog
    from jit.frontend.mapbinding import bind_maps

    return bind_maps(prog, maps)


def _assemble(text: str, name: str) -> Program:
    labels: dict[str, int] = {}
    label_lines: dict[str, int] = {}
    out: list[Instruction | None] = []
    refs: list[_LabelRef] = []
    slot = 0
    implicit_exit: int | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        tokens = _tokens(line)
        if not tokens:
            continue
        try:
            if tokens[0][-1] == ":":
                _define_label(tokens, slot, lineno, labels, label_lines)
                continue
            spec, fields, ref = _parse_instruction(tokens)
        except _Error as err:
            raise AssemblyError(str(err), line=lineno, text=line) from None
        if ref is None:
            out.append(Instruction(spec, **fields))
        else:
            ref.index, ref.slot, ref.lineno, ref.text, ref.spec, ref.fields = len(out), slot, lineno, line, spec, fields
            refs.append(ref)
            out.append(None)
        if implicit_exit is None and spec.form is Form.EXIT:
            implicit_exit = slot
        slot += 2 if spec.is_wide else 1
    if not out:
        raise AssemblyError("empty program: no instructions")
    if implicit_exit is not None:
        labels.setdefault("exit", implicit_exit)
    for ref in refs:
        out[ref.index] = _resolve(ref, labels)
    try:
        return Program(tuple(out), name=name)  # type: ignore[arg-type]  # every None was resolved
    except BpfError as err:  # e.g. more than isa.MAX_SLOTS slots
        raise AssemblyError(str(err)) from None


def _define_label(
    tokens: list[str], slot: int, lineno: int, labels: dict[str, int], label_lines: dict[str, int]
) -> None:
    name = tokens[0][:-1]
    if not _LABEL.fullmatch(name):
        raise _Error(f"bad label name {name!r}")
    if len(tokens) > 1:
        raise _Error("a label definition must be alone on its line")
    if name in labels:
        raise _Error(f"duplicate label {name!r} (first defined on line {label_lines[name]})")
    labels[name], label_lines[name] = slot, lineno


def _resolve(ref: _LabelRef, labels: dict[str, int]) -> Instruction:
    """The instruction with its label target turned into a displacement (in slots)."""
    assert ref.spec is not None and ref.fields is not None
    target = labels.get(ref.label)
    try:
        if target is None:
            raise _Error(f"undefined label {ref.label!r}")
        ref.fields[ref.field] = target - (ref.slot + 1)
        _check_displacement(ref.fields[ref.field], ref.bits)
    except _Error as err:
        raise AssemblyError(str(err), line=ref.lineno, text=ref.text) from None
    return Instruction(ref.spec, **ref.fields)


def disassemble(prog: Program, labels: bool = False) -> str:
    """The program as assembly text, one instruction per line.

    With ``labels``, jump and local-call targets inside the program become
    generated labels (``L12:`` before slot 12); other targets stay numeric.
    ``assemble(disassemble(p))`` rebuilds ``p`` exactly, in both modes.
    """
    if not isinstance(prog, Program):
        raise UsageError(f"disassemble takes a jit.Program (see jit.assemble), not {type(prog).__name__}")
    labels = check_bool("labels", labels)
    names: dict[int, str] = {}
    if labels:
        for pc, insn in prog:
            target = insn.target(pc)
            if target is not None and (target in prog.index_of or target == len(prog)):
                names[target] = f"L{target}"
    lines = []
    for pc, insn in prog:
        if pc in names:
            lines.append(f"{names[pc]}:")
        line = format_instruction(insn)
        target = insn.target(pc) if names else None
        if target in names:
            # Every form with a target prints it as its last operand.
            line = f"{line.rsplit(' ', 1)[0]} {names[target]}"
        lines.append(line)
    if len(prog) in names:
        lines.append(f"{names[len(prog)]}:")
    return "\n".join(lines) + "\n"
