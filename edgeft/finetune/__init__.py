"""Fine-tuning with partial freezing, a feature cache, and resumable run directories."""

from edgeft.finetune.config import FinetuneConfig, FreezePolicy
from edgeft.finetune.freezing import apply_freeze, set_train_mode
from edgeft.finetune.run_dir import RunDir, load_run
from edgeft.finetune.stage import FinetuneResult, finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "FreezePolicy", "RunDir", "apply_freeze", "finetune", "load_run",
           "set_train_mode"]
