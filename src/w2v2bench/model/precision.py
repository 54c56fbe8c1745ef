"""Checking a fast precision or runtime against PyTorch fp32: what it found, counted per run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PrecisionStats:
    """What checking a fast precision or another runtime against PyTorch fp32 found in one process."""

    rechecked_utterances: int = 0  # recheck_margin: utterances re-run in fp32
    compared_utterances: int = 0  # check_precision: utterances run in both
    max_abs_logit_diff: float = 0.0  # check_precision: over every valid frame and token
    close_frames: int = 0  # recheck_margin: frames with a second token within the bound (or a non-finite logit)
    # check_precision with recheck_margin: frames where fp32's argmax is not among the fast pass's tokens within the
    # bound (the premise of exactness; 0: it held on every frame)
    bound_violations: int = 0
    non_finite_frames: int = 0  # check_precision: frames with a NaN or infinite logit (left out of the difference)

    def add(self, other: PrecisionStats) -> None:
        self.rechecked_utterances += other.rechecked_utterances
        self.compared_utterances += other.compared_utterances
        self.max_abs_logit_diff = max(self.max_abs_logit_diff, other.max_abs_logit_diff)
        self.close_frames += other.close_frames
        self.bound_violations += other.bound_violations
        self.non_finite_frames += other.non_finite_frames
