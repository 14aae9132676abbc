"""``post_api``: POST a prompt (or anything JSON) to your own service, read what it answers.

The input is sent as it is, so a string is the prompt (the seed's Flask service feeds
it to the model unchanged). A reply may carry text, embeddings or image URLs: each is
found at its configured path or in the recognised shapes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from modelwire import Msg, iter_msgs, text_of
from modelwire_postapi.client import PostAPIWrapper
from modelwire_postapi.parsing import ReplyParser

__all__ = ["PostAPIGenericWrapper"]


class PostAPIGenericWrapper(PostAPIWrapper):
    """Any JSON-over-HTTP model service; see the README for every config key."""

    model_type = "post_api"
    outputs: ClassVar[frozenset[str]] = frozenset({"text", "embedding", "image_urls"})
    path_params: ClassVar[tuple[str, ...]] = (
        *PostAPIWrapper.path_params,
        "embedding_path",
        "image_urls_path",
    )

    def __init__(
        self,
        config_name: str,
        *,
        embedding_path: str | None = None,
        image_urls_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.embedding_path = embedding_path
        self.image_urls_path = image_urls_path
        super().__init__(config_name, **kwargs)

    def _make_parser(self) -> ReplyParser:
        return ReplyParser(
            response_path=self.response_path,
            usage_path=self.usage_path,
            stream_path=self.stream_path,
            embedding_path=self.embedding_path,
            image_urls_path=self.image_urls_path,
            outputs=self.outputs,
        )

    def format(self, *args: Msg | list[Msg] | None) -> str:
        """A prompt string: one message is its content; several, a ``name: content`` transcript.

        Prompt-style services take text, not message lists; send a list to ``__call__``
        yourself if yours wants one, or use ``post_api_chat``.
        """
        msgs = list(iter_msgs(*args))
        if len(msgs) == 1:
            return text_of(msgs[0].content)
        return "\n".join(f"{msg.name}: {text_of(msg.content)}" for msg in msgs)
