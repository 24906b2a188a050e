"""The `flywheel` Typer application and its sub-command groups (commands live in the *_commands modules)."""

from __future__ import annotations

import typer

app = typer.Typer(help="flywheel: a data flywheel for LLM fine-tuning.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
labeling_app = typer.Typer(help="Review batches by file, and close batches.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list, promote, roll back.", no_args_is_help=True)
app.add_typer(labeling_app, name="labeling")
app.add_typer(models_app, name="models")
