"""Find and load the models: where they are, on which device, in which dtype.

Locating a model (`resolve_location`) is pure and fast, so a typo in a path or
a missing extra fails before torch is even imported. Loading prints what it
does and how long it took, and turns the libraries' exceptions into one-line
`ServeError`s.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelwire_serving import bundled
from modelwire_serving.errors import ServeError

if TYPE_CHECKING:
    import torch

SOURCES = ("huggingface", "modelscope")
DTYPES = {
    "auto": "auto",
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
MODELSCOPE_INSTALL = "pip install 'modelwire-serving[modelscope]'"
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ModelLocation:
    """Where a model comes from, as given on the command line and as resolved."""

    spec: str
    path: str
    gguf_file: str | None
    served_name: str
    local: bool
    source: str


@dataclass
class TextModel:
    """A loaded causal LM with what the server needs to know about it."""

    model: Any
    tokenizer: Any
    location: ModelLocation
    device: str
    dtype: str
    context_length: int
    eos_token_ids: frozenset[int]
    pad_token_id: int
    default_do_sample: bool
    load_seconds: float = 0.0
    has_chat_template: bool = field(default=True)


def log(message: str) -> None:
    """Startup messages go to stdout, unbuffered, so wrappers and tests see them live."""
    print(message, flush=True)


# -- locating --------------------------------------------------------------------------


def _looks_like_path(spec: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else path-like is a local path."""
    return (
        spec.startswith(("/", ".", "~"))
        or spec.count("/") > 1
        or "\\" in spec
        or spec.endswith(".gguf")
    )


def resolve_location(
    spec: str, gguf_file: str | None = None, source: str = "huggingface"
) -> ModelLocation:
    """Resolve `--model_name_or_path` (and `--gguf_file`) without loading anything.

    Accepts `bundled:NAME`, a local folder, a path to a `.gguf` file, or a hub
    id. A local folder is used directly whatever the source, so
    `--source modelscope` with a folder needs no `modelscope` package; a hub id
    with `--source modelscope` needs the extra.
    """
    if source not in SOURCES:
        raise ServeError(f"unknown --source {source!r}; choose one of: {', '.join(SOURCES)}")
    if not spec or not spec.strip():
        raise ServeError("--model_name_or_path must not be empty")
    if bundled.is_bundled(spec):
        folder, bundled_gguf = bundled.bundled_path(spec)
        gguf = gguf_file or bundled_gguf
        _check_gguf(folder, gguf)
        name = bundled.lookup(spec).served_name
        return ModelLocation(spec, folder, gguf, name, local=True, source=source)
    expanded = os.path.abspath(os.path.expanduser(spec)) if _looks_like_path(spec) else spec
    if os.path.isfile(expanded) and expanded.endswith(".gguf"):
        if gguf_file and gguf_file != os.path.basename(expanded):
            raise ServeError("give the .gguf file either in --model_name_or_path or --gguf_file")
        folder, name = os.path.split(expanded)
        return ModelLocation(spec, folder, name, _stem(name), local=True, source=source)
    if os.path.isdir(expanded):
        _check_gguf(expanded, gguf_file)
        served = _stem(gguf_file) if gguf_file else os.path.basename(expanded.rstrip(os.sep))
        return ModelLocation(spec, expanded, gguf_file, served, local=True, source=source)
    if _looks_like_path(spec) or os.path.exists(expanded):
        raise ServeError(f"model not found: {spec!r} is not a model folder or .gguf file")
    if source == "modelscope" and importlib.util.find_spec("modelscope") is None:
        raise ServeError(
            f"--source modelscope with the hub id {spec!r} needs the modelscope package: "
            f"{MODELSCOPE_INSTALL} (a local model folder needs no extra)"
        )
    served = _stem(gguf_file) if gguf_file else spec.rsplit("/", 1)[-1]
    return ModelLocation(spec, spec, gguf_file, served, local=False, source=source)


def _stem(gguf_file: str) -> str:
    return os.path.basename(gguf_file).removesuffix(".gguf")


def _check_gguf(folder: str, gguf_file: str | None) -> None:
    if gguf_file is None or os.path.isfile(os.path.join(folder, gguf_file)):
        return
    found = sorted(name for name in os.listdir(folder) if name.endswith(".gguf"))
    hint = f"; .gguf files there: {', '.join(found)}" if found else "; there is no .gguf file there"
    raise ServeError(f"--gguf_file {gguf_file!r} not found in {folder}{hint}")


def materialize(location: ModelLocation) -> str:
    """The local folder or hub id transformers should load (downloads ModelScope ids)."""
    if location.local or location.source != "modelscope":
        return location.path
    try:
        from modelscope import snapshot_download  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ServeError(f"could not import modelscope ({exc}): {MODELSCOPE_INSTALL}") from exc
    log(f"Downloading {location.spec} from ModelScope...")
    started = time.perf_counter()
    try:
        folder = str(snapshot_download(location.spec))
    except Exception as exc:  # any hub failure becomes one clear line
        raise ServeError(f"ModelScope could not download {location.spec!r}: {exc}") from exc
    log(f"Downloaded to {folder} in {time.perf_counter() - started:.1f}s")
    return folder


# -- devices and dtypes ----------------------------------------------------------------


def device_argument(value: str) -> str:
    """argparse `type=` for --device: syntax only, so it fails before torch loads."""
    normalized = value.strip().lower()
    if not _DEVICE_PATTERN.match(normalized):
        import argparse

        raise argparse.ArgumentTypeError(
            f"invalid device {value!r}: use cpu, cuda, cuda:N, mps or auto"
        )
    return normalized


def dtype_argument(value: str) -> str:
    """argparse `type=` for --dtype."""
    normalized = value.strip().lower()
    if normalized not in DTYPES:
        import argparse

        raise argparse.ArgumentTypeError(
            f"invalid dtype {value!r}: use auto, float32, float16 or bfloat16"
        )
    return DTYPES[normalized]


def resolve_device(spec: str) -> str:
    """A concrete torch device for `spec`, or a ServeError saying why it cannot be used."""
    import torch

    spec = device_argument(spec)
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if spec == "auto":
        return "cuda:0" if cuda else "mps" if mps else "cpu"
    if spec.startswith("cuda"):
        if not cuda:
            build = f"torch {torch.__version__}"
            raise ServeError(
                f"--device {spec}: CUDA is not available here ({build}, no usable GPU); "
                "use --device cpu or --device auto"
            )
        index = int(spec.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ServeError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return f"cuda:{index}"
    if spec == "mps" and not mps:
        raise ServeError("--device mps: the MPS backend is not available here; use --device cpu")
    return spec


def resolve_dtype(name: str, device: str) -> torch.dtype | str:
    """`auto` is float32 on CPU (half precision is slow there) and the checkpoint's elsewhere."""
    import torch

    if name == "auto":
        return torch.float32 if device == "cpu" else "auto"
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _dtype_label(dtype: object) -> str:
    return str(dtype).removeprefix("torch.")


# -- loading ---------------------------------------------------------------------------


def load_text_model(
    location: ModelLocation, device: str, dtype_name: str, trust_remote_code: bool = False
) -> TextModel:
    """Load tokenizer and causal LM, ready for left-padded batched generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = resolve_dtype(dtype_name, device)
    target = materialize(location)
    extra: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if location.gguf_file:
        extra["gguf_file"] = location.gguf_file
    what = f"{target}" + (f" ({location.gguf_file})" if location.gguf_file else "")
    log(f"Loading model {what} on {device} ({_dtype_label(dtype)})...")
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, **extra)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype, **extra)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        raise ServeError(f"could not load model {location.spec!r}: {_first_lines(exc)}") from exc
    model.to(device)
    model.eval()
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.parameters())
    log(
        f"Loaded {location.served_name} in {seconds:.1f}s "
        f"({parameters / 1e6:.0f}M parameters, {_dtype_label(model.dtype)}, {device})"
    )
    tokenizer.padding_side = "left"
    eos = _eos_ids(model, tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos, default=0)
    generation_config = getattr(model, "generation_config", None)
    context = _context_length(model, tokenizer)
    return TextModel(
        model=model,
        tokenizer=tokenizer,
        location=location,
        device=device,
        dtype=_dtype_label(model.dtype),
        context_length=context,
        eos_token_ids=frozenset(eos),
        pad_token_id=int(pad),
        default_do_sample=bool(getattr(generation_config, "do_sample", False)),
        load_seconds=seconds,
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
    )


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(item) for item in value)
    if not ids:
        raise ServeError("the model defines no end-of-sequence token; cannot serve it")
    return ids


def _context_length(model: Any, tokenizer: Any) -> int:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048


def _first_lines(exc: BaseException, limit: int = 3) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join(lines[:limit]) or type(exc).__name__
    return text


@dataclass
class EmbeddingModel:
    """A loaded encoder plus its pooling settings."""

    model: Any
    tokenizer: Any
    location: ModelLocation
    device: str
    max_seq_length: int
    dimension: int


def load_embedding_model(
    location: ModelLocation, device: str, dtype_name: str, trust_remote_code: bool = False
) -> EmbeddingModel:
    """Load an encoder (e.g. a sentence-transformers folder) for mean-pooled embeddings."""
    from transformers import AutoModel, AutoTokenizer

    if location.gguf_file:
        raise ServeError("--embedding-model does not support GGUF files")
    dtype = resolve_dtype(dtype_name, device)
    target = materialize(location)
    log(f"Loading embedding model {target} on {device}...")
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(target, dtype=dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        raise ServeError(
            f"could not load embedding model {location.spec!r}: {_first_lines(exc)}"
        ) from exc
    model.to(device)
    model.eval()
    log(f"Loaded {location.served_name} in {time.perf_counter() - started:.1f}s")
    limit = _sentence_max_length(target) or _context_length(model, tokenizer)
    dimension = int(getattr(model.config, "hidden_size", 0))
    return EmbeddingModel(model, tokenizer, location, device, limit, dimension)


def _sentence_max_length(folder: str) -> int | None:
    """sentence-transformers folders state the sequence length the model was trained on."""
    import json

    path = os.path.join(folder, "sentence_bert_config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) and value > 0 else None
