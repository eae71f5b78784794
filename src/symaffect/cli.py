"""The ``symaffect`` command line: each command builds a config and calls the library."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from symaffect.errors import SymaffectError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Inspect and validate data folders.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)


def main() -> None:
    """Entry point: user-facing errors become one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(standalone_mode=False)
    except SymaffectError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors etc.
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(2)
        raise


# --- data commands (issue 3) ---------------------------------------------------------

# --- model commands (issue 4) --------------------------------------------------------

# --- training and experiments (issue 5) ----------------------------------------------

# --- live monitoring (issue 6) -------------------------------------------------------


if __name__ == "__main__":
    main()
