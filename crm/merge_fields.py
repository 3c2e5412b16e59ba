"""The sandbox that fills in merge fields in templates the tenant's users write: letters by post
(contacts.letters) and marketing e-mail (campaigns.templating).

Such templates are untrusted code. They run in Jinja2's sandbox against plain dicts of the allowed
values only (never model instances, so a template cannot reach the ORM, settings or another
tenant), and a check on the parsed template refuses what a merge template does not need and what
could tie up a worker: loops, macros, includes, function and method calls, and repetition or
padding (`*`, `**`, `%`). Only a few text filters exist. The one call a caller may allow is a
named global taking one literal string (the e-mail templates' `block("footer")`).
"""

from collections.abc import Iterable

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, meta, nodes
from jinja2.filters import (
    do_capitalize,
    do_join,
    do_lower,
    do_title,
    do_trim,
    do_truncate,
    do_upper,
)
from jinja2.sandbox import SandboxedEnvironment

FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.For: "loops",
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Call: "function calls",
    nodes.Include: "includes",
    nodes.Import: "imports",
    nodes.FromImport: "imports",
    nodes.Extends: "extends",
    nodes.Mul: "multiplication",
    nodes.Pow: "powers",
    nodes.Mod: "the % operator",
}


class MergeFieldError(ValueError):
    """A template that cannot be used or filled in; the message is meant for its author, and
    `lineno` (when known) is the line of the template at fault."""

    def __init__(self, message: str, lineno: int | None = None):
        super().__init__(message)
        self.lineno = lineno


def _default(value, default_value="", boolean=True):
    # An empty field is as missing as an unknown one, so fallbacks cover both.
    if isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


def sandbox_environment(*, autoescape: bool) -> SandboxedEnvironment:
    """A sandbox with no globals (no range(), lipsum(), cycler() ...) and only filters that cannot
    blow up a string. `autoescape` is on for HTML, so contact data shows as text."""
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.clear()
    env.filters = {
        "default": _default,
        "d": _default,
        "upper": do_upper,
        "lower": do_lower,
        "title": do_title,
        "capitalize": do_capitalize,
        "trim": do_trim,
        "truncate": do_truncate,
        "join": do_join,
    }
    return env


def _allowed_call(node: nodes.Call, calls: Iterable[str]) -> bool:
    return (
        isinstance(node.node, nodes.Name)
        and node.node.name in calls
        and len(node.args) == 1
        and isinstance(node.args[0], nodes.Const)
        and isinstance(node.args[0].value, str)
        and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
    )


def _refused(tree: nodes.Template, noun: str, calls: frozenset[str]) -> None:
    callees = set()
    for call in tree.find_all(nodes.Call):
        if not _allowed_call(call, calls):
            what = "function calls" if not calls else f'calls other than {", ".join(calls)}("…")'
            raise MergeFieldError(f"{noun} cannot use {what}.", call.lineno)
        callees.add(id(call.node))
    for node_type, what in FORBIDDEN_NODES.items():
        if node_type is nodes.Call:
            continue
        found = next(tree.find_all(node_type), None)
        if found is not None:
            raise MergeFieldError(
                f"{noun} cannot use {what}; use merge fields and if-blocks.", found.lineno
            )
    for name in tree.find_all(nodes.Name):
        if name.name in calls and id(name) not in callees:
            raise MergeFieldError(f'Use {name.name}("name") to include a block.', name.lineno)


def _unknown_fields(tree: nodes.Template, fields: dict, names: frozenset[str]) -> list[str]:
    unknown = [
        name
        for name in meta.find_undeclared_variables(tree)
        if name not in fields and name not in names
    ]
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node.node, nodes.Name) or node.node.name not in fields:
            continue
        if isinstance(node, nodes.Getattr):
            field = node.attr
        elif isinstance(node.arg, nodes.Const):
            field = node.arg.value
        else:
            continue
        if field not in fields[node.node.name]:
            unknown.append(f"{node.node.name}.{field}")
    return sorted(set(map(str, unknown)))


def merge_template_parse(
    env: SandboxedEnvironment,
    source: str,
    *,
    fields: dict[str, dict],
    names: Iterable[str] = (),
    calls: Iterable[str] = (),
    noun: str = "Templates",
) -> nodes.Template:
    """Parse and check a template: syntax, what `FORBIDDEN_NODES` lists (bar the `calls`
    allowed), and merge fields: `fields` maps each group (`contact`) to its fields, `names` are
    plain top-level values. Raises MergeFieldError with the line at fault."""
    calls = frozenset(calls)
    try:
        tree = env.parse(source)
    except TemplateError as error:
        lineno = getattr(error, "lineno", None)
        line = f" (line {lineno})" if lineno else ""
        raise MergeFieldError(
            f"The template has a syntax error{line}: {error.message}", lineno
        ) from error
    _refused(tree, noun, calls)
    try:
        unknown = _unknown_fields(tree, fields, frozenset(names) | calls)
    except TemplateError as error:
        raise MergeFieldError(f"The template cannot be used: {error.message}") from error
    if unknown:
        raise MergeFieldError(f"Unknown merge field: {', '.join(unknown)}.")
    return tree


def merge_render(template: Template, context: dict) -> str:
    """Fill in a compiled template from `context` (plain dicts, strings and tuples only)."""
    try:
        return template.render(context)
    except TemplateError as error:
        raise MergeFieldError(
            f"The template cannot be filled in: {error.message}", getattr(error, "lineno", None)
        ) from error
    except (ArithmeticError, TypeError, ValueError) as error:
        raise MergeFieldError(f"The template cannot be filled in: {error}") from error
