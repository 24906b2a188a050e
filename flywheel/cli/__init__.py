"""`flywheel ...`: the command line. `app` is the console script's entry point.

One module per domain: project_commands (init, check-config, status), format_commands (validate,
convert), labeling_commands (review, labeling ...), model_commands (models ...), run_commands (demo,
backfill), privacy_commands (erase), capture_commands (collect, import, serve); each command calls one library function. Importing a module
registers its commands, in the order `flywheel --help` lists them.
"""

# isort: off
from flywheel.cli import project_commands, format_commands, labeling_commands, model_commands, run_commands
from flywheel.cli import capture_commands
from flywheel.cli import privacy_commands
# isort: on
from flywheel.cli.app import app

__all__ = ["app", "capture_commands", "format_commands", "labeling_commands", "model_commands", "privacy_commands",
           "project_commands", "run_commands"]
