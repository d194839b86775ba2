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
                   loads_of,
                   reload_counts,
)

__all__ = ["Engine", "EngineFatalError", "EngineLoadError", "EngineSpec", "Generation", "Sampling", "get_engine",
           "load_counts", "loads_of", "reload_counts"]
