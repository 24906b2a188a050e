"""flywheel: turn a fine-tuned model's production traffic into a better model every cycle.

The domain library. Nothing in this package imports dagster; the Dagster layer lives in
`assets/`, `jobs/`, `schedules/` and `definitions.py`.
"""

__version__ = "0.1.0"
