"""Plain placeholders in ``--help``: ``--wave YYYY-YYYY``, not ``--wave <str>``.

Typer labels an option by its Python type (``<str>``, ``<list[Path]>``, ``<bool>``),
which means nothing to a quality officer. Options that set their own ``metavar`` keep
it; the rest get a placeholder named after what the option holds, chosen here once for
every command, and a flag (an on/off switch) gets none.
"""

from __future__ import annotations

from typer.core import TyperArgument, TyperOption

#: placeholders by option or argument name (click's parameter name)
BY_NAME: dict[str, str] = {
    "wave": "YYYY-YYYY",
    "waves": "YYYY-YYYY",
    "years": "YYYY-YYYY",
    "since": "YYYY-YYYY",
    "vs": "YYYY-YYYY",
    "instrument": "QUESTIONNAIRE",
    "item": "ITEM",
    "dimension": "DIMENSION",
    "unit": "UNIT",
    "level": "LEVEL",
    "lang": "ky|ru|en",
    "set_value": "FIELD=VALUE",
    "sheet": "SHEET",
    "duplicates": "exclude|flag|off",
    "output_format": "FORMAT",
    "export_format": "FORMAT",
    "out": "FILE",
    "mapping": "FILE",
    "db": "FILE",
    "workspace": "FOLDER",
    "workspace_dir": "FOLDER",
    "files": "FILE",
    "file": "FILE",
    "folder": "FOLDER",
    "out_dir": "FOLDER",
    "parquet": "FOLDER",
    "why": "TEXT",
    "example": "NAME",
    "version": "VERSION",
    "name": "NAME",
    "table": "TABLE",
    "flag": "FLAG",
    "adjust": "holm|bh",
    "ci_method": "METHOD",
    "confidence": "LEVEL",
    "alpha": "NUMBER",
    "straight_share": "SHARE",
    "identical_share": "SHARE",
    "load": "LOAD",
}

#: placeholders by the value's type when the option's name says nothing
BY_TYPE: dict[str, str] = {"int": "N", "float": "NUMBER", "Path": "PATH", "str": "TEXT"}


def placeholder(param: TyperOption | TyperArgument) -> str | None:
    """The placeholder shown for ``param`` in help, or ``None`` for an on/off flag."""
    if param.metavar is not None:
        return param.metavar
    if getattr(param, "is_flag", False) and not getattr(param, "count", False):
        return None
    name = (param.name or "").lower()
    if name in BY_NAME:
        label = BY_NAME[name]
    else:
        kind = param.bare_type().removeprefix("list[").removesuffix("]")
        label = BY_TYPE.get(kind, name.upper() or "VALUE")
    if isinstance(param, TyperOption) and param.type_descriptor.is_list:
        label += "..."  # the option may be given more than once
    return label


def _option_type(self: TyperOption, ctx) -> str | None:  # noqa: ARG001 - typer's signature
    return placeholder(self)


def _argument_type(self: TyperArgument, ctx) -> None:  # noqa: ARG001 - typer's signature
    return None  # the argument's name column already shows its placeholder


def _argument_name(self: TyperArgument) -> str:
    return placeholder(self) or (self.name or "").upper()


def _argument_usage(self: TyperArgument) -> str:
    name = _argument_name(self) + ("..." if self.nargs != 1 else "")
    return name if self.required else f"[{name}]"


def install() -> None:
    """Make every Typer option and argument of this process use :func:`placeholder`."""
    TyperOption.display_type_rich = _option_type
    TyperArgument.display_type_rich = _argument_type
    TyperArgument.display_name_raw = property(_argument_name)
    TyperArgument._usage_display_name = _argument_usage
