"""The project file (`flywheel.yaml`) as pydantic models. Every threshold of the flywheel lives here.

A wrong key or value is refused with the file, the line, the key and what was expected (`ConfigError`):
so are values that cannot work (a cron expression that does not parse or never fires, an unknown time
zone, a broken regular expression or JSON schema, bounds in the wrong order), duplicate keys, and YAML
anchors and aliases (refused outright: no expansion bombs).
"""

from __future__ import annotations

import difflib
import re
import typing
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flywheel.core.cron import parse_cron

PROJECT_FILE = "flywheel.yaml"


class ConfigError(ValueError):
    """A project file that cannot be used: names the file, the key and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


PiiKind = Literal["secret", "email", "iban", "card", "ssn", "passport", "dob", "address", "person", "ip", "phone"]


class PiiConfig(_Strict):
    """What capture redacts (`flywheel.capture.pii`), and the NER pass where rows become training data."""

    enabled: bool = True
    kinds: list[PiiKind] = Field(default_factory=lambda: list(typing.get_args(PiiKind)))
    allow: list[str] = Field(default_factory=list, description="never redacted: the product's own e-mail addresses, e-mail domains (nimbus.example) and phone numbers")
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "IN"], description="ISO 3166 regions whose national phone numbers are recognised")
    ner: bool = Field(True, description="run NER on rows entering a labeling batch, a dataset version or the eval set, and on fixed answers")
    ner_models: list[str] = Field(default_factory=lambda: ["en_core_web_sm"], description="spaCy pipelines to try, the first installed one is used")

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not re.fullmatch(r"[A-Z]{2}", r)]
        if bad:
            raise ValueError(f"phone regions are ISO 3166 codes such as US, DE; got {bad}")
        return value


class SignalWeights(_Strict):
    correction: float = Field(3.0, ge=0)
    negative: float = Field(2.0, ge=0)
    positive: float = Field(1.0, ge=0)
    none: float = Field(0.5, ge=0)


class CollectorConfig(_Strict):
    """`flywheel collect` (OTLP/HTTP + feedback) and `flywheel serve`: request limits."""

    token_env: str = Field("FLYWHEEL_COLLECTOR_TOKEN", description="env var holding the bearer token clients send")
    max_body_bytes: int = Field(8 << 20, ge=4096, description="larger request bodies are refused (413), also once decompressed")
    max_inflight: int = Field(32, ge=1, description="requests handled at once; more get 503 + Retry-After (bounded memory)")
    retry_after_s: int = Field(1, ge=1, description="the Retry-After of a 503")
    serve_max_tokens: int = Field(512, ge=1, description="`flywheel serve` refuses a larger max_tokens")


class CaptureConfig(_Strict):
    resubmit_window_s: int = Field(120, gt=0, description="a similar message in the same session within this many seconds is a resubmission")
    resubmit_similarity: float = Field(0.6, ge=0, le=1, description="rapidfuzz ratio (0-1) above which two messages count as the same request")
    max_field_chars: int = Field(100_000, gt=0, description="longer text fields are quarantined as huge")
    orphan_tmp_after_s: float = Field(600.0, gt=0, description="a landing .tmp untouched this long was left by a killed writer and is published (more than any writer's max_age_s)")
    quarantine_rate_warn: float = Field(0.05, ge=0, le=1)
    pseudonymize: bool = Field(True, description="replace user_id and session_id at capture by a keyed hash (HMAC-SHA256, key in $FLYWHEEL_PSEUDONYM_KEY); false stores the raw ids")
    retention_days: int | None = Field(None, gt=0, description="delete a day's landing files once they are this many days old and their day is captured (null: keep them)")
    signal_weights: SignalWeights = Field(default_factory=SignalWeights)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)


class LabelingQuotas(_Strict):
    """Share of the batch reserved for each candidate kind; unused share flows to the next kind."""

    correction: float = Field(0.4, ge=0, le=1)
    negative: float = Field(0.3, ge=0, le=1)
    low_confidence: float = Field(0.2, ge=0, le=1)
    control: float = Field(0.1, ge=0, le=1)


class LabelingConfig(_Strict):
    batch_size: int = Field(200, gt=0)
    max_request_bytes: int = Field(1_048_576, ge=4096, description="the review page refuses larger request bodies (413)")
    max_fix_chars: int = Field(20_000, gt=0, description="the longest fixed answer a reviewer may save")
    max_reason_chars: int = Field(2_000, gt=0, description="the longest reject reason")
    max_import_line_bytes: int = Field(
        4_194_304, ge=4096, description="`flywheel labeling import` refuses a decisions file with a longer line"
    )
    quotas: LabelingQuotas = Field(default_factory=LabelingQuotas)
    low_confidence_threshold: float = Field(0.5, ge=0, le=1)
    near_duplicate_similarity: float = Field(0.9, ge=0, le=1)
    fix_rate_warn: float = Field(0.6, ge=0, le=1)
    reject_rate_warn: float = Field(0.4, ge=0, le=1)
    rate_warn_min_decided: int = Field(20, ge=1, description="judge fix/reject rates only once this many items are decided")
    agreement_kappa_warn: float = Field(0.4, ge=-1, le=1, description="warn when Cohen's kappa of double-reviewed items is below this")
    seed: int = 0


class SourcesConfig(_Strict):
    """Example files outside the production traffic (paths relative to the project file)."""

    seed: list[str] = Field(default_factory=list, description="human-written examples, any of the three formats")
    synthetic: list[str] = Field(default_factory=list, description="generator-written examples; every row names its `generator`")
    distilled: list[str] = Field(default_factory=list, description="a teacher model's answers to real inputs; every row names its `teacher`")


class EndpointConfig(_Strict):
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


class GenerationConfig(_Strict):
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


class CurationConfig(_Strict):
    system_prompt: str | None = Field(None, description="the system prompt used at inference; training rows must match it")
    min_examples: int = Field(200, ge=1)
    target_examples: int = Field(500, ge=1)
    ceiling_examples: int = Field(20_000, ge=1)
    max_synthetic_per_real: float = Field(10.0, gt=0)
    max_generator_share: float = Field(0.7, gt=0, le=1)
    max_self_generated_share: float = Field(0.1, ge=0, le=1)
    self_generator_names: list[str] = Field(default_factory=list, description="model names that count as the current model itself")
    answer_min_chars: int = Field(1, ge=0)
    answer_max_chars: int = Field(4000, gt=0)
    answer_regex: str | None = None
    answer_json_schema: dict[str, Any] | None = None
    refusal_is_allowed: bool = False
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    minhash_permutations: int = Field(64, ge=16)
    decontamination_ngram: int = Field(13, ge=3)
    # near-copies of short eval items (shorter than the n-gram window): a training user turn whose normalised
    # form is within this many character edits (insert, delete, substitute, swap adjacent) of an eval input
    # is a leak. 2 catches every 1-2 edit variant of the demo's eval set and flags no distinct phrasing
    # ("How can I ..." vs "How do I ..." is 3 edits); see benchmarks/decontamination.py.
    decontamination_max_edits: int = Field(2, ge=0, description="a training input this many character edits from an eval input leaks it")
    decontamination_max_edit_share: float = Field(
        0.5, ge=0, le=1, description="at most this share of an eval input's characters may differ (1-2 word inputs)")
    review_sample_size: int = Field(50, ge=0)
    admission_sample_size: int = Field(
        150, ge=1, description="rows of each synthetic or distilled file a person reviews before the file may train "
        "(the guide: 100-200; a smaller file is reviewed whole)")
    min_sample_pass_rate: float = Field(
        0.8, ge=0, le=1, description="a synthetic or distilled file is admitted once its reviewed sample's passes / "
        "decided items reach this")
    diversity_drop_warn: float = Field(0.1, ge=0, le=1)
    distribution_gap_warn: float = Field(0.25, ge=0, le=1)
    max_tokens: int = Field(4096, gt=0)
    seed: int = 0
    conflict_answer_similarity: float = Field(0.5, ge=0, le=1, description="near-same inputs whose answers' rapidfuzz ratio (0-1) is below this conflict")
    shingle_chars: int = Field(5, ge=2, description="character shingle size of the near-duplicate MinHash")
    style_outlier_iqr: float = Field(3.0, gt=0, description="an answer whose log-length lies beyond this many IQRs outside its source/slice's quartiles is a style outlier")
    mislabel_action: Literal["drop", "flag"] = Field(
        "drop", description="rows whose input reads like another answer class's: drop them, or only flag them for review")
    mislabel_min_class_examples: int = Field(
        10, ge=2, description="answer classes with fewer rows are not checked for mislabels (their rows are left alone)")
    mislabel_answer_threshold: float = Field(
        0.8, gt=0, le=1, description="answers whose MinHash Jaccard (char shingles) with a class's answer is at least this join it")
    mislabel_same_inputs_similarity: float = Field(
        0.8, gt=0,
        description="answer classes whose mean inputs are this alike (cosine corrected for class size) answer the "
                    "same questions with alternative replies: one class")
    mislabel_confidence: float = Field(
        0.75, gt=0, le=1,
        description="a row is mislabeled when its predicted class's probability reaches this share of that class's mean "
                    "(1 = confident learning's threshold; lower finds more)")

    @field_validator("answer_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.DOTALL)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("answer_json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value


class LoraConfig(_Strict):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    modules_to_save: list[str] = Field(default_factory=list, description="modules trained in full and saved with the adapter (avoid for vLLM serving)")


class DpoConfig(_Strict):
    """The optional preference stage after SFT: DPO (trl) on the dataset version's preference pairs,
    continuing the SFT LoRA adapter against a frozen copy of it."""

    enabled: bool = Field(False, description="train the SFT adapter further on preference pairs; the gate sees the result")
    beta: float = Field(0.1, gt=0, description="how far the policy may move from the SFT adapter (higher: less)")
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    min_pairs: int = Field(50, ge=1, description="with fewer accepted pairs the stage is skipped (the SFT adapter is the candidate)")
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer steps (tests); None: all epochs")


_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _matching(pattern: str, expected: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"expected {expected}")
        return value

    return AfterValidator(check)


_Quantity = typing.Annotated[str, _matching(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$",
                                            "a Kubernetes quantity such as 4, 500m or 32Gi")]
_Name = typing.Annotated[str, Field(max_length=253), _matching(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "a Kubernetes name (lowercase a-z, 0-9, - and .)")]


class Toleration(_Strict):
    """A Kubernetes toleration (the GPU nodes' taint)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value")
        if self.operator == "Equal" and not self.key:
            raise ValueError("operator Equal needs a key")
        return self


class SecretKey(_Strict):
    """One key of a Kubernetes Secret, read into one environment variable."""

    secret: _Name
    key: typing.Annotated[str, _matching(r"^[-._a-zA-Z0-9]+$", "a Secret key (letters, digits, - _ .)")]


class TrainingPodConfig(_Strict):
    """Where the retrain's training process runs on Kubernetes, and with what (used only by a deployment:
    local runs train in a subprocess). `launcher: subprocess` gives the retrain's run pod these resources
    (its run tags); `launcher: k8s` starts a pod of its own per training (Dagster Pipes, PipesK8sClient)
    and the run pod stays small."""

    launcher: Literal["subprocess", "k8s"] = "subprocess"
    image: str | None = Field(None, min_length=1, description="the training pod's image (the [train] extra); default: the run's own ($DAGSTER_CURRENT_IMAGE)")
    namespace: _Name | None = Field(None, description="default: the run pod's namespace")
    service_account: _Name | None = None
    gpus: int = Field(1, ge=0, le=64)
    gpu_resource: typing.Annotated[str, _matching(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
                                                  "an extended resource name such as nvidia.com/gpu")] = "nvidia.com/gpu"
    cpu: _Quantity = Field("4", description="CPU request (a Kubernetes quantity)")
    memory: _Quantity = Field("32Gi", description="memory request")
    memory_limit: _Quantity | None = Field("64Gi")
    node_selector: dict[str, str] = Field(default_factory=dict, description="e.g. cloud.google.com/gke-accelerator: nvidia-h100-80gb")
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")])
    env: dict[str, str] = Field(default_factory=dict, description="plain environment variables of the training process")
    env_from_secrets: list[_Name] = Field(default_factory=list, description="Secrets whose every key becomes an env var (envFrom)")
    secret_env: dict[str, SecretKey] = Field(default_factory=dict, description="env var -> one Secret key (e.g. AWS_ACCESS_KEY_ID)")
    home_volume_claim: _Name | None = Field(None, description="PersistentVolumeClaim holding FLYWHEEL_HOME, mounted at the run's home path")
    timeout_s: int = Field(86_400, gt=0, description="fail the training when its pod has not finished after this long")

    @model_validator(mode="after")
    def _valid_names(self) -> TrainingPodConfig:
        for k, v in self.node_selector.items():
            if not _LABEL_KEY.match(k) or not _LABEL_VALUE.match(v):
                raise ValueError(f"node_selector {k!r}: {v!r} is not a Kubernetes label key and value")
        for name in (*self.env, *self.secret_env):
            if not _ENV_NAME.match(name) or name.startswith("DAGSTER_PIPES_"):
                raise ValueError(f"env {name!r}: expected a variable name (letters, digits, _ . -), not DAGSTER_PIPES_*")
        if both := sorted(set(self.env) & set(self.secret_env)):
            raise ValueError(f"{', '.join(both)}: set in both env and secret_env")
        return self


class TrainingConfig(_Strict):
    base_model: str = Field("tiny", description="a local path, a hub id, or `tiny` for the built-in test model")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(3.0, gt=0)
    max_length: int = Field(1024, gt=0)
    batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    packing: bool = True
    seed: int = 42
    bf16: Literal["auto", "on", "off"] = "auto"
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer steps (tests, smoke runs); None: run all epochs")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention"] = Field(
        "auto", description="auto: flash_attention_2 on a GPU when flash-attn is installed, else sdpa"
    )
    pack_length: int | None = Field(
        None, gt=0, description="tokens per packed row; None: max_length on a GPU or padding-free, else max(256, longest example) capped at max_length"
    )
    padding_free: Literal["auto", "on", "off"] = Field("auto", description="flatten each batch to one row; auto: on with flash attention")
    gradient_checkpointing: bool = Field(False, description="trade ~20-30% speed for activation memory (large models)")
    device_tags: dict[str, str] = Field(default_factory=dict, description="extra run tags of the retrain job (laid over those built from `pod`)")
    pod: TrainingPodConfig = Field(default_factory=TrainingPodConfig, description="the GPU pod on Kubernetes (deployments only)")
    validation_share: float = Field(
        0.1, ge=0, le=0.5, description="share of the training examples held out (by example id, seeded) for a "
        "validation loss per epoch; never the eval set; 0 disables")
    validation_min_examples: int = Field(
        8, ge=1, description="no validation split when the share would hold out fewer examples than this")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many evaluations without a lower validation loss and keep the best "
        "epoch's adapter; None: off (needs a validation split)")

    # keys that say where training runs, not what it trains: left out of model version ids and tracked params
    PLACEMENT_KEYS: typing.ClassVar[frozenset[str]] = frozenset({"device_tags", "pod"})

    @field_validator("device_tags")
    @classmethod
    def _no_pod_config(cls, value: dict[str, str]) -> dict[str, str]:
        if "dagster-k8s/config" in value:
            raise ValueError("the retrain run's dagster-k8s/config is built from training.pod: set the GPU, node "
                             "selector and tolerations there")
        return value
    dpo: DpoConfig = Field(default_factory=DpoConfig)


class JudgeConfig(_Strict):
    base_url: str = Field(..., description="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    model: str
    api_key_env: str = "FLYWHEEL_JUDGE_API_KEY"
    min_kappa: float = Field(
        0.6, ge=-1, le=1, description="the gate uses the judge only while its Cohen's kappa with reviewers' verdicts is "
        "above this")
    min_calibration_items: int = Field(50, ge=1, description="... measured on at least this many human-decided items")
    calibration_items: int = Field(200, ge=1, description="the most recent human-decided items the judge grades")
    pass_min_grade: int = Field(4, ge=1, le=5, description="a judge grade (1-5) at or above this is the judge's pass")
    reject_max_grade: int = Field(1, ge=1, le=5, description="at or below this the judge's reject; in between: fix")

    @model_validator(mode="after")
    def _calibration(self) -> JudgeConfig:
        if self.reject_max_grade >= self.pass_min_grade:
            raise ValueError(f"expected reject_max_grade < pass_min_grade (got {self.reject_max_grade} >= {self.pass_min_grade})")
        if self.min_calibration_items > self.calibration_items:
            raise ValueError(f"expected min_calibration_items <= calibration_items (got {self.min_calibration_items} > "
                             f"{self.calibration_items})")
        return self


class EvaluationConfig(_Strict):
    eval_set: str = Field("eval.jsonl", description="the fixed eval file, 100-200 rows each with a `slice`")
    eval_set_version: int = Field(1, ge=1, description="raise to start a new, deliberately changed eval set")
    min_items: int = Field(100, ge=1)
    max_items: int = Field(200, ge=1, description="warn above this: a bigger fixed set costs eval time every cycle")
    metrics: list[Literal["exact_match", "token_f1", "chrf", "format", "judge"]] = Field(
        default_factory=lambda: ["exact_match", "token_f1", "chrf", "format"]
    )
    primary_metric: Literal["exact_match", "token_f1", "chrf", "format", "judge"] = "chrf"
    min_improvement: float = Field(0.0, ge=0, description="the primary metric must beat the champion by at least this")
    slice_tolerance: float = Field(0.02, ge=0, description="no slice may drop by more than this")
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(16, gt=0)
    bootstrap_samples: int = Field(1000, ge=100)
    seed_replicates: int = Field(
        0, ge=0, le=10,
        description="retrain each candidate's dataset with this many other seeds; their spread widens the gate's intervals",
    )
    judge: JudgeConfig | None = None


class AutomationConfig(_Strict):
    timezone: str = "UTC"
    capture_cron: str = "15 0 * * *"
    labeling_cron: str = "0 7 * * 1"
    retrain_cron: str = "0 3 1 1,4,7,10 *"
    negative_rate_threshold: float = Field(0.35, ge=0, le=1)
    negative_rate_rise: float = Field(0.1, ge=0, le=1)
    retrain_cooldown_days: int = Field(7, ge=0)
    metric_window_days: int = Field(7, gt=0, description="the live negative-signal rate is measured over this many days")
    metric_baseline_days: int = Field(14, gt=0, description="the champion's first days after promotion, the baseline for negative_rate_rise")
    metric_min_interactions: int = Field(50, ge=1, description="no metric-drop decision on fewer interactions than this")
    alert_webhook_env: str = Field("FLYWHEEL_ALERT_WEBHOOK", description="name of the env var holding the failure-alert webhook URL")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as UTC or Europe/Paris") from None
        return value

    @field_validator("capture_cron", "labeling_cron", "retrain_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        parse_cron(value)
        return value


class ProjectConfig(_Strict):
    """The whole project file."""

    name: str = "flywheel-project"
    rubric: str = "rubric.md"
    start_date: str = Field("2026-01-01", description="first day of captured traffic (partitions start here)")
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    labeling: LabelingConfig = Field(default_factory=LabelingConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    automation: AutomationConfig = Field(default_factory=AutomationConfig)

    # where the file was read from; relative paths in it resolve against this folder
    root: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("start_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> str:
        if isinstance(value, date) and not isinstance(value, datetime):  # YAML reads 2026-01-01 as a date
            return value.isoformat()
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError):
            raise ValueError("expected a date YYYY-MM-DD") from None

    @model_validator(mode="after")
    def _consistent(self) -> ProjectConfig:
        """Rules across keys: each problem names the key it is reported at and the values."""
        problems: list[tuple[tuple[str, ...], str]] = []
        c, e, lab = self.curation, self.evaluation, self.labeling
        if not c.min_examples <= c.target_examples <= c.ceiling_examples:
            problems.append((("curation",), "expected min_examples <= target_examples <= ceiling_examples "
                             f"(got {c.min_examples}, {c.target_examples}, {c.ceiling_examples})"))
        if c.answer_min_chars > c.answer_max_chars:
            problems.append((("curation", "answer_min_chars"), "expected answer_min_chars <= answer_max_chars "
                             f"(got {c.answer_min_chars} > {c.answer_max_chars})"))
        if e.min_items > e.max_items:
            problems.append((("evaluation", "min_items"),
                             f"expected min_items <= max_items (got {e.min_items} > {e.max_items})"))
        if e.primary_metric not in e.metrics:
            problems.append((("evaluation", "primary_metric"), f"{e.primary_metric!r} is not computed: add it to "
                             f"evaluation.metrics (got {', '.join(e.metrics) or 'none'})"))
        if e.judge is None and "judge" in (*e.metrics, e.primary_metric):
            problems.append((("evaluation", "metrics"), "metric 'judge' needs evaluation.judge (base_url, model)"))
        fix_room = 4 * (lab.max_fix_chars + lab.max_reason_chars) + 4096  # UTF-8, JSON-escaped, the other fields
        for key in ("max_request_bytes", "max_import_line_bytes"):
            if getattr(lab, key) < fix_room:
                problems.append((("labeling", key), f"expected at least 4 x (max_fix_chars + max_reason_chars) "
                                 f"+ 4096 = {fix_room} so a fix of the longest allowed length fits (got {getattr(lab, key)})"))
        if problems:
            raise _CrossKeyError(problems)
        return self

    def resolve(self, relative: str) -> Path:
        """A path from the project file, resolved against the project folder."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model of the mapping at `loc` in the project file (None when it is not one)."""
    model: type[BaseModel] = ProjectConfig
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        candidates = [info.annotation, *typing.get_args(info.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


class _CrossKeyError(ValueError):
    """Rules across keys that failed: (key path, message) each."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"key '{'.'.join(k)}': {m}" for k, m in problems))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: dict[str, Any], lines: dict[tuple[str, ...], int] | None = None) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc) or "(top level)"
    where = f"line {lines[loc]}, " if lines and loc in lines else ""
    if error["type"] == "extra_forbidden":
        model = _section_model(loc[:-1])
        known = [n for n, f in model.model_fields.items() if not f.exclude] if model else []
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{where}key '{key}': unknown key; {hint}expected one of: {', '.join(known)}"
    cause = error.get("ctx", {}).get("error")
    if error["type"] == "value_error" and not loc:  # rules across keys; each message names its key
        if isinstance(cause, _CrossKeyError):
            return "\n  ".join(
                f"{f'line {lines[k]}, ' if lines and k in lines else ''}key '{'.'.join(k)}': {m}" for k, m in cause.problems
            )
        return str(cause or error["msg"])
    return f"{where}key '{key}': {error['msg']} (got {_short(error.get('input'))})"


class _Refused(yaml.YAMLError):
    """YAML the project file does not accept (an anchor, an alias, a duplicate key), at a 1-based line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _ProjectLoader(yaml.SafeLoader):
    """Safe YAML that refuses anchors and aliases (no expansion bombs: nothing is ever expanded) and
    duplicate keys (the last one would win silently)."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise _Refused(event.start_mark.line + 1, f"YAML {kind}{anchor}: anchors and aliases are not accepted "
                           "in a project file; write the value out where it is used")
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                k, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if k in first:
                    raise _Refused(line, f"duplicate key '{key_node.value}' (first at line {first[k]}); "
                                   "each key may appear once in a mapping")
                first[k] = line
        return node


def _key_lines(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """The 1-based line of every mapping key of a composed YAML document, by its path of keys."""
    found: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                found[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found.setdefault((*path, str(i)), item.start_mark.line + 1)
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return found


def read_yaml(text: str, source: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse a project file's YAML (safe, without anchors, aliases or duplicate keys): the data and the
    line of every key. Raises `ConfigError` naming `source` and the line."""
    loader = _ProjectLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise ConfigError(f"{source}: line {exc.line}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a project file") from None
    finally:
        loader.dispose()
    return data, _key_lines(node)


def parse_project(
    data: Any, source: str = PROJECT_FILE, root: Path | None = None, key_lines: dict[tuple[str, ...], int] | None = None
) -> ProjectConfig:
    """Validate an already-parsed project mapping; errors name `source`, the key (and its line, when
    `key_lines` maps key paths to lines) and what was expected."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        cfg = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e, key_lines) for e in exc.errors())
        raise ConfigError(f"{source}: invalid project file\n  {lines}") from None
    if root is not None:
        cfg.root = root
    return cfg


def load_project(path: str | Path) -> ProjectConfig:
    """Read and validate a project file (a path to `flywheel.yaml` or to the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / PROJECT_FILE
    if not p.exists():
        raise ConfigError(f"{p}: project file not found (run `flywheel init DIR` to create one)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the project file: {exc}") from None
    data, lines = read_yaml(text, str(p))
    return parse_project(data, source=str(p), root=p.parent.resolve(), key_lines=lines)
