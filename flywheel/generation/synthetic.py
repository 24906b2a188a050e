"""Synthetic examples from several generator models, each with its own prompt (`generate_synthetic`).

Each configured generator (an OpenAI-compatible endpoint) is shown the rubric, a few seed examples and what
production inputs look like, and asked for examples as JSON. The guide's rules apply where the data is made:

- the generators span at least `generation.min_generator_families` model families (the config refuses fewer);
- no generator is asked for more than `curation.max_generator_share` of the run (weights, then a water-fill);
- the run stays within the real:synthetic ratio (`curation.max_synthetic_per_real` over the real and
  generated rows already there), `generation.max_examples` and `generation.max_tokens`;
- inputs are as messy as production's (`messy`: each kind's share from the production profile);
- every row names its `generator`, model `family`, `prompt_version` and the prompt's hash.

A generator that fails (HTTP errors after retries, rate limits, unparseable replies) stops after
`max_failed_requests` failures in a row; what the others wrote is kept and the run says what is missing
and why. Replies and items not used are quarantined with their reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flywheel.capture.profile import (
    ProductionProfile,
    build_vocabulary,
    kind_shares,
    production_profile,
    under_covered_kinds,
)
from flywheel.capture.records import INTERACTIONS
from flywheel.config import GeneratorConfig, ProjectConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome
from flywheel.core.text import input_match_key
from flywheel.generation.client import EndpointError, client_for, estimate_tokens
from flywheel.generation.existing import ratio_room, seed_pairs
from flywheel.generation.messy import apply_style, describe_style, plan_styles
from flywheel.generation.runs import SYNTHETIC, GenerationRun, ModelTally, write_run
from flywheel.project import rubric_text

BUILTIN_PROMPTS = (
    "You write realistic training examples for an AI assistant: a request a real user sends and the ideal answer.",
    "You are a meticulous data writer. Invent requests real users of this assistant would send, including terse, "
    "awkward and ambiguous ones, and answer each exactly as the rubric asks.",
    "Produce varied user requests for this assistant, favouring edge cases and less common needs, each with a model "
    "answer that follows the rubric to the letter.",
)
REPLY_FORMAT = ('Reply with JSON only, no prose: {"examples": [{"input": "<the user\'s message>", '
                '"output": "<the ideal answer>"}, ...]}')
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class ReplyError(InputError):
    """A generator reply that holds no usable examples; `reason` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def plan_quotas(generators: Sequence[GeneratorConfig], total: int, max_share: float) -> dict[str, int]:
    """Examples asked of each generator: `total` split by weight, none above `max_share` of `total` (the
    excess goes to the others; with every generator at the cap the run asks for less). Largest remainders."""
    if not generators or total <= 0:
        return {g.label: 0 for g in generators}
    cap = total if len(generators) == 1 else math.floor(max_share * total)
    share = {g.label: 0.0 for g in generators}
    weights = {g.label: g.weight for g in generators}
    left, open_ = float(total), set(weights)
    while left > 1e-9 and open_:
        w = sum(weights[n] for n in open_)
        give = {n: left * weights[n] / w for n in open_}
        left = 0.0
        for n, x in give.items():
            room = cap - share[n]
            share[n] += min(x, room)
            if x >= room:
                left += x - room
                open_.discard(n)
    quotas = {n: math.floor(x + 1e-9) for n, x in share.items()}
    want = min(total, math.floor(sum(share.values()) + 1e-9)) - sum(quotas.values())
    for n in sorted(share, key=lambda n: (-(share[n] - quotas[n]), n)):
        if want <= 0:
            break
        if quotas[n] < cap:
            quotas[n] += 1
            want -= 1
    return quotas


def parse_examples(content: str | None) -> list[Any]:
    """The items of a generator's JSON reply (`{"examples": [...]}` or a bare list; code fences allowed)."""
    if content is None or not content.strip():
        raise ReplyError("empty_reply", "the reply holds no text")
    text = content.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    data: Any = None
    spans = sorted((text.find(o), o, c) for o, c in (("{", "}"), ("[", "]")) if o in text)
    for candidate in (text, *(text[i:text.rfind(c) + 1] for i, _, c in spans)):
        try:
            data = json.loads(candidate)
            break
        except (ValueError, RecursionError):
            continue
    if data is None:
        raise ReplyError("unparseable_reply", f"not JSON: {content[:120]!r}")
    items = data.get("examples") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ReplyError("unparseable_reply", "JSON without an `examples` list")
    return items


def generator_messages(gen: GeneratorConfig, index: int, rubric: str, seeds: Sequence[tuple[str, str]],
                       styles: Sequence[tuple[str, ...]], under_covered: Sequence[str]) -> list[dict[str, str]]:
    """The chat messages asking `gen` for len(styles) examples, one style line each."""
    instructions = gen.prompt or BUILTIN_PROMPTS[index % len(BUILTIN_PROMPTS)]
    parts = [instructions, "", "Quality rubric every answer must follow:", rubric.strip() or "(none written)"]
    if seeds:
        parts += ["", "Examples of good conversations:"]
        parts += [f"Input: {i}\nOutput: {o}" for i, o in seeds]
    if under_covered:
        parts += ["", "Existing examples have too few inputs that are: " + ", ".join(k.replace("_", " ") for k in under_covered)]
    parts += ["", f"Write {len(styles)} new examples, different from the ones above and from each other. "
              "Write each user input like this (production users write this way):"]
    parts += [f"{n}. {describe_style(s)}" for n, s in enumerate(styles, 1)]
    parts += ["", REPLY_FORMAT]
    return [{"role": "user", "content": "\n".join(parts)}]


def prompt_sha(gen: GeneratorConfig, index: int) -> str:
    """sha256[:12] of the generator's instructions (the prompt version's content)."""
    text = gen.prompt or BUILTIN_PROMPTS[index % len(BUILTIN_PROMPTS)]
    return hashlib.sha256((text + "\n" + REPLY_FORMAT).encode("utf-8")).hexdigest()[:12]


def _item_pair(item: Any) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        return None
    a, b = item.get("input"), item.get("output")
    if isinstance(a, str) and isinstance(b, str) and a.strip() and b.strip():
        return a.strip(), b.strip()
    return None


class _SyntheticRun:
    """The state of one synthetic run across its generators (see `generate_synthetic`)."""

    def __init__(self, project: ProjectConfig, run: GenerationRun, profile: ProductionProfile,
                 seeds: list[tuple[str, str]], sleep: Callable[[float], None]) -> None:
        self.project, self.cfg, self.run, self.profile, self.seeds = project, project.generation, run, profile, seeds
        self.rubric = rubric_text(project)
        self.system = project.curation.system_prompt
        self.sleep = sleep
        self.seen: set[str] = {input_match_key(i) for i, _ in seeds}
        self.under = under_covered_kinds(profile.shares, kind_shares([i for i, _ in seeds], profile.vocabulary)) \
            if profile.available else []
        self.rng = np.random.default_rng(self.cfg.seed)
        self.vocabulary = set(profile.vocabulary)

    def _accept(self, gen: GeneratorConfig, tally: ModelTally, sha: str, pair: tuple[str, str],
                style: tuple[str, ...], req: int) -> str | None:
        """Add one example; the reason it was refused otherwise."""
        text, answer = pair
        self.vocabulary |= build_vocabulary([answer], seed=self.cfg.seed)  # answers are written with care
        if self.cfg.messy_inputs and self.profile.available:
            text = apply_style(text, style, self.vocabulary, self.cfg.seed + len(self.run.rows))
        key = input_match_key(text)
        if not key:
            return "empty_input"
        if key in self.seen:
            return "duplicate_input"
        self.seen.add(key)
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        tally.accepted += 1
        self.run.rows.append({"messages": messages, "generator": tally.name, "generator_family": gen.family,
                              "generator_model": gen.model, "prompt_version": gen.prompt_version, "prompt_sha": sha,
                              "style": list(style), "id": f"{self.run.partition}-{tally.name}-{tally.accepted}",
                              "request": req})
        return None

    def generate(self, index: int, gen: GeneratorConfig, quota: int) -> ModelTally:
        cfg, run = self.cfg, self.run
        tally = ModelTally(gen.label, gen.model, gen.family, gen.prompt_version, quota=quota)
        run.tallies[tally.name] = tally
        if quota <= 0:
            return tally
        try:
            client = client_for(gen, role="generator", sleep=self.sleep)
        except InputError as exc:
            tally.stopped, tally.failures["not_configured"] = str(exc), 1
            return tally
        sha = prompt_sha(gen, index)
        shares = self.profile.shares if cfg.messy_inputs else {}
        styles = plan_styles(quota, shares, cfg.seed + index)
        in_a_row, req = 0, 0
        with client:
            while tally.accepted < quota:
                n = min(cfg.examples_per_request, quota - tally.accepted)
                batch = styles[tally.accepted:tally.accepted + n]
                k = min(cfg.seed_examples_in_prompt, len(self.seeds))
                shown = [self.seeds[int(i)] for i in self.rng.choice(len(self.seeds), size=k, replace=False)] if k else []
                messages = generator_messages(gen, index, self.rubric, shown, batch, self.under)
                need = estimate_tokens(messages[0]["content"]) + gen.max_output_tokens
                if run.tokens + need > cfg.max_tokens:
                    tally.stopped = f"token budget spent ({run.tokens} of {cfg.max_tokens} used; a request needs ~{need})"
                    break
                req += 1
                tally.requests += 1
                failure = None
                try:
                    reply = client.chat(messages, temperature=gen.temperature, max_tokens=gen.max_output_tokens)
                    items = parse_examples(reply.content)
                except EndpointError as exc:
                    failure = (exc.reason, exc.detail)
                except ReplyError as exc:
                    failure = (exc.reason, str(exc))
                    run.reject(tally.name, req, exc.reason, f"generator {tally.name}, request {req}: {exc}", reply.content or "")
                finally:
                    tally.tokens, tally.rate_limited = client.usage.tokens, client.usage.rate_limited
                if failure is None:
                    before = tally.accepted
                    for j, item in enumerate(items):
                        pair = _item_pair(item)
                        if tally.accepted >= quota:
                            reason = "beyond_quota"
                        elif pair is None:
                            reason = "missing_field"
                        else:
                            reason = self._accept(gen, tally, sha, pair, styles[tally.accepted], req)
                        if reason:
                            tally.failures[reason] += 1
                            run.reject(tally.name, req, reason, f"generator {tally.name}, request {req}, item {j + 1}: "
                                       f"{reason.replace('_', ' ')}", item)
                    if tally.accepted == before:
                        failure = ("no_new_examples", "the reply held no new usable example")
                if failure is None:
                    in_a_row = 0
                    continue
                tally.failed_requests += 1
                tally.failures[failure[0]] += 1
                in_a_row += 1
                if in_a_row >= cfg.max_failed_requests:
                    tally.stopped = f"{in_a_row} failed requests in a row (last: {failure[0]}: {failure[1][:200]})"
                    break
        return tally


def generate_synthetic(project: ProjectConfig, home: FlywheelHome, partition: str,
                       sleep: Callable[[float], None] = time.sleep) -> GenerationRun:
    """Run every configured generator for the weekly `partition` (a Monday, YYYY-MM-DD) and write
    `generated/synthetic/<partition>.jsonl` with its quarantine and report (see the module doc)."""
    cfg = project.generation
    monday = dt.date.fromisoformat(partition)
    run = GenerationRun(SYNTHETIC, partition, token_budget=cfg.max_tokens)
    if not cfg.generators:
        run.notes.append("no generators configured (generation.generators)")
        return write_run(home, run)
    room = ratio_room(project, home, SYNTHETIC, partition)
    run.target = min(cfg.max_examples, room.room)
    run.notes.append(f"target {run.target}: max_examples {cfg.max_examples}; {room.describe()}")
    seeds = seed_pairs(project)
    profile = production_profile(home.warehouse(INTERACTIONS), cfg.profile_weeks, until=monday + dt.timedelta(days=7),
                                 seed=cfg.seed, vocabulary_texts=[t for pair in seeds for t in pair])
    if not profile.available:
        run.notes.append("no production inputs captured yet: inputs are written without production's messiness")
    state = _SyntheticRun(project, run, profile, seeds, sleep)
    quotas = plan_quotas(cfg.generators, run.target, project.curation.max_generator_share)
    for i, gen in enumerate(cfg.generators):
        state.generate(i, gen, quotas[gen.label])
    _facts(run, project, profile, state.under, state.vocabulary)
    return write_run(home, run)


def _facts(run: GenerationRun, project: ProjectConfig, profile: ProductionProfile, under: list[str],
           vocabulary: set[str]) -> None:
    """Shares per generator and family, input kinds against production, and notes on what is missing."""
    n = len(run.rows)
    by_gen = Counter(r["generator"] for r in run.rows)
    families = Counter(r["generator_family"] for r in run.rows)
    run.facts["generator_shares"] = {g: round(c / n, 4) for g, c in by_gen.items()} if n else {}
    run.facts["families"] = dict(families)
    run.facts["production_profile"] = profile.summary()
    run.facts["under_covered_kinds"] = under
    if n:
        made = kind_shares([r["messages"][-2]["content"] for r in run.rows], vocabulary)
        run.facts["input_kinds"] = {k: {"production": profile.shares.get(k), "generated": v} for k, v in made.items()}
    cap = project.curation.max_generator_share
    for g, c in by_gen.items():
        if n and c / n > cap and len(run.tallies) > 1:
            run.notes.append(f"{g} wrote {c / n:.0%} of this run (over curation.max_generator_share {cap:.0%}): "
                             "other generators fell short")
    if n and len(families) < project.generation.min_generator_families:
        run.notes.append(f"rows come from {len(families)} model families, fewer than min_generator_families "
                         f"{project.generation.min_generator_families}")
    for t in run.tallies.values():
        if t.missing:
            run.notes.append(f"{t.name}: {t.accepted} of {t.quota} written ({t.stopped or 'stopped'})")
