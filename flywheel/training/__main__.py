"""`python -m flywheel.training CONFIG_JSON`: one training run (Dagster Pipes when launched by it)."""

from flywheel.training.entry import main

raise SystemExit(main())
