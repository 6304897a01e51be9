"""The ``model`` string grammar (reference §3.1), parsed once per request into a :class:`ModelSpec`.

::

    model_field := item ( "," item )*          ; items trimmed, tried in the order written
    item        := "!" provider                ; global exclusion, valid anywhere in the list
                 | model_id [ "/" provider [ "/" deployment ] ] [ ":online" ]

How an item with slashes is read (model ids may contain ``/`` themselves:
``meta-llama/Llama-3.3-70B-Instruct``, ``openai/gpt-4o-mini``). Segments are split on ``/``:

1. the LAST segment is a known provider slug (and something precedes it) →
   ``model_id/provider``: ``meta-llama/Llama-3.3-70B-Instruct/together`` is the model
   ``meta-llama/Llama-3.3-70B-Instruct`` at ``together`` (today's rule, kept);
2. else, with at least three segments, the SECOND-TO-LAST is a provider slug →
   ``model_id/provider/deployment``: ``x/y/z`` with ``y`` a provider is model ``x``, provider
   ``y``, deployment ``z``; ``meta-llama/Llama-3.3/azure/eu-1`` is model
   ``meta-llama/Llama-3.3`` at ``azure`` through deployment ``eu-1``;
3. else the whole item is a bare model id, but only if the registry knows it (the caller's
   ``known_model``); an unknown slashed item is read as a misspelt provider and answered
   ``Invalid provider: <last segment>``, which is what a typo like ``gpt-4o-mini/opneai``
   needs. Without ``known_model`` every such item is taken as a bare model id.

Rule 1 wins over rule 2, so a deployment cannot be named after a provider slug
(``gpt-4o/azure/openai`` is the model ``gpt-4o/azure`` at ``openai``): deployment ids are
CUIDs or the names an org gives them, and a name equal to a slug would be ambiguous anyway.
Slugs are case-sensitive, like model ids. A provider may also be named by one of its
aliases (``gemini`` for ``google-ai-studio``, the caller's ``aliases``), in a suffix or an
exclusion alike; the parsed item carries the slug, so nothing after the grammar sees aliases.

``:online`` (web search, §5.7) is accepted at the end of the model id
(``claude-3-5-sonnet-20241022:online/anthropic``) or of the whole item
(``claude-3-5-sonnet-20241022/anthropic:online``); it is only noted here, as
:attr:`ModelItem.online`.

Every malformed item raises :class:`GrammarError` (a 400 for the client) naming the item and
the reason, in the reference's words where it has them. The reference's links to
helicone.ai's model page point to this gateway's ``/v1/models`` instead. Parsing is strict
where the reference is silent: an empty item (``"gpt-4o-mini,"``) or a list of exclusions only
is an error rather than silently ignored, so a typo never routes somewhere unexpected.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["MODELS_HINT", "GrammarError", "ModelItem", "ModelSpec", "parse_model"]

MODELS_HINT = "See supported models at /v1/models"
"""Where error messages send the client (the reference's ``https://helicone.ai/models``)."""

ONLINE_SUFFIX = ":online"


class GrammarError(ValueError):
    """A ``model`` string the gateway cannot plan: always the client's mistake (HTTP 400).

    ``reason`` is the reference's message (or ours where it has none); ``item`` the trimmed
    item at fault (None when the fault is the whole string); ``code`` a stable machine-readable
    name for the OpenAI error object's ``code``. ``str(error)`` is the full message.
    """

    status = 400

    def __init__(
        self, reason: str, *, item: str | None = None, code: str = "invalid_model"
    ) -> None:
        self.reason = reason
        self.item = item
        self.code = code
        super().__init__(reason if item is None else f"Model item {item!r}: {reason}")

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True, slots=True)
class ModelItem:
    """One routing item: a model, optionally pinned to a provider and a BYOK deployment.

    ``index`` is its position among the model items (exclusions not counted), ``text`` the
    trimmed item as written (for messages and attempt labels).
    """

    model: str
    provider: str | None = None
    deployment: str | None = None
    online: bool = False
    index: int = 0
    text: str = ""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed ``model`` string: items in the order written, and global exclusions."""

    items: tuple[ModelItem, ...]
    excluded: frozenset[str] = frozenset()
    text: str = ""

    @property
    def single(self) -> bool:
        """One item and no exclusions: the form today's one-provider resolver served."""
        return len(self.items) == 1 and not self.excluded


def _valid(providers: Iterable[str]) -> str:
    return ", ".join(providers)


_NO_ALIASES: Mapping[str, str] = {}


def _split(
    text: str,
    providers: Collection[str],
    known_model: Callable[[str], bool] | None,
    aliases: Mapping[str, str] = _NO_ALIASES,
) -> tuple[str, str | None, str | None]:
    """``(model, provider, deployment)`` of one item, by the rules of the module docstring
    (a provider named by an alias is returned as its slug)."""
    if "/" not in text:
        return text, None, None
    head, _, last = text.rpartition("/")
    slug = aliases.get(last, last)
    if slug in providers:
        if not head:
            raise GrammarError(f"Missing model before '/{last}'", item=text)
        return head, slug, None
    model, sep, middle = head.rpartition("/")
    slug = aliases.get(middle, middle)
    if sep and slug in providers:
        if not model:
            raise GrammarError(f"Missing model before '/{middle}'", item=text)
        if not last:
            raise GrammarError(f"Missing deployment id after '{middle}/'", item=text)
        return model, slug, last
    if known_model is None or known_model(text):
        return text, None, None
    if not last:
        raise GrammarError("Missing provider after '/'", item=text, code="invalid_provider")
    raise GrammarError(
        f"Invalid provider: {last}. Valid providers: {_valid(providers)}",
        item=text,
        code="invalid_provider",
    )


def parse_model(
    model: object,
    providers: Collection[str],
    known_model: Callable[[str], bool] | None = None,
    aliases: Mapping[str, str] = _NO_ALIASES,
) -> ModelSpec:
    """Parse a request's ``model`` value (as read from the JSON body: None or a non-string is
    the reference's "missing model" / "invalid model type" error).

    ``providers``: the provider slugs a model string may name (a set or mapping, for fast
    membership; its iteration order is the order error messages list them).
    ``known_model``: whether the registry knows a model id, used only to read a slashed item
    that names no provider (rule 3 of the module docstring).
    ``aliases``: other names of providers → their slugs (:meth:`providers.spec.ProviderTable.
    model_aliases`); an alias is accepted wherever its slug is, and read as the slug.
    """
    if model is not None and not isinstance(model, str):
        raise GrammarError(
            f"Invalid model type. Model must be a string. {MODELS_HINT}", code="invalid_model"
        )
    if model is None or not model.strip():
        raise GrammarError(
            f"Invalid body or missing model. {MODELS_HINT}", code="missing_model"
        )
    items: list[ModelItem] = []
    excluded: set[str] = set()
    for position, raw in enumerate(model.split(",")):
        text = raw.strip()
        if not text:
            raise GrammarError(
                f"Empty item at position {position + 1} of the model list", code="invalid_model"
            )
        if text[0] == "!":
            slug = text[1:].strip()
            slug = aliases.get(slug, slug)
            if not slug:
                raise GrammarError(
                    "Invalid global ignore syntax. Use !provider (e.g., !openai)",
                    item=text,
                    code="invalid_provider",
                )
            if slug not in providers:
                raise GrammarError(
                    f"Invalid provider in global ignore list: {slug}. "
                    f"Valid providers: {_valid(providers)}",
                    item=text,
                    code="invalid_provider",
                )
            excluded.add(slug)
            continue
        body = text
        online = body.endswith(ONLINE_SUFFIX)
        if online:
            body = body[: -len(ONLINE_SUFFIX)]
        model_id, provider, deployment = _split(body, providers, known_model, aliases)
        if model_id.endswith(ONLINE_SUFFIX):
            model_id = model_id[: -len(ONLINE_SUFFIX)]
            online = True
        if not model_id:
            raise GrammarError("Missing model id", item=text)
        items.append(ModelItem(model_id, provider, deployment, online, len(items), text))
    if not items:
        raise GrammarError(
            "The model list has only exclusions (!provider): name at least one model",
            code="missing_model",
        )
    return ModelSpec(tuple(items), frozenset(excluded), model)
