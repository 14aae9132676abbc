"""bundled:minilm on vLLM's CPU build, called through modelwire's `openai_embedding`.

vLLM serves one model per process, so embeddings are a second engine, started
after the chat one has stopped: `modelwire-serve vllm --model_name_or_path
bundled:minilm` (vLLM picks its pooling runner from the sentence-transformers
files). Its vectors are checked against the same model run here with transformers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from modelwire import ModelRegistry
from modelwire_serving import bundled

from .conftest import Engine, running_engine

TEXTS = ["a cat sits on the mat", "The capital of France is Paris.", "def add(a, b): return a + b"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """`modelwire-serve vllm --model_name_or_path bundled:minilm --enforce-eager --port N`."""
    home = tmp_path_factory.mktemp("vllm-embed")
    with running_engine(home, "--model_name_or_path", "bundled:minilm", "--enforce-eager") as up:
        yield up


def _reference(texts: list[str]) -> torch.Tensor:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: mean pooling, then L2 norm."""
    folder, _ = bundled.bundled_path("bundled:minilm")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def test_openai_embedding_matches_the_model_run_here(engine: Engine) -> None:
    assert engine.config["model_name"] == "all-minilm-l6-v2"
    config = {
        "config_name": "vllm_minilm",
        "model_type": "openai_embedding",
        "model_name": engine.config["model_name"],
        "api_key": engine.config["api_key"],
        "client_args": engine.config["client_args"],
    }
    model = ModelRegistry([config]).load_model("vllm_minilm")
    response = model(TEXTS)
    assert response.embedding is not None and len(response.embedding) == len(TEXTS)
    served = torch.tensor(response.embedding, dtype=torch.float32)
    assert served.shape == (len(TEXTS), 384)
    cosine = torch.nn.functional.cosine_similarity(served, _reference(TEXTS), dim=-1)
    assert bool((cosine > 0.999).all()), cosine  # vLLM runs it in float16 here
    engine.figures["min_cosine_to_transformers"] = round(float(cosine.min()), 5)
