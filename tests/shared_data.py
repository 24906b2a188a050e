"""Where the repository and the shared datasets (`../shared/datasets/`) are, for every test."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
CHATML_TOY = DATASETS / "chatml_openai_toy.jsonl"
SHAREGPT_DUMMY = DATASETS / "sharegpt_fastchat_dummy.json"
ALPACA_DEMO = DATASETS / "alpaca_llamafactory_demo.json"
