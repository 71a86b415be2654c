"""The commands about projects: `new`, `edit`, `status`, `list` and `delete`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.table import Table

from vidpipe_core.errors import InvalidInput, ProjectNotFound, VidpipeError
from vidpipe_core.request import ProjectRequest
from vidpipe_core.scenes import scene_number
from vidpipe_dagster.cli.base import _services
from vidpipe_dagster.cli.exits import EXIT_OK
from vidpipe_dagster.cli.options import request_options, scene_field_options
from vidpipe_dagster.cli.output import _emit_json, _fail, _json_mode, _note, _result, console, err


@request_options
def new(
    request: ProjectRequest,
    force: bool = typer.Option(
        False, "--force", show_default=True, help="Register a new project even when one has this prompt and these settings."
    ),
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print the project as one JSON document."),
) -> None:
    """Register a project (validated; nothing is written when anything is wrong) and print its id.
    A project with the same prompt and settings is not registered twice: its id is printed."""
    from vidpipe_core.projects import AlreadyRegistered
    from vidpipe_dagster.runner import register

    if as_json:
        _json_mode("new")
    try:
        spec = register(request, force=force)
        existing = False
    except AlreadyRegistered as exc:
        spec, existing = exc.spec, True
        _note(f"{exc}; printing its id (use --force for a new project)")
    except VidpipeError as exc:
        raise _fail(exc) from None
    moved = None if existing else _earlier_files(spec.id)
    if moved:
        _note(f"an earlier project with id {spec.id} had left files; they were moved to {moved} (nothing was deleted)")
    if as_json:
        _emit_json(
            {
                "project_id": spec.id,
                "exit_code": EXIT_OK,
                "existing": existing,
                "spec": spec.model_dump(mode="json", exclude={"takes"}),
                "earlier_files": moved,
            }
        )
    else:
        _result(spec.id)


def _earlier_files(project_id: str) -> str | None:
    from vidpipe_core.projects import earlier_files

    return earlier_files(_services(housekeeping=False), project_id)


@scene_field_options
def edit(
    project_id: str = typer.Argument(..., metavar="ID"),
    scene: int | None = typer.Option(
        None, "--scene", help="Scene number, from 1 as in the captions and `vidpipe status` (for a scene's fields)."
    ),
    changes: dict[str, str | None] | None = None,
    max_cost: float | None = typer.Option(
        None, "--max-cost", metavar="USD", help="The project's budget in USD: a run that would exceed it stops."
    ),
    safety_policy: str | None = typer.Option(
        None,
        "--safety-policy",
        metavar="POLICY",
        help="A clip refused by the safety filter: fail, skip (leave the scene out of the video) or retry.",
    ),
) -> None:
    """Edit a scene (description, prompts, motion, characters) or the budget and safety policy; the next
    `vidpipe resume` makes again only what a changed field touches."""
    from vidpipe_core.scene_fields import scene_changes
    from vidpipe_core.steps.edit import edit_scene, edit_settings, settings_update

    try:
        update = settings_update(max_cost_usd=max_cost, safety_policy=safety_policy)  # checked before anything is written
        request = scene_changes(scene, changes or {}, settings_given=bool(update))
        services = _services()
        changed = None
        if request is not None:
            index, given = request
            changed = edit_scene(services, project_id, index, **given)
        if update:
            spec = edit_settings(services, project_id, update)
    except VidpipeError as exc:
        raise _fail(exc) from None
    if changed is not None:
        err.print(f"scene {scene} updated; {changed.summary()}.", soft_wrap=True)
    if update:
        shown = {"max_cost_usd": f"budget ${spec.max_cost_usd:.2f}", "safety_policy": f"safety policy {spec.safety_policy}"}
        _note(f"project {project_id}: {', '.join(shown[k] for k in update)}; nothing already made is paid for again.")
    _note(f"Run `vidpipe resume {project_id}`.")


def _scene_number(row: dict[str, Any]) -> int:
    """A status row's scene, numbered from 1 as people (and the captions) count."""
    return int(row["scene"]) if "scene" in row else scene_number(int(row["index"]))


def status(
    project_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print the report as one JSON document."),
) -> None:
    """Where a project stands: each stage (from Dagster), each scene and the cost (from the database)."""
    from vidpipe_dagster.status import project_status

    if as_json:
        _json_mode("status", project_id=project_id)
    try:
        report = project_status(_services(housekeeping=False), project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    if as_json:
        scenes = [
            {"scene": _scene_number(s), **{k: v for k, v in s.items() if k not in ("scene", "index")}} for s in report["scenes"]
        ]
        _emit_json({"project_id": project_id, "exit_code": EXIT_OK, **report, "scenes": scenes})
        return
    assets = Table(title=f"project {project_id}")
    for col in ("asset", "state", "last run", "when"):
        assets.add_column(col)
    for row in report["assets"]:
        assets.add_row(row["asset"], row["state"], (row["run_id"] or "")[:8], row["when"] or "")  # --json: the whole id
    console.print(assets)
    if "next" not in report:  # the next steps repeat these hints
        for row in report["assets"]:
            if row.get("hint"):
                console.print(row["hint"], soft_wrap=True, markup=False, highlight=False)
    scenes_table = Table(title="scenes")
    for col in ("scene", "start frame", "end frame", "clip", "duration", "cost"):
        scenes_table.add_column(col)
    for s in report["scenes"]:
        scenes_table.add_row(
            str(_scene_number(s)),
            s["start_frame"],
            s["end_frame"],
            s["clip"],
            f"{s['duration_s']:.2f}" if s["duration_s"] else "",
            f"${s['cost_usd']:.2f}",
        )
    console.print(scenes_table)
    for s in report["scenes"]:
        if s["detail"]:
            console.print(f"scene {_scene_number(s)}: {s['detail']}", soft_wrap=True, markup=False, highlight=False)
    c = report["cost"]
    console.print(f"spent ${c['spent_usd']:.2f} · projected remaining ${c['projected_usd']:.2f} · budget ${c['budget_usd']:.2f}")
    if report["review"]["review"] != "none":
        console.print(f"review: {report['review']['review']}", soft_wrap=True, markup=False, highlight=False)
    n = c.get("narration") or {}
    if n.get("on"):
        console.print(
            f"narration: {n['voice']} ({n['language']}) · spent ${n['spent_usd']:.4f} · projected ${n['projected_usd']:.4f}"
        )
    else:
        console.print("narration: off")
    _print_extra(report.get("paths"), "")
    if report.get("earlier_files"):
        _print_extra(f"an earlier project with this id (moved aside when this one was registered): {report['earlier_files']}", "")
    _print_extra(report.get("next"), "next: ")


def _print_extra(value: Any, prefix: str) -> None:
    """A report entry, one line each: a text, a list of texts, or a mapping of name -> path (a list
    of ``{"scene", "path"}`` for per-scene files, ``{"name", "path"}`` for per-character ones)."""
    if not value:
        return
    lines: list[str] = []
    if isinstance(value, dict):
        for name, entry in value.items():
            label = name.replace("_", " ")
            if isinstance(entry, list):
                for item in entry:
                    if isinstance(item, dict) and "path" in item:
                        where = f" of scene {item['scene']}" if "scene" in item else f" {item.get('name', '')}".rstrip()
                        lines.append(f"{label.removesuffix('s')}{where}: {item['path']}")
            elif entry:
                lines.append(f"{label}: {entry}")
    elif isinstance(value, (list, tuple)):
        lines = [str(v) for v in value if v]
    else:
        lines = [str(value)]
    for line in lines:
        console.print(prefix + line, soft_wrap=True, markup=False, highlight=False)


def list_cmd(
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print the projects as one JSON array."),
) -> None:
    """All registered projects with their full ids: a table on a terminal; when piped, one
    tab-separated line per project (id, created, scenes, providers, final video)."""
    from vidpipe_core.models import utc
    from vidpipe_core.projects import list_projects
    from vidpipe_dagster.instance import get_instance
    from vidpipe_dagster.status import final_video

    if as_json:
        _json_mode("list")
    services = _services()
    instance = get_instance(services.settings)
    rows = []
    for p in list_projects(services):
        spec = p.spec
        final = final_video(instance, services, p.id, p.nonce)  # only this project's own, else "-"
        rows.append(
            {
                "id": p.id,
                "created": utc(p.created_at).isoformat(),  # SQLite gives it back without its time zone
                "prompt": p.prompt,
                "scenes": spec.get("scenes"),
                "providers": spec.get("providers", {}),
                "final_video": final,
            }
        )
    if as_json:
        _emit_json(rows)
        return
    if not console.is_terminal:
        for r in rows:
            fields = [r["id"], r["created"][:16].replace("T", " "), str(r["scenes"]), _providers(r), r["final_video"] or "-"]
            _result("\t".join(" ".join(f.split()) for f in fields))
        return
    # The id is never cut: its column is as wide as the longest id (folding, never ellipsizing, on
    # a terminal narrower than that); the other columns come while they fit, then shorten or wrap.
    id_width = max((len(r["id"]) for r in rows), default=2)
    columns: list[tuple[str, int, Callable[[dict[str, Any]], str]]] = [
        ("created", 16, lambda r: r["created"][:16].replace("T", " ")),
        ("scenes", 6, lambda r: str(r["scenes"])),
        ("providers", 9, _providers),
        ("final video", 12, lambda r: r["final_video"] or ""),
    ]
    room = console.width - (id_width + 4)
    shown = []
    for column in columns:
        if room < column[1] + 3:
            break
        shown.append(column)
        room -= column[1] + 3
    table = Table(title="projects")
    table.add_column("id", min_width=min(id_width, console.width - 4), overflow="fold")
    for name, width, _value in shown:
        table.add_column(name, min_width=width if name != "final video" else None, overflow="fold")
    for r in rows:
        table.add_row(r["id"], *(value(r) for _name, _width, value in shown))
    console.print(table)


def _providers(row: dict[str, Any]) -> str:
    providers = row["providers"]
    return "/".join(sorted(set(providers.values()))) if isinstance(providers, dict) else ""


DELETED = ("project", "folder", "partition")  # the --json document's "deleted" keys


def delete(
    project_id: str = typer.Argument(..., metavar="ID"),
    yes: bool = typer.Option(False, "--yes", "-y", show_default=True, help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print what was removed as one JSON document."),
) -> None:
    """Remove a project or a stray partition: its folder, database rows and Dagster partition;
    refused while a run holds it, asks unless `--yes`."""
    from vidpipe_dagster import runner

    if as_json:
        _json_mode("delete", project_id=project_id)
    try:
        row, folder, partition = runner.find(project_id)
        if not (row or folder or partition):
            raise ProjectNotFound(project_id)
        if not yes:
            what = [w for w, there in (("project", row), ("folder of artifacts", folder), ("partition", partition)) if there]
            if not sys.stdin.isatty():
                raise InvalidInput("--yes", f"deleting {project_id} needs confirmation and stdin is not a terminal; pass --yes")
            if not typer.confirm(f"delete {project_id} ({', '.join(what)})?", default=False, err=True):
                _note("nothing deleted")
                if as_json:
                    _emit_json({"project_id": project_id, "exit_code": EXIT_OK, "deleted": dict.fromkeys(DELETED, False)})
                return
        deleted = runner.delete(project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    removed = {name: getattr(deleted, name) for name in DELETED}
    _note(f"deleted {project_id}: " + ", ".join(k for k, v in removed.items() if v))
    if as_json:
        _emit_json({"project_id": project_id, "exit_code": EXIT_OK, "deleted": removed})
    else:
        _result(project_id)
