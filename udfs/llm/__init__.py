"""LLM engines behind one interface: generate(prompts, sampling) -> [Generation]."""

from .base import Engine, EngineLoadError, EngineSpec, Generation, Sampling, get_engine, load_counts

__all__ = ["Engine", "EngineLoadError", "EngineSpec", "Generation", "Sampling", "get_engine", "load_counts"]
