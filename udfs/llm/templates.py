"""Prompt layouts: the model's own chat template, or the Llama-2 chat layout built locally.

The released ProX refining models were prompted through the gated Llama-2-chat tokenizer's template; only its
layout matters, so it is built here (`<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST]`)."""

from __future__ import annotations

from .base import Messages

TEMPLATES = ("chat", "llama2")


def llama2_prompt(messages: Messages, bos: str = "<s>") -> str:
    """The text Llama-2-chat's template renders for system + user turns (+ earlier assistant turns)."""
    system = None
    turns = list(messages)
    if turns and turns[0]["role"] == "system":
        system, turns = turns[0]["content"], turns[1:]
    out = []
    for i, turn in enumerate(turns):
        content = turn["content"]
        if i == 0 and system is not None:
            content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
        if turn["role"] == "user":
            out.append(f"{bos}[INST] {content.strip()} [/INST]")
        elif turn["role"] == "assistant":
            out.append(f" {content.strip()} </s>")
    return "".join(out)


def render_text(tokenizer, messages: Messages, template: str = "chat") -> str:
    if template == "llama2":
        return llama2_prompt(messages, tokenizer.bos_token or "")
    if template != "chat":
        raise ValueError(f"prompt template {template!r}: expected one of {', '.join(TEMPLATES)}")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_ids(tokenizer, messages: Messages, template: str = "chat") -> list[int]:
    """Token ids of the rendered prompt; special tokens written in the text (BOS) become their ids."""
    return list(tokenizer(render_text(tokenizer, messages, template), add_special_tokens=False)["input_ids"])
