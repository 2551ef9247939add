"""IterPref training: tokenized pairs with error-region masks, cached reference log-probs, a focal-loss Trainer.

Python API::

    from iterpref.train import TrainConfig, train
    result = train(TrainConfig(pairs="pairs.jsonl", output_dir="runs/focal"))

``TrainConfig`` and the mask modes import without torch, so the CLI can build ``iterpref train``'s options in
an install without the ``train`` extra; ``train`` and ``TrainResult`` load the recipe (torch, transformers) on
first use.
"""

from iterpref.train.config import LOSS_PRESETS, TrainConfig

__all__ = ["LOSS_PRESETS", "TrainConfig", "TrainResult", "train"]


def __getattr__(name: str):
    # PEP 562: the recipe imports torch, so it is loaded only when asked for.
    if name in ("train", "TrainResult"):
        from iterpref.train import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'iterpref.train' has no attribute {name!r}")
