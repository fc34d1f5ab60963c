"""The fault tree drawn at the top of :mod:`sts.errors` is the real class hierarchy, so it cannot rot."""

from __future__ import annotations

import inspect
import textwrap

from sts import errors, ns

_PREFIXES = {ns.S11: "soap", ns.WSSE: "wsse", ns.WST: "wst"}


def _classes() -> list[type[errors.STSError]]:
    """Every STSError subclass defined in sts.errors, in source order."""
    found = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, errors.STSError) and obj.__module__ == errors.__name__
    ]
    return sorted(found, key=lambda cls: inspect.getsourcelines(cls)[1])


def _render() -> str:
    """Draw the hierarchy: bases by name, leaves with fault QName, fixed string and SOAP 1.2 Receiver marker."""
    classes = _classes()
    lines: list[str] = []

    def walk(cls: type[errors.STSError], depth: int) -> None:
        children = [c for c in classes if c.__bases__[0] is cls]
        label = "  " * depth + cls.__name__
        if children:
            lines.append(label)
        else:
            qname = f"{_PREFIXES[cls.fault_ns]}:{cls.fault_local}"
            receiver = "  (Receiver)" if not cls.sender else ""
            lines.append(f'{label:<29} {qname} "{cls.fault_string}"{receiver}')
        for child in children:
            walk(child, depth + 1)

    walk(errors.STSError, 0)
    return "\n".join(lines)


def _drawing_in_docstring() -> str:
    """The indented literal block that follows the first ``::`` of the module docstring."""
    doc = errors.__doc__ or ""
    _, _, rest = doc.partition("::\n\n")
    block: list[str] = []
    for line in rest.splitlines():
        if line and not line.startswith("  "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip("\n")


def test_docstring_fault_tree_matches_the_class_hierarchy() -> None:
    assert _drawing_in_docstring() == _render(), "regenerate the drawing in sts/errors.py:\n" + _render()


def test_every_fault_class_is_in_the_drawing() -> None:
    drawn = {line.split()[0] for line in _drawing_in_docstring().splitlines()}
    assert drawn == {cls.__name__ for cls in _classes()}


def test_every_class_has_single_inheritance_inside_the_tree() -> None:
    # The drawing follows __bases__[0]; a second base would silently be left out of it.
    for cls in _classes():
        assert len(cls.__bases__) == 1, cls
