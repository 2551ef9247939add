"""The repair loop: a task's prompt (:mod:`.feedback`) goes to the sampler, the program is pulled out of the
reply (:mod:`.extract`) and judged by the executor, and the failures become the next round's prompt, until the
tests pass or the rounds run out (:mod:`.loop`, which also reads and writes the trajectory file)."""

from iterpref.refine.loop import RefineSummary, check_sample_counts, continuation, load_trajectories, refine

__all__ = ["RefineSummary", "check_sample_counts", "continuation", "load_trajectories", "refine"]
