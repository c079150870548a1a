"""Realistic synthetic survey exports with planted effects (``sapat synth``)."""

from pipeline.synth.generate import DEFAULT_WAVES, FORMAT_PLAN, synthesize

__all__ = ["DEFAULT_WAVES", "FORMAT_PLAN", "synthesize"]
