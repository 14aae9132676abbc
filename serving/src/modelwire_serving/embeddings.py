"""Sentence embeddings: mean pooling over the encoder's last hidden state, L2-normalized.

This is what sentence-transformers does for MiniLM-style folders
(Transformer -> mean Pooling -> Normalize), and normalized vectors are what
OpenAI's embeddings API returns. Encoding runs in the request thread under a
lock: it is short, and it keeps concurrent requests from oversubscribing the CPU.
"""

from __future__ import annotations

import threading

import torch

from modelwire_serving.errors import RequestError
from modelwire_serving.loading import EmbeddingModel

CHUNK = 32


class Embedder:
    """Embeds lists of strings with a loaded encoder."""

    def __init__(self, loaded: EmbeddingModel) -> None:
        self._loaded = loaded
        self._lock = threading.Lock()
        self.name = loaded.location.served_name
        self.dimension = loaded.dimension

    def embed(self, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        """One unit vector per text, and the number of tokens read.

        Inputs longer than the model's sequence length are truncated, or, with
        `truncate=False` (Ollama's option), refused with a 400 before any work.
        """
        vectors: list[list[float]] = []
        tokens = 0
        model, tokenizer = self._loaded.model, self._loaded.tokenizer
        limit = self._loaded.max_seq_length
        if not truncate:
            with self._lock:
                lengths = [len(ids) for ids in tokenizer(texts).input_ids]
            for index, length in enumerate(lengths):
                if length > limit:
                    raise RequestError(
                        f"input {index} is {length} tokens, longer than the model's {limit}; "
                        "send truncate: true to cut it"
                    )
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), CHUNK):
                encoded = tokenizer(
                    texts[start : start + CHUNK],
                    padding=True,
                    truncation=True,
                    max_length=self._loaded.max_seq_length,
                    return_tensors="pt",
                ).to(self._loaded.device)
                hidden = model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
                vectors.extend(pooled.cpu().tolist())
                tokens += int(encoded["attention_mask"].sum())
        return vectors, tokens
