"""The model-string grammar (providers/grammar.py): forms, slashes in model ids, exclusions,
``:online``, and every error's exact message."""

from __future__ import annotations

import pytest

from providers.grammar import GrammarError, ModelItem, ModelSpec, parse_model
from providers.spec import PROVIDERS

SLUGS = dict.fromkeys(["openai", "azure", "anthropic", "together", "groq", "bedrock"])
VALID = "openai, azure, anthropic, together, groq, bedrock"
BAD_PROVIDER = "invalid_provider"
BAD_TYPE = "Invalid model type. Model must be a string. See supported models at /v1/models"
ONLY_EXCLUSIONS = "The model list has only exclusions (!provider): name at least one model"
KNOWN = {"gpt-4o-mini", "openai/gpt-4o-mini", "meta-llama/Llama-3.3-70B-Instruct"}


def parse(model: object) -> ModelSpec:
    return parse_model(model, SLUGS, KNOWN.__contains__)


def items(model: str) -> list[tuple[str, str | None, str | None]]:
    return [(i.model, i.provider, i.deployment) for i in parse(model).items]


def test_bare_model() -> None:
    spec = parse("gpt-4o-mini")
    assert spec.items == (ModelItem("gpt-4o-mini", index=0, text="gpt-4o-mini"),)
    assert spec.excluded == frozenset()
    assert spec.single


def test_provider_and_deployment() -> None:
    assert items("gpt-4o-mini/openai") == [("gpt-4o-mini", "openai", None)]
    assert items("gpt-4o-mini/azure/clm1a2b3c") == [("gpt-4o-mini", "azure", "clm1a2b3c")]
    assert items("gpt-4o/azure/eu-frankfurt-deployment") == [
        ("gpt-4o", "azure", "eu-frankfurt-deployment")
    ]


def test_chain_in_order_written_items_trimmed() -> None:
    spec = parse(" gpt-4o-mini/azure , gpt-4o-mini/openai,gpt-4o-mini ")
    assert [(i.model, i.provider, i.index, i.text) for i in spec.items] == [
        ("gpt-4o-mini", "azure", 0, "gpt-4o-mini/azure"),
        ("gpt-4o-mini", "openai", 1, "gpt-4o-mini/openai"),
        ("gpt-4o-mini", None, 2, "gpt-4o-mini"),
    ]
    assert not spec.single


def test_cross_model_chain() -> None:
    assert items("gpt-4o/openai,claude-4.5-sonnet/anthropic") == [
        ("gpt-4o", "openai", None),
        ("claude-4.5-sonnet", "anthropic", None),
    ]


@pytest.mark.parametrize(
    "model",
    [
        "!openai,!anthropic,gpt-4o-mini",
        "gpt-4o-mini,!openai,!anthropic",
        "!openai,gpt-4o-mini,! anthropic",
    ],
)
def test_exclusions_are_global_wherever_written(model: str) -> None:
    spec = parse(model)
    assert spec.excluded == frozenset({"openai", "anthropic"})
    assert [i.model for i in spec.items] == ["gpt-4o-mini"]
    assert spec.items[0].index == 0


def test_slashed_model_ids() -> None:
    # Today's rule kept: the last segment names the provider.
    assert items("meta-llama/Llama-3.3-70B-Instruct/together") == [
        ("meta-llama/Llama-3.3-70B-Instruct", "together", None)
    ]
    # x/y/z with y a provider: model x, provider y, deployment z.
    assert items("meta-llama/Llama-3.3/azure/eu-1") == [("meta-llama/Llama-3.3", "azure", "eu-1")]
    # A registry model id with a slash, used bare.
    assert items("openai/gpt-4o-mini") == [("openai/gpt-4o-mini", None, None)]
    assert items("meta-llama/Llama-3.3-70B-Instruct") == [
        ("meta-llama/Llama-3.3-70B-Instruct", None, None)
    ]
    # The last segment wins over the deployment reading.
    assert items("gpt-4o/azure/openai") == [("gpt-4o/azure", "openai", None)]
    assert items("openai/gpt-4o-mini/openai") == [("openai/gpt-4o-mini", "openai", None)]


def test_without_known_model_a_slashed_item_is_a_bare_model_id() -> None:
    spec = parse_model("some-org/new-model", SLUGS)
    assert spec.items[0].model == "some-org/new-model"
    assert spec.items[0].provider is None


def test_online_suffix() -> None:
    for model in (
        "claude-3-5-sonnet-20241022:online",
        "claude-3-5-sonnet-20241022:online/anthropic",
        "claude-3-5-sonnet-20241022/anthropic:online",
    ):
        item = parse(model).items[0]
        assert item.model == "claude-3-5-sonnet-20241022"
        assert item.online
    plain = parse("claude-3-5-sonnet-20241022/anthropic,gpt-4o-mini:online").items
    assert [i.online for i in plain] == [False, True]


def test_real_provider_table_slugs() -> None:
    model = "meta-llama/Llama-3.3-70B-Instruct/together,gpt-4o-mini/groq"
    spec = parse_model(model, PROVIDERS.routed())
    assert [(i.model, i.provider) for i in spec.items] == [
        ("meta-llama/Llama-3.3-70B-Instruct", "together"),
        ("gpt-4o-mini", "groq"),
    ]


def test_a_provider_alias_reads_as_its_slug() -> None:
    """``gemini`` names ``google-ai-studio`` (issue 13) in a suffix, before a deployment and
    in an exclusion; the parsed spec carries the slug only."""
    table, aliases = PROVIDERS.routed(), PROVIDERS.model_aliases()
    assert aliases == {"gemini": "google-ai-studio"}
    spec = parse_model(
        "gemini-2.5-flash/gemini,gemini-2.5-pro/gemini/my-key:online,gpt-4o/openai,!gemini",
        table, aliases=aliases,
    )  # fmt: skip
    assert [(i.model, i.provider, i.deployment, i.online) for i in spec.items] == [
        ("gemini-2.5-flash", "google-ai-studio", None, False),
        ("gemini-2.5-pro", "google-ai-studio", "my-key", True),
        ("gpt-4o", "openai", None, False),
    ]
    assert spec.items[0].text == "gemini-2.5-flash/gemini"
    assert spec.excluded == frozenset({"google-ai-studio"})
    with pytest.raises(GrammarError, match="Invalid provider: gemini"):
        parse_model("gemini-2.5-flash/gemini", table, lambda model: False)  # no aliases given


@pytest.mark.parametrize(
    ("model", "message", "item", "code"),
    [
        ("!", "Invalid global ignore syntax. Use !provider (e.g., !openai)", "!", BAD_PROVIDER),
        (
            "!opneai,gpt-4o-mini",
            f"Invalid provider in global ignore list: opneai. Valid providers: {VALID}",
            "!opneai",
            "invalid_provider",
        ),
        (
            "gpt-4o-mini/opneai",
            f"Invalid provider: opneai. Valid providers: {VALID}",
            "gpt-4o-mini/opneai",
            "invalid_provider",
        ),
        (
            "gpt-4o-mini,gpt-4o/azure/x/y",
            f"Invalid provider: y. Valid providers: {VALID}",
            "gpt-4o/azure/x/y",
            "invalid_provider",
        ),
        ("/openai", "Missing model before '/openai'", "/openai", "invalid_model"),
        ("/azure/dep", "Missing model before '/azure'", "/azure/dep", "invalid_model"),
        ("gpt-4o/azure/", "Missing deployment id after 'azure/'", "gpt-4o/azure/", "invalid_model"),
        ("gpt-4o/", "Missing provider after '/'", "gpt-4o/", "invalid_provider"),
        (":online", "Missing model id", ":online", "invalid_model"),
    ],
)
def test_item_errors(model: str, message: str, item: str, code: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(model)
    error = caught.value
    assert error.reason == message
    assert error.item == item
    assert error.code == code
    assert str(error) == f"Model item {item!r}: {message}"
    assert error.status == 400
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("", "Invalid body or missing model. See supported models at /v1/models"),
        ("  ", "Invalid body or missing model. See supported models at /v1/models"),
        (None, "Invalid body or missing model. See supported models at /v1/models"),
        (42, BAD_TYPE),
        (["gpt-4o"], BAD_TYPE),
        ("gpt-4o-mini,,gpt-4o", "Empty item at position 2 of the model list"),
        ("gpt-4o-mini,", "Empty item at position 2 of the model list"),
        ("!openai,!groq", ONLY_EXCLUSIONS),
    ],
)
def test_whole_string_errors(model: object, message: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(model)
    assert str(caught.value) == message
    assert caught.value.item is None
