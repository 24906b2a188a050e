"""The project file (`flywheel.yaml`) as pydantic models, one module per section. Every threshold of the
flywheel lives here; `load_project` reads and validates a file (see `flywheel.config.project`)."""

from flywheel.config.automation import AutomationConfig
from flywheel.config.base import PROJECT_FILE, ConfigError, StrictModel
from flywheel.config.capture import CaptureConfig, CollectorConfig, PiiConfig, PiiKind, SignalWeights
from flywheel.config.curation import CurationConfig, SourcesConfig
from flywheel.config.evaluation import EvaluationConfig, JudgeConfig
from flywheel.config.generation import EndpointConfig, GenerationConfig, GeneratorConfig
from flywheel.config.kubernetes import SecretKey, Toleration, TrainingPodConfig
from flywheel.config.labeling import LabelingConfig, LabelingQuotas
from flywheel.config.project import ProjectConfig, load_project, parse_project, read_yaml
from flywheel.config.training import DpoConfig, LoraConfig, TrainingConfig

__all__ = [
    "PROJECT_FILE", "AutomationConfig", "CaptureConfig", "CollectorConfig", "ConfigError", "CurationConfig",
    "DpoConfig", "EndpointConfig", "EvaluationConfig", "GenerationConfig", "GeneratorConfig", "JudgeConfig",
    "LabelingConfig", "LabelingQuotas", "LoraConfig", "PiiConfig", "PiiKind", "ProjectConfig", "SecretKey",
    "SignalWeights", "SourcesConfig", "StrictModel", "Toleration", "TrainingConfig", "TrainingPodConfig",
    "load_project", "parse_project", "read_yaml",
]
