"""Errors about one named field: the core names its fields, an entry point maps them to its own names.

:class:`FieldError` carries the field apart from the message, so the CLI turns ``mode 'avd': ...`` into
``--mode avd: ...`` from a table (``tpsmm.core.cli.animate.FLAGS``) and not by editing text.
:class:`InputError` (a bad image or clip) and ``ModelError`` (a request the model cannot serve) are
kinds of it.
"""
from __future__ import annotations

__all__ = ["FieldError", "InputError"]


class FieldError(ValueError):
    """A bad value of one named field (an option, an argument): ``str`` is ``"field: detail"``, or
    ``"field 'value': detail"`` when ``value`` is given.

    The core names its own fields; an entry point that knows the field by another name (the CLI's flags)
    maps :attr:`field` from a table and keeps :attr:`detail` and :attr:`value` (see :meth:`renamed`).
    Without a field the message is ``detail`` alone.
    """

    _NO_VALUE = object()

    def __init__(self, detail: str, *, field: str | None = None, value: object = _NO_VALUE) -> None:
        self.detail, self.field, self.value = detail, field, value
        super().__init__(self._text(field, repr(value)))

    def _text(self, name: str | None, shown: str) -> str:
        if name is None:
            return self.detail
        return f"{name}: {self.detail}" if self.value is self._NO_VALUE else f"{name} {shown}: {self.detail}"

    def renamed(self, name: str) -> "FieldError":
        """The same error (same type) with ``field`` shown as ``name`` and the value unquoted:
        ``mode 'avd': ...`` -> ``--mode avd: ...``."""
        exc = type(self).__new__(type(self))
        exc.detail, exc.field, exc.value = self.detail, self.field, self.value
        ValueError.__init__(exc, exc._text(name, str(self.value)))
        return exc


class InputError(FieldError):
    """An image argument has the wrong rank, channel count, dtype or value range."""
