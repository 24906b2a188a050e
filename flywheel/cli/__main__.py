"""`python -m flywheel.cli ...`: the same as the `flywheel` command."""

from flywheel.cli import app

app()
