"""Curation: from example sources to a versioned, checked training dataset.

- `sources`          seed / synthetic / distilled files as example rows (bad rows quarantined)
- `context`          the step interface, the context steps record drops / flags / conflicts into
- `steps/`           one module per step: admission, format, conflict verdicts, rubric, dedup, conflicts,
                     mislabel, decontamination, balance, size
- `answer_format`    the project's answer format (also evaluation's format metric)
- `pipeline`         `curate`: the steps over the merged rows, each with its counts
- `rules`            the dataset's quality rules (blocking and warning)
- `card`             the dataset card and its tables
- `versions`         `datasets/<version>/` (content hash) and `datasets/LATEST`
- `review_batches`   the version's review sample and conflicts as review batches; conflict verdicts read back
- `admission`        each synthetic / distilled file's admission sample batch, its state, the check
- `build`            `build_training_dataset`: all of the above for one project
- `near_duplicates`, `diversity`, `production_gap`: the measures the steps and rules use
"""
