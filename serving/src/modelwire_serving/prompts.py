"""Turn prompts and messages into token ids, and ids back into text, thread-safely.

Fast (Rust) tokenizers raise "Already borrowed" when two threads use one
tokenizer at once (encoding reconfigures it), so every call goes through one
lock: request threads encode, the generation worker decodes.
"""

from __future__ import annotations

import threading
from typing import Any

from modelwire_serving.errors import RequestError


class Prompter:
    """The tokenizer behind a lock, with the seed's prompt rules."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))

    def encode_prompt(self, prompt: str) -> list[int]:
        """A string prompt is used as it is (the seed's `tokenizer(prompt)`)."""
        with self._lock:
            return list(self._tokenizer(prompt).input_ids)

    def render_messages(self, messages: list[dict[str, str]]) -> str:
        """Messages through the model's chat template, ending where the reply starts."""
        if not self.has_chat_template:
            lines = [f"{message['role']}: {message['content']}" for message in messages]
            return "\n".join([*lines, "assistant:"])
        try:
            with self._lock:
                text = self._tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
        except Exception as exc:  # templates raise arbitrary errors
            raise RequestError(f"the model's chat template rejected the messages: {exc}") from exc
        return str(text)

    def encode_messages(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the rendered chat; the template already holds the special tokens."""
        text = self.render_messages(messages)
        with self._lock:
            return list(self._tokenizer(text, add_special_tokens=False).input_ids)

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, without special tokens."""
        with self._lock:
            return str(self._tokenizer.decode(ids, skip_special_tokens=True))
