"""What a new user reads: every command's help, the version, the hints of errors (every
option they name exists on the command they name), durations for people, and the README's
`sip options` lines run as written (against `sip serve` on a free port)."""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer.main
from ports import free_port
from test_cli import running
from test_cli_admin import command_paths as build_command_paths
from test_cli_admin import service_commands
from typer.core import TyperArgument, TyperGroup
from typer.testing import CliRunner

from hybridvoice import cli
from hybridvoice.cli import app
from hybridvoice.mgmt import cli_admin, cli_appliance, testcall
from hybridvoice.mgmt.cli_admin import cli_terms, format_duration

pytestmark = pytest.mark.live  # `sip serve` and `--version` as processes, like test_cli

RUNNER = CliRunner()
WIDE = {"COLUMNS": "250"}
TYPE_LABEL = re.compile(r"<[a-z][a-z_|\[\], ]*>")  # <str>, <bool>, <list[str]>, <int|str>
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
#: "hybridvoice user set sip:... --password NEW": a command and the options given to it
REFERENCE = re.compile(r"hybridvoice((?: [a-z][a-z-]*)+)([^`\n]*)")
CLI_MODULES = (cli, cli_admin, cli_appliance, testcall)


@functools.cache
def command_paths() -> dict[tuple[str, ...], Any]:
    """Every leaf command by its words, built once (typer builds the whole tree each time)."""
    return build_command_paths()


def groups(group: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    group = group or typer.main.get_command(app)
    yield path
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from groups(command, (*path, name))


def options_of(path: tuple[str, ...]) -> set[str]:
    command = command_paths()[path]
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


def references(text: str) -> Iterator[tuple[tuple[str, ...] | None, str]]:
    """(command path or None for "this command", option) for every option ``text`` names."""
    named: set[int] = set()
    paths = command_paths()
    top = {path[0] for path in paths}
    for m in REFERENCE.finditer(text):
        words = tuple(m.group(1).split())
        if words[0] not in top:
            continue  # prose ("no hybridvoice setting"), not a command
        path = next((words[:n] for n in (3, 2, 1) if words[:n] in paths), None)
        assert path is not None, f"{text!r} names a command that does not exist: {words}"
        for option in OPTION.finditer(m.group(2)):
            named.add(m.start(2) + option.start())
            yield path, option.group()
    for option in OPTION.finditer(text):
        if option.start() not in named:
            yield None, option.group()


@pytest.mark.parametrize("path", [*groups(), *command_paths()], ids=" ".join)
def test_help_has_no_type_labels(path: tuple[str, ...]) -> None:
    result = RUNNER.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert not TYPE_LABEL.search(result.stdout), result.stdout
    assert "Usage:" in result.stdout


def test_version_option_prints_the_installed_version() -> None:
    result = subprocess.run([sys.executable, "-m", "hybridvoice", "--version"],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["hybridvoice", version("hybridvoice")]


def _strings(node: ast.AST) -> Iterator[str]:
    for item in ast.walk(node):
        if isinstance(item, ast.JoinedStr):  # f"...{x}...": the literal parts, joined
            yield "".join(v.value for v in item.values if isinstance(v, ast.Constant))
        elif isinstance(item, ast.Constant) and isinstance(item.value, str):
            yield item.value


def test_every_option_a_hint_names_exists_where_it_is_named() -> None:
    """Statically: in the source of each command, an option named alone is one of that
    command's; one named after `hybridvoice X Y` is one of X Y's; elsewhere (helpers) it is
    at least one command's."""
    by_callback = {command.callback: path for path, command in command_paths().items()}
    root = {o for p in typer.main.get_command(app).params for o in p.opts}
    every = root.union(*(options_of(p) for p in command_paths()))
    for module in CLI_MODULES:
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            own = by_callback.get(getattr(module, node.name, None))
            for text in _strings(node):
                for path, option in references(text):
                    where = path or own
                    known = options_of(where) if where else every
                    assert option in known, f"{module.__name__}.{node.name}: {text!r}: {option}"


def _placeholder(param: Any) -> str:
    return "enter" if param.metavar == "enter|exit" else "sip:x@contoso.example"


@pytest.mark.parametrize("path", sorted(service_commands()), ids=" ".join)
def test_errors_of_an_unreachable_service_name_this_commands_options(
    path: tuple[str, ...],
) -> None:
    """At run time: "cannot reach" and every other error hint of every service command
    names options the command has (the appliance's URL is --appliance, not --url)."""
    command = command_paths()[path]
    args = [_placeholder(p) for p in command.params if isinstance(p, TyperArgument)]
    for param in command.params:
        if param.required and not isinstance(param, TyperArgument):
            args += [param.opts[0], "x"]
    nowhere = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback
    urls = ["--url", nowhere] if "--url" in options_of(path) else []
    urls += ["--appliance", nowhere] if "--appliance" in options_of(path) else []
    result = RUNNER.invoke(app, [*path, *args, *urls], env=WIDE)
    assert result.exit_code in (1, 2), result.output
    for named, option in references(result.stderr):
        assert option in options_of(named or path), (result.stderr, option)
    if result.exit_code == 2:
        assert "cannot reach" in result.stderr and "hybridvoice up" in result.stderr


@pytest.mark.parametrize(
    ("service_says", "admin_reads"),
    [
        ("change it with PUT /v1/sites/Stockholm", "with `hybridvoice site set Stockholm`"),
        ("unregister them first (remove_appliance)", "(`hybridvoice appliance remove`)"),
        ("add it first with add_domain", "add it first with `hybridvoice domain add`"),
        ("PUT /v1/users/{sip_uri} with another hybrid_pstn_site",
         "`hybridvoice user set` with another --site"),
        ("line_uri: not a tel: URI", "--line-uri: not a tel: URI"),
    ],
)  # fmt: skip
def test_service_errors_are_told_in_cli_terms(service_says: str, admin_reads: str) -> None:
    assert admin_reads in cli_terms(service_says)


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [(0.7081234567891234, "ms", "0.71 ms"), (12.345678, "ms", "12.3 ms"),
     (2500.4, "ms", "2500 ms"), (0.6123, "s", "0.61 s")],
)  # fmt: skip
def test_durations_are_shown_with_a_few_digits(value: float, unit: str, shown: str) -> None:
    assert format_duration(value, unit) == shown


def _readme_sip_lines() -> list[str]:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## Trying the SIP core on its own", 1)[1].split("```sh", 1)[1]
    lines = block.split("```", 1)[0].strip().splitlines()
    return [line.split("  #")[0].strip().removeprefix(".venv/bin/") for line in lines]


def test_readme_sip_options_examples_work_as_written() -> None:
    """The README's lines, with only the port changed to a free one."""
    lines = _readme_sip_lines()
    assert [line.split()[:3] for line in lines] == [["hybridvoice", "sip", "serve"]] + [
        ["hybridvoice", "sip", "options"]
    ] * (len(lines) - 1)
    port = free_port()
    serve, *pings = (shlex.split(line.replace("5062", str(port))) for line in lines)
    with running([w for w in serve if w != "&"], port):
        for ping in pings:
            result = subprocess.run([sys.executable, "-m", *ping], capture_output=True,
                                    text=True, timeout=30, check=False)  # fmt: skip
            assert result.returncode == 0, (ping, result.stdout, result.stderr)
            if "--json" in ping:
                answer = json.loads(result.stdout)
                transport = "TCP" if "transport=tcp" in ping[3] else "UDP"
                assert answer["status"] == 200
                assert f"SIP/2.0/{transport}" in dict(answer["headers"])["Via"]
