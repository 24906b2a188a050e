"""Labeling: weekly batch selection, review decisions (pass / fix / reject), labels back into examples.

Steps, each with its counts, and the module that holds it:
1. `candidates.load_week_candidates`: the week's interactions joined with their signals (DuckDB over Parquet).
2. `selection.select_batch`: corrections, negatives, low-confidence outputs, then a seeded control sample;
   near-identical inputs collapsed; earlier-reviewed items left out; capped with per-kind quotas.
3. `batches`: the batch is registered in the decision store (`store`) and written as
   `warehouse/labeling_batch/<week>.parquet` and `labeling/<week>/batch.jsonl`; sample batches of any
   example source.
4. Reviewers decide in the review page (`server`) or by file (`decisions.export_batch` / `import_decisions`).
5. `decisions.resolve_decisions` + `reviewed.build_reviewed_examples`: pass -> the model output is the answer,
   fix -> the edited answer (human_fixed), reject -> dropped (kept in the store with its reason);
   `agreement.review_stats` measures the reviewers.
"""
