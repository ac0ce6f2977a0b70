"""``hybridvoice update-window new|set|get|list|remove`` and ``site set-updates|get-updates``.

The original's New/Set/Get/Remove-CsTenantUpdateTimeWindow and Set-CsHybridPSTNSite
-EnableAutoUpdate -TenantUpdateTimeWindow (``docs/updates.md``), on the online service's
``/v1/update-windows`` and ``/v1/sites/{name}/update-state``
(:mod:`hybridvoice.online.api_updates`). ``set`` sends only the options given.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from hybridvoice.online.models import Site
from hybridvoice.online.update_windows import TenantUpdateWindow

from .cli_admin import ONLINE_URL, Json, Url, api, change, fail, out, show, site_app

__all__ = ["parse_duration", "register_update_window_commands", "window_app"]

window_app = typer.Typer(
    help="Tenant update time windows (New/Set/Get/Remove-CsTenantUpdateTimeWindow).",
    no_args_is_help=True,
)
_COLUMNS = ("name", "recurrence", "start_time", "duration_minutes", "days_of_week",
            "weeks_of_month", "day_of_month", "time_zone")  # fmt: skip
_DURATION = re.compile(r"(?:(\d+):([0-5]\d))|(?:(\d+)h)?(?:(\d+)m(?:in)?)?|(\d+)")

WindowName = Annotated[str, typer.Argument(metavar="NAME", help="The window's name")]
Daily = Annotated[bool, typer.Option("--daily", help="Every day")]
Weekly = Annotated[bool, typer.Option("--weekly", help="On the --days of every week")]
Monthly = Annotated[
    bool, typer.Option("--monthly", help="On --day-of-month, or on --days of --weeks-of-month")
]
Start = Annotated[str | None, typer.Option("--start", help="Start time, HH:MM (in --time-zone)")]
Duration = Annotated[
    str | None, typer.Option("--duration", help="How long: 3:00, 90m, 2h30m (up to 24:00)")
]
Days = Annotated[
    str | None, typer.Option("--days", help='Days of the week: "sat sun" (mon ... sun)')
]
Weeks = Annotated[
    str | None,
    typer.Option("--weeks-of-month", help='Monthly: "first last" (first ... fourth, last)'),
]
DayOfMonth = Annotated[
    int | None, typer.Option("--day-of-month", help="Monthly: 1-31; 0 = the last day")
]
Zone = Annotated[
    str | None, typer.Option("--time-zone", help="IANA time zone, e.g. Europe/Amsterdam (UTC)")
]


def parse_duration(text: str) -> int:
    """Minutes from ``3:00``, ``90m``, ``2h``, ``2h30m`` or ``90``; ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or m is None:
        raise ValueError(f"{text!r} is not a duration like 3:00, 90m or 2h30m")
    hh, mm, h, mins, plain = m.groups()
    if hh is not None:
        return int(hh) * 60 + int(mm)
    if plain is not None:
        return int(plain)
    return int(h or 0) * 60 + int(mins or 0)


def _fields(
    daily: bool, weekly: bool, monthly: bool, start: str | None, duration: str | None,
    days: str | None, weeks: str | None, day_of_month: int | None, zone: str | None,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {}
    chosen = [r for r, on in (("daily", daily), ("weekly", weekly), ("monthly", monthly)) if on]
    if len(chosen) > 1:
        fail("--daily, --weekly and --monthly exclude each other", "Give one of them.")
    if chosen:
        body["recurrence"] = chosen[0]
    if duration is not None:
        try:
            body["duration_minutes"] = parse_duration(duration)
        except ValueError as exc:
            fail(f"--duration: {exc}", "Give hours:minutes (3:00) or 90m, 1 minute to 24:00.")
    if days is not None:
        body["days_of_week"] = days.replace(",", " ").split()
    if weeks is not None:
        body["weeks_of_month"] = weeks.replace(",", " ").split()
    for key, value in (("start_time", start), ("day_of_month", day_of_month),
                       ("time_zone", zone)):  # fmt: skip
        if value is not None:
            body[key] = value
    return body


def _path(name: str) -> str:
    return f"/v1/update-windows/{urllib.parse.quote(name, safe='')}"


_TERMS = (
    ("start_time", "--start"), ("duration_minutes", "--duration"), ("days_of_week", "--days"),
    ("weeks_of_month", "--weeks-of-month"), ("day_of_month", "--day-of-month"),
    ("time_zone", "--time-zone"), ("a daily window", "a --daily window"),
    ("a weekly window", "a --weekly window"), ("a monthly window", "a --monthly window"),
)  # fmt: skip


def _hints(name: str) -> dict[int, str]:
    return {
        404: f"There is no update window {name}: `hybridvoice update-window list` shows them.",
        409: f"Change it with `hybridvoice update-window set {name}`.",
        422: "Fix the option named and run the command again.",
    }


def in_cli_terms(text: str) -> str:
    """A window's field names in ``text`` as this command's options."""
    for field, option in _TERMS:
        text = text.replace(field, option)
    return text


def _check(body: dict[str, Any]) -> None:
    """Refuse a window the service would refuse, in the options' terms (exit 1)."""
    try:
        TenantUpdateWindow.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = in_cli_terms(str(first["msg"]).removeprefix("Value error, "))
        where = in_cli_terms(field) + ": " if field and field != "name" else ""
        fail(f"{where}{message}", "Fix it and run the command again (--help lists the options).")


@window_app.command("new")
def window_new(
    name: WindowName, daily: Daily = False, weekly: Weekly = False, monthly: Monthly = False,
    start: Start = None, duration: Duration = None, days: Days = None, weeks_of_month: Weeks = None,
    day_of_month: DayOfMonth = None, time_zone: Zone = None, url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:  # fmt: skip
    """Create an update window (default: daily at 02:00 for 3 hours, UTC)."""
    body = {"name": name, **_fields(daily, weekly, monthly, start, duration, days, weeks_of_month,
                                    day_of_month, time_zone)}  # fmt: skip
    _check(body)
    show(api("POST", url, "/v1/update-windows", body, hints=_hints(name)), as_json)


@window_app.command("set")
def window_set(
    name: WindowName, daily: Daily = False, weekly: Weekly = False, monthly: Monthly = False,
    start: Start = None, duration: Duration = None, days: Days = None, weeks_of_month: Weeks = None,
    day_of_month: DayOfMonth = None, time_zone: Zone = None, url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:  # fmt: skip
    """Change an update window; what is not given stays."""
    changes = _fields(daily, weekly, monthly, start, duration, days, weeks_of_month, day_of_month,
                      time_zone)  # fmt: skip
    missing = (f"there is no update window {name}",
               f"Create it with `hybridvoice update-window new {name} ...`.")  # fmt: skip
    try:
        current = api("GET", url, _path(name), missing_ok=True)
        if changes:
            _check({**current, **changes})
        row = change(url, _path(name), changes, hints=_hints(name))
    except LookupError:
        fail(*missing)
    show(row, as_json)


@window_app.command("list")
def window_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """Every update window of the tenant."""
    rows = api("GET", url, "/v1/update-windows")["update_windows"]
    show(rows, as_json, _COLUMNS, "update windows")


@window_app.command("get")
def window_get(
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="The window (all: none)")]
    = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:  # fmt: skip
    """Show one update window, or all of them."""
    if name is None:
        window_list(url, as_json)
        return
    show(api("GET", url, _path(name), hints=_hints(name)), as_json)


@window_app.command("remove")
def window_remove(name: WindowName, url: Url = ONLINE_URL) -> None:
    """Remove an update window (refused while a site uses it)."""
    hints = {**_hints(name), 409: "Take it off those sites first: `hybridvoice site set-updates "
             "SITE --windows ...` without it."}  # fmt: skip
    api("DELETE", url, _path(name), hints=hints)
    out.print(f"update window {name} removed")


# --- sites ---------------------------------------------------------------------------------------


@site_app.command("set-updates")
def site_set_updates(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The site's name")],
    windows: Annotated[
        str | None,
        typer.Option("--windows", help='The update windows the site updates in: "Night Weekend" '
                     '("": none)'),
    ] = None,
    auto_update: Annotated[
        bool | None,
        typer.Option("--auto-update/--no-auto-update", help="May rollouts run at this site?"),
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:  # fmt: skip
    """Set-CsHybridPSTNSite -EnableAutoUpdate -TenantUpdateTimeWindow: when SITE may update."""
    changes: dict[str, Any] = {}
    if windows is not None:
        changes["update_time_windows"] = windows.replace(",", " ").split()
    if auto_update is not None:
        changes["enable_auto_update"] = auto_update
    hints = {409: "Create the window first: `hybridvoice update-window new NAME ...`; "
             "`hybridvoice update-window list` shows them."}  # fmt: skip
    try:
        row = change(url, f"/v1/sites/{urllib.parse.quote(name, safe='')}", changes, model=Site,
                     hints=hints)  # fmt: skip
    except LookupError:
        fail(f"there is no site {name}", "`hybridvoice site list` shows the sites.")
    show(row, as_json)


@site_app.command("get-updates")
def site_get_updates(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The site's name")],
    at: Annotated[
        str | None, typer.Option("--at", help="When, ISO 8601 with an offset (default: now)")
    ] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """The site's update windows: is it inside one now (until when), when the next opens."""
    params = {} if at is None else {"at": at}
    hints = {404: f"There is no site {name}: `hybridvoice site list` shows the sites.",
             422: "Give --at like 2026-12-07T02:00:00+01:00."}  # fmt: skip
    state = api("GET", url, f"/v1/sites/{urllib.parse.quote(name, safe='')}/update-state",
                params=params, hints=hints)  # fmt: skip
    if as_json:
        show(state, True)
        return
    out.print(update_state_text(state), highlight=False)


def update_state_text(state: dict[str, Any]) -> str:
    """The site's windows and where ``at`` stands, for people."""
    lines = [f"site {state['site']}: auto update "
             f"{'on' if state['enable_auto_update'] else 'OFF'}"]  # fmt: skip
    for window in state["windows"]:
        lines.append(f"  window {window['name']}: {window['description']}")
    if not state["windows"]:
        lines.append("  no update windows: rollouts need --now")
    if state["inside"]:
        lines.append(f"  inside {', '.join(state['open_windows'])} until {state['ends']}")
    elif state["next_start"]:
        lines.append(f"  outside; next window {state['next_window']} opens {state['next_start']}")
    return "\n".join(lines)


def register_update_window_commands(app: typer.Typer) -> None:
    app.add_typer(window_app, name="update-window")
