"""The `generation` section: generator and teacher endpoints, budgets, the collapse watch."""

from __future__ import annotations

from pydantic import Field, model_validator

from flywheel.config.base import StrictModel


class EndpointConfig(StrictModel):
    """A model behind an OpenAI-compatible API (vLLM, a hosted provider, a local server)."""

    base_url: str = Field(..., description="e.g. http://localhost:8000/v1 (the client appends /chat/completions)")
    model: str
    family: str = Field("", description="model family (llama, qwen, mistral ...): generators must span several")
    api_key_env: str | None = Field(None, description="name of the env var holding the API key (None: no key sent)")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, description="retries of a failed request (5xx, 429, network), with backoff")
    backoff_s: float = Field(1.0, ge=0, description="first retry's wait, doubled each retry (a 429's Retry-After wins)")
    requests_per_minute: float | None = Field(None, gt=0, description="client-side rate limit (None: unlimited)")
    temperature: float = Field(0.7, ge=0, le=2)
    max_output_tokens: int = Field(1024, gt=0)


class GeneratorConfig(EndpointConfig):
    name: str | None = Field(None, description="the name rows carry as `generator` (default: model)")
    prompt: str | None = Field(None, description="this generator's own instructions (default: a built-in variant)")
    prompt_version: str = Field("v1", description="recorded on every row this generator writes")
    weight: float = Field(1.0, gt=0, description="relative share of the run's examples")

    @property
    def label(self) -> str:
        return self.name or self.model


class GenerationConfig(StrictModel):
    """Synthetic examples from several generators, a teacher's answers to real inputs, the collapse watch."""

    generators: list[GeneratorConfig] = Field(default_factory=list)
    min_generator_families: int = Field(2, ge=1, description="generators must come from at least this many model families")
    max_examples: int = Field(200, ge=0, description="synthetic examples per run at most")
    max_tokens: int = Field(200_000, gt=0, description="prompt + completion tokens per run at most (each run kind)")
    examples_per_request: int = Field(5, ge=1, le=50)
    seed_examples_in_prompt: int = Field(3, ge=0, description="seed examples shown to a generator per request")
    max_failed_requests: int = Field(3, ge=1, description="a generator stops after this many failed requests in a row")
    messy_inputs: bool = Field(True, description="make generated inputs as messy as production (kind shares)")
    profile_weeks: int = Field(4, ge=1, description="weeks of production inputs the profile is taken over")
    teacher: EndpointConfig | None = None
    allow_self_teacher: bool = Field(False, description="let the deployed model teach itself (collapse risk)")
    max_distill_inputs: int = Field(500, ge=0, description="production inputs of a week the teacher answers at most")
    reference_model: EndpointConfig | None = Field(
        None, description="scores generated answers' perplexity (a /completions endpoint returning prompt logprobs)")
    collapse_sample_size: int = Field(100, ge=4, description="answers per generation scored for perplexity and diversity")
    collapse_diversity_drop_warn: float = Field(
        0.1, ge=0, le=1, description="warn when a generator's diversity falls by more than this (relative) between generations")
    collapse_variance_drop_warn: float = Field(
        0.3, ge=0, le=1, description="warn when the perplexity variance falls by more than this (relative): the narrowing of collapse")
    seed: int = 0

    @model_validator(mode="after")
    def _generators(self) -> GenerationConfig:
        names = [g.label for g in self.generators]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"generator names must be unique (got {', '.join(dupes)} more than once)")
        families = {g.family.strip().lower() for g in self.generators if g.family.strip()}
        if self.generators and len(families) < self.min_generator_families:
            raise ValueError(f"expected generators from at least min_generator_families={self.min_generator_families} "
                             f"model families (got {len(families)}: {', '.join(sorted(families)) or 'none named'}); "
                             "set `family` on each generator")
        return self
