"""The command-line form of a project request: `vidpipe new`'s argument and options, derived
from the `ProjectRequest` model."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

from vidpipe_core.errors import InvalidInput, invalid
from vidpipe_core.request import FIELDS, ProjectRequest, characters_from_cli, check_fields, description, offered
from vidpipe_core.scene_fields import SCENE_FIELDS
from vidpipe_dagster.cli.output import _fail


def _spelling(name: str) -> str:
    """How request field ``name`` is typed on the command line: ``--<name>`` or its own flag
    (``--max-cost``); a yes/no field has both forms (``--fast/--no-fast``)."""
    about = offered(name)
    flag = about.flag if about is not None and about.flag else f"--{name.replace('_', '-')}"
    if "/" not in flag and ProjectRequest.model_fields[name].annotation == bool | None:
        flag = f"{flag}/--no-{flag.removeprefix('--')}"
    return flag


def _flag(name: str) -> str:
    return _spelling(name).split("/")[0]


def _request_parameters() -> list[inspect.Parameter]:
    """One parameter per ProjectRequest field, as typer reads them: the prompt an argument, every
    other field an option whose name, type, help and shown default come from the model. An option
    not given is None (the request's default, resolved by `build_spec`), or the field's fixed
    default value (crossfade 0.0, fast false)."""
    params = []
    for name, info in ProjectRequest.model_fields.items():
        about = offered(name)
        if name == "characters":  # a list: repeatable options of their own (`characters_from_cli`)
            params += _character_parameters()
            continue
        if about is None:
            default: Any = typer.Argument(..., help=description(name))
        else:
            fixed = about.default.value  # shown as typer shows any default: `[default: 0.0]`, `no-fast`
            default = typer.Option(
                fixed,
                _spelling(name),
                show_default=True if fixed is not None else about.default.text(_flag),
                help=description(name),
                rich_help_panel=about.panel,
            )
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=info.annotation))
    return params


APPEARANCE_HELP = "How a --character looks: NAME=TEXT (e.g. 'Mara=tall, red coat'), repeatable."


def _character_parameters() -> list[inspect.Parameter]:
    """The characters, a list, as two repeatable options: ``--character NAME[=IMAGE]`` and
    ``--character-appearance NAME=TEXT`` (read by `characters_from_cli`)."""
    about = offered("characters")
    assert about is not None
    shown, panel = about.default.text(), about.panel
    return [
        inspect.Parameter(
            "characters",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None,
                _spelling("characters"),
                metavar="<name[=image]>",
                help=description("characters"),
                show_default=shown,
                rich_help_panel=panel,
            ),
            annotation=list[str] | None,
        ),
        inspect.Parameter(
            "character_appearance",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None,
                "--character-appearance",
                metavar="<name=text>",
                help=APPEARANCE_HELP,
                show_default=shown,
                rich_help_panel=panel,
            ),
            annotation=list[str] | None,
        ),
    ]


def request_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` (whose first parameter is ``request: ProjectRequest``) the command-line
    form of every request field: the prompt argument and one option per field, derived from the
    model, before the command's own options. The command gets the typed request."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in list(inspect.signature(command).parameters.values())[1:]]

    @functools.wraps(command)
    def with_request(**values: Any) -> None:
        given = {name: values.pop(name) for name in FIELDS}
        appearances = values.pop("character_appearance") or []
        if given["characters"] or appearances:
            try:
                given["characters"] = characters_from_cli(given["characters"] or [], appearances)
            except InvalidInput as exc:
                raise _fail(exc) from None
        request, problems = check_fields({k: v for k, v in given.items() if v is not None})
        if problems:  # the command line's types are the model's: only a value typer let through
            raise _fail(invalid(problems))
        assert request is not None
        command(request, **values)

    with_request.__signature__ = inspect.Signature([*_request_parameters(), *own])  # type: ignore[attr-defined]  # what typer reads
    return with_request


def scene_field_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` (whose parameters after the first two are its own) one option per editable
    scene field (`vidpipe_core.steps.edit.SCENE_FIELDS`: name, help), after its first two
    parameters (the id and ``--scene``); the command gets them as ``changes`` (option -> value or
    None). A new editable field is a row of that table, not a new option here."""
    params = list(inspect.signature(command).parameters.values())
    head, own = params[:2], [p for p in params[2:] if p.name != "changes"]
    fields = [
        inspect.Parameter(
            f.option,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, f.flag, show_default="unchanged", help=f.help),
            annotation=str | None,
        )
        for f in SCENE_FIELDS
    ]

    @functools.wraps(command)
    def with_fields(*args: Any, **values: Any) -> None:
        changes = {f.option: values.pop(f.option) for f in SCENE_FIELDS}
        command(*args, changes=changes, **values)

    signature = [*head, *fields, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]
    with_fields.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]  # what typer reads
    return with_fields
