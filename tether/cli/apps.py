"""The `tether` command's command groups; the modules beside this one add the commands."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Tether: governed AI workflows on Temporal.")
approvals = typer.Typer(no_args_is_help=True, help="Work waiting for a human.")
evaluation = typer.Typer(
    no_args_is_help=True, help="Live evaluation: sampled outcomes scored, quality budgets."
)
app.add_typer(evaluation, name="eval")
app.add_typer(approvals, name="approvals")


def _print_version(given: bool) -> None:
    if given:
        from tether import __version__

        typer.echo(f"tether {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,  # before any command or setting is read: works with a broken environment
        help="Print the installed version and exit.",
    ),
) -> None:
    """Tether: governed AI workflows on Temporal."""
