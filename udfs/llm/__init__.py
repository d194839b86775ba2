"""LLM engines behind one interface: generate(prompts, sampling) -> [Generation]."""

from .base import (
                   Engine,
                   EngineFatalError,
                   EngineLoadError,
                   EngineSpec,
                   Generation,
                   Sampling,
                   get_engine,
                   load_counts,
                   reload_counts,
)

__all__ = ["Engine", "EngineFatalError", "EngineLoadError", "EngineSpec", "Generation", "Sampling", "get_engine",
           "load_counts", "reload_counts"]
