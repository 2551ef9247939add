"""IterPref training: tokenized pairs with error-region masks, cached reference log-probs, a focal-loss Trainer.

Python API::

    from iterpref.train import TrainConfig, train
    result = train(TrainConfig(pairs="pairs.jsonl", output_dir="runs/focal"))

Heavy imports (torch, transformers) happen inside ``train`` so that importing this package stays cheap.
"""

from iterpref.train.config import LOSS_PRESETS, TrainConfig
from iterpref.train.recipe import TrainResult, train

__all__ = ["LOSS_PRESETS", "TrainConfig", "TrainResult", "train"]
