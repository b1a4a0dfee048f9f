"""Knowledge-transfer workflows (``docs/theory.md`` §8): the comparisons as specs
(:mod:`.specs`), their evaluation and metrics (:mod:`.report`), tuning of the student
(:mod:`.tuning`) and maps over two parameters (:mod:`.maps`)."""

from .maps import TransferMap, set_param, transfer_map
from .oracle import OracleStop, oracle_stop
from .report import ModelSummary, TransferReport, evaluate, spectral_horizon
from .specs import Chain, Distillation, TransferSpec, WeakToStrong, transfer_from_dict
from .tuning import Tuning, tune_alpha, tune_lr

__all__ = [
    "Chain", "Distillation", "ModelSummary", "OracleStop", "TransferMap", "TransferReport", "TransferSpec", "Tuning",
    "WeakToStrong", "evaluate", "oracle_stop", "set_param", "spectral_horizon", "transfer_from_dict",
    "transfer_map", "tune_alpha", "tune_lr",
]
