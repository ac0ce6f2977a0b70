"""``hybridvoice plan``: the planning tools (:mod:`hybridvoice.planning`) on the command line.

The original system left planning to guides; these commands answer from the model and the
deployment's own settings. Each family of commands lives in a module of its own and adds
itself to :data:`plan_app` through a ``register`` function called below.
"""

from __future__ import annotations

import typer

from hybridvoice.mgmt import (
    cli_plan_callflow,
    cli_plan_checklist,
    cli_plan_sizing,
    cli_plan_verify,
)

__all__ = ["plan_app", "register_plan_commands"]

plan_app = typer.Typer(
    help=(
        "Plan a deployment: call flows by network segment, gateway and appliance sizing, "
        "and the DNS, firewall and certificate checklist."
    ),
    no_args_is_help=True,
)
cli_plan_callflow.register(plan_app)
cli_plan_sizing.register(plan_app)
cli_plan_checklist.register(plan_app)
cli_plan_verify.register(plan_app)


def register_plan_commands(app: typer.Typer) -> None:
    """Add ``plan`` and its subcommands to the top-level command line."""
    app.add_typer(plan_app, name="plan")
