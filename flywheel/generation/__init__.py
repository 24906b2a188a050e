"""Generation: synthetic examples from several generator models and a teacher's answers to real inputs.

Sits between labeling and curation: it imports core, capture (the production-input profile), formats and
labeling's table names, and hands its rows to curation as files (`generated/<kind>/<week>.jsonl`).

- `client`        the one OpenAI-compatible client (retries, 429 Retry-After, timeouts, token usage); the judge's too
- `synthetic`     several generators, each with its own prompt, under the share cap, ratio room and budgets
- `messy`         inputs as messy as production's, in its proportions
- `distillation`  a teacher answers the week's captured inputs; a self-teacher is refused
- `existing`      seed examples and the real:synthetic room before a run
- `runs`          per-model tallies, the run's rows, quarantine and report under FLYWHEEL_HOME
"""
