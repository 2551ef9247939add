"""Preference pairs from trajectories (:mod:`.build`), with the line diff that marks their error region
(:mod:`.diff`); :mod:`.synthetic` makes pairs from injected bugs when a model repairs too little."""

from iterpref.pairs.build import (
    FILTERS,
    SELECTIONS,
    PairSummary,
    build_pairs,
    round0_prompts,
    tokenizer_counter,
    write_pairs,
)

__all__ = ["FILTERS", "SELECTIONS", "PairSummary", "build_pairs", "round0_prompts", "tokenizer_counter",
           "write_pairs"]
