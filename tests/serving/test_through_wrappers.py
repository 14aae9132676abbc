"""Every route of the real service, called through the real modelwire wrappers.

The seed's Flask config (`post_api` at /llm/), `post_api_chat`, and the unchanged
OpenAI wrappers pointed at /v1: what `make demo` shows, checked.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelwire import AuthenticationError, ModelRegistry, Msg, ResponseParseError


def registry(server: Any, **overrides: Any) -> ModelRegistry:  # type: ignore[no-untyped-def]
    bearer = {"Authorization": f"Bearer {server.api_key}"}
    configs = [
        {
            "config_name": "flask",
            "model_type": "post_api",
            "api_url": f"{server.base_url}/llm/",
            "headers": bearer,
            "json_args": {"max_new_tokens": 8, "temperature": 0.0},
        },
        {
            "config_name": "flask_chat",
            "model_type": "post_api_chat",
            "api_url": f"{server.base_url}/llm/",
            "headers": bearer,
            "json_args": {"max_new_tokens": 8, "temperature": 0.0},
        },
        {
            "config_name": "local_openai",
            "model_type": "openai_chat",
            "model_name": "smollm2",
            "api_key": server.api_key,
            "client_args": {"base_url": f"{server.base_url}/v1"},
            "generate_args": {"max_tokens": 8, "temperature": 0.0},
        },
        {
            "config_name": "local_embedding",
            "model_type": "openai_embedding",
            "model_name": "all-minilm-l6-v2",
            "api_key": server.api_key,
            "client_args": {"base_url": f"{server.base_url}/v1"},
        },
    ]
    for config in configs:
        config.update(overrides.get(config["config_name"], {}))
    return ModelRegistry(configs)


def test_seed_flask_config_returns_the_text(server) -> None:  # type: ignore[no-untyped-def]
    model = registry(server).load_model("flask")
    response = model("The capital of France is")
    assert isinstance(response.text, str) and response.text.strip()
    assert response.raw["response"] == response.text
    assert response.usage is not None and response.usage.completion_tokens > 0


def test_the_seeds_own_config_answers_a_plain_question(server) -> None:  # type: ignore[no-untyped-def]
    """The seed's config, unchanged: a bare question used to get "" (the string went in raw)."""
    seed = {
        "config_name": "seed_flask",
        "model_type": "post_api",
        "api_url": f"{server.base_url}/llm/",
        "headers": {"Authorization": f"Bearer {server.api_key}"},
        "json_args": {"max_length": 200, "temperature": 0.5},
    }
    model = ModelRegistry([seed]).load_model("seed_flask")
    for _ in range(3):  # sampled: every answer, not just a lucky one
        response = model("What is the capital of France?")
        assert response.text.strip(), response.raw
        assert response.usage is not None and response.usage.completion_tokens > 0


def test_post_api_chat_through_the_chat_template(server) -> None:  # type: ignore[no-untyped-def]
    model = registry(server).load_model("flask_chat")
    response = model(model.format(Msg("user", "Say hello.", role="user")))
    assert response.text and response.text.strip()
    assert asyncio.run(model.acall(model.format(Msg("user", "Say hello.", role="user")))).text == (
        response.text
    )


def test_openai_wrapper_call_stream_and_usage(server) -> None:  # type: ignore[no-untyped-def]
    model = registry(server).load_model("local_openai")
    messages = model.format(Msg("user", "What is the capital of France?", role="user"))
    response = model(messages)
    assert response.text and response.usage.completion_tokens <= 8
    chunks = list(model.stream(messages))
    assert "".join(chunk.text for chunk in chunks) == response.text  # greedy: same answer
    assert chunks[-1].usage == response.usage
    assert model.usage["calls"] == 2


CITY = {
    "title": "City",
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
}


def city_model() -> Any:
    """``CITY`` as a pydantic class (imported here: pydantic comes with the openai SDK)."""
    import pydantic

    class City(pydantic.BaseModel):
        city: str
        country: str

    return City


@pytest.mark.parametrize("form", ["schema", "pydantic"])
def test_openai_structured_model_is_validated_end_to_end(server, form: str) -> None:  # type: ignore[no-untyped-def]
    """The schema reaches the real model (stated in the system message); whatever it
    answers is either validated into ``parsed`` (a dict for a schema, an instance of a
    pydantic class) or a ResponseParseError with the text."""
    model = registry(server, local_openai={"generate_args": {"max_tokens": 24}}).load_model(
        "local_openai"
    )
    structured = CITY if form == "schema" else city_model()
    messages = model.format(Msg("user", "Which city is the capital of France?", role="user"))
    try:
        response = model(messages, structured_model=structured)
    except ResponseParseError as error:
        assert error.text is not None and error.validation_errors, error
    else:
        if form == "schema":
            assert isinstance(response.parsed, dict)
            assert set(response.parsed) >= {"city", "country"}
        else:
            assert isinstance(response.parsed, structured)
    assert model.usage["calls"] + model.usage["errors"] == 1


def test_openai_embedding_wrapper(server) -> None:  # type: ignore[no-untyped-def]
    model = registry(server).load_model("local_embedding")
    response = model(["a cat", "a dog"])
    assert response.embedding is not None and len(response.embedding) == 2
    assert {len(vector) for vector in response.embedding} == {384}


@pytest.mark.parametrize("config_name", ["flask", "local_openai"])
def test_wrong_key_is_an_authentication_error(server, config_name: str) -> None:  # type: ignore[no-untyped-def]
    wrong = {
        "flask": {"headers": {"Authorization": "Bearer wrong-key-000"}},
        "local_openai": {"api_key": "wrong-key-000"},
    }
    model = registry(server, **{config_name: wrong[config_name]}).load_model(config_name)
    args: Any = "Hi" if config_name == "flask" else model.format(Msg("user", "Hi", role="user"))
    with pytest.raises(AuthenticationError) as info:
        model(args)
    assert info.value.status == 401
    assert "wrong-key-000" not in str(info.value)
