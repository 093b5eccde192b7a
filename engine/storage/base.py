"""The base every PulseGuard table derives from."""

from __future__ import annotations

from typing import Any

from tortoise.models import Model as TortoiseModel
from tortoise.models import ModelMeta


class _NoCommentsMeta(ModelMeta):
    # Tortoise re-parses each model's source file (inspect.getsource) to harvest `#:` field comments:
    # a quarter of every CLI call's start-up. Our models carry none, so each class opts out.
    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        attrs.setdefault("_no_comments", True)
        return super().__new__(mcs, name, bases, attrs)


class Model(TortoiseModel, metaclass=_NoCommentsMeta):
    class Meta:
        abstract = True
