"""The template language and the merge: every rule of D.1 and D.2.3, the docs' examples."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.prompts.assemble import (
    PromptError,
    chat_body,
    merge,
    partial_refs,
    partial_text,
)
from gateway.prompts.template import (
    check,
    render,
    substitute_json,
    substitute_mustache,
    substitute_text,
    typed,
    variables,
)


def test_variable_syntax_whitespace_and_first_type_wins() -> None:
    text = "{{ hc : name : string }} {{hc:age:number}} {{hc:name:number}} {{hc:9bad:string}}"
    assert variables(text) == {"name": "string", "age": "number"}


@pytest.mark.parametrize(
    ("type_name", "value", "ok"),
    [
        ("number", 25, True),
        ("number", 3.14, True),
        ("number", "25", True),
        ("number", " -1.5e3 ", True),
        ("number", "", True),  # JavaScript's Number("") is 0
        ("number", "0x1F", True),
        ("number", "abc", False),
        ("number", "1_000", False),
        ("number", "nan", False),
        ("number", True, False),
        ("number", [1], False),
        ("boolean", True, True),
        ("boolean", "yes", True),
        ("boolean", "No", True),
        ("boolean", "TRUE", True),
        ("boolean", "maybe", False),
        ("boolean", 1, False),
        ("string", 42, True),
        ("array", "anything", True),
    ],
)
def test_type_checks(type_name: str, value: Any, ok: bool) -> None:
    assert (check("v", type_name, value) is None) is ok


def test_error_message_is_the_documented_one() -> None:
    error = check("age", "number", "abc")
    assert error is not None and error.message == "Variable 'age' is 'number' but got 'abc'"
    error = check("flag", "boolean", [1])
    assert error is not None and error.message == "Variable 'flag' is 'boolean' but got [1]"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", "x"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (1.0, "1"),
        (2.5, "2.5"),
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),
        ([1, 2], "[1,2]"),
    ],
)
def test_render(value: Any, text: str) -> None:
    assert render(value) == text


def test_text_substitution_rules() -> None:
    template = (
        "Hi {{hc:name:string}}, {{hc:age:number}} y, premium {{hc:p:boolean}} {{hc:gone:string}}"
    )
    out, errors = substitute_text(template, {"name": "Ann", "age": 0, "p": "yes", "gone": None})
    # Falsy inputs are substituted; a boolean word is rendered as given; absent/null stays.
    assert (out, errors) == ("Hi Ann, 0 y, premium yes {{hc:gone:string}}", [])
    bad, errors = substitute_text(template, {"name": "Ann", "age": "abc", "p": "maybe"})
    assert bad == template  # a message with a bad input is left as it was
    assert [e.message for e in errors] == [
        "Variable 'age' is 'number' but got 'abc'",
        "Variable 'p' is 'boolean' but got 'maybe'",
    ]


def test_mustache_leaves_unknown_placeholders() -> None:
    assert substitute_mustache("{{a}} {{b.c}} {{ d }}", {"a": 1, "b.c": "x"}) == "1 x {{ d }}"


def test_moviebot_schema_compiles_as_documented() -> None:
    schema: dict[str, Any] = {
        "name": "moviebot_response",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "markdown_response": {"type": "string"},
                "tools_used": {
                    "type": "array",
                    "items": {"type": "string", "enum": "{{hc:tools:array}}"},
                },
                "user_tier": {"type": "string", "enum": "{{hc:tiers:array}}"},
            },
            "required": ["markdown_response", "tools_used", "user_tier"],
            "additionalProperties": False,
        },
    }
    inputs = {
        "tools": ["search", "calculator", "weather"],
        "tiers": ["basic", "premium", "enterprise"],
    }
    out, errors = substitute_json(schema, inputs)
    assert errors == []
    props = out["schema"]["properties"]
    assert props["tools_used"]["items"]["enum"] == ["search", "calculator", "weather"]
    assert props["user_tier"]["enum"] == ["basic", "premium", "enterprise"]
    assert out["schema"]["additionalProperties"] is False and out["strict"] is True
    assert schema["schema"]["properties"]["user_tier"]["enum"] == "{{hc:tiers:array}}"  # a copy
    described, _ = substitute_json(
        {"description": "Available for {{hc:name:string}} users"}, {"name": "premium"}
    )
    assert described == {"description": "Available for premium users"}


def test_typed_values_in_nested_tool_schemas() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "{{hc:fn:string}}",
                "description": "Look up {{hc:what:string}} (max {{hc:limit:number}})",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "{{hc:field:string}}": {"type": "string", "enum": "{{hc:choices:list}}"},
                        "count_{{hc:field:string}}": {
                            "type": "integer",
                            "maximum": "{{hc:limit:number}}",
                            "default": "{{hc:strict:boolean}}",
                        },
                        "meta": {"type": "object", "default": "{{hc:meta:any}}"},
                    },
                    "required": ["{{hc:field:string}}"],
                    "additionalProperties": False,
                    "minItems": 3,
                },
            },
        }
    ]
    inputs = {
        "fn": "search",
        "what": "films",
        "limit": "25",
        "field": "genre",
        "choices": ["drama", "comedy"],
        "strict": "yes",
        "meta": {"k": [1, None]},
    }
    out, errors = substitute_json(tools, inputs)
    assert errors == []
    function = out[0]["function"]
    assert function["name"] == "search"
    assert function["description"] == "Look up films (max 25)"
    props = function["parameters"]["properties"]
    assert props["genre"] == {"type": "string", "enum": ["drama", "comedy"]}
    # A whole-value number tag given "25" becomes the number 25; "yes" becomes true.
    assert props["count_genre"] == {"type": "integer", "maximum": 25, "default": True}
    assert props["meta"]["default"] == {"k": [1, None]}
    assert function["parameters"]["required"] == ["genre"]
    assert function["parameters"]["minItems"] == 3


def test_json_errors_missing_bad_type_and_non_string_key() -> None:
    value = {
        "a": "{{hc:missing:string}}",
        "b": "n = {{hc:n:number}}",
        "{{hc:key:string}}": 1,
        "keep": None,
    }
    out, errors = substitute_json(value, {"n": "abc", "key": 5})
    assert [e.message for e in errors] == [
        "Variable 'missing' is required (type 'string') but missing",
        "Variable 'n' is 'number' but got 'abc'",
        "Variable 'key' is 'string' but got 5",
    ]
    assert "{{hc:key:string}}" not in out and 5 not in out  # the pair is dropped
    assert out["keep"] is None


def test_typed_coercions() -> None:
    assert typed("number", "2.50") == 2.5 and typed("number", "7") == 7
    assert typed("number", "0x10") == 16 and typed("number", "") == 0
    assert typed("boolean", "No") is False and typed("boolean", "yes") is True
    assert typed("string", "7") == "7" and typed("number", 3) == 3


SAVED: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "temperature": 0.6,
    "max_tokens": 1000,
    "messages": [
        {
            "role": "system",
            "content": "You are a helpful customer support agent for {{hc:company:string}}.",
        },
        {"role": "user", "content": "Hello, I need help with my account."},
    ],
}


def test_final_compiled_request_of_the_docs() -> None:
    request: dict[str, Any] = {
        "prompt_id": "abc123",
        "temperature": 0.4,
        "inputs": {"company": "Acme Corp"},
        "messages": [{"role": "user", "content": "Actually, I want to cancel my subscription."}],
    }
    body = merge(SAVED, request, request["inputs"])
    assert body == {
        "model": "gpt-4o-mini",
        "temperature": 0.4,
        "max_tokens": 1000,
        "messages": [
            {
                "role": "system",
                "content": "You are a helpful customer support agent for Acme Corp.",
            },
            {"role": "user", "content": "Hello, I need help with my account."},
            {"role": "user", "content": "Actually, I want to cancel my subscription."},
        ],
    }
    assert SAVED["messages"][0]["content"].endswith("{{hc:company:string}}.")  # not mutated


def test_merge_tools_response_format_and_model() -> None:
    saved = {
        "messages": [],
        "tools": [{"type": "function", "function": {"name": "{{hc:t:string}}"}}],
        "response_format": {"type": "json_object"},
    }
    body = merge(
        saved,
        {"tools": [{"type": "function", "function": {"name": "mine"}}], "environment": "x"},
        {"t": "saved_tool"},
        model="gpt-4o",
    )
    assert [t["function"]["name"] for t in body["tools"]] == ["saved_tool", "mine"]
    assert body["response_format"] == {"type": "json_object"} and body["model"] == "gpt-4o"
    assert "environment" not in body
    empty = merge({"messages": [], "tools": [], "response_format": None}, {"model": "m"}, {})
    assert "tools" not in empty and "response_format" not in empty
    assert empty["model"] == "m"
    with pytest.raises(PromptError) as error:
        merge(saved, {}, {})
    assert str(error.value) == "Variable 't' is required (type 'string') but missing"


def test_merge_reports_every_bad_input_once_per_line() -> None:
    saved = {
        "messages": [
            {"role": "user", "content": "{{hc:age:number}} {{hc:ok:boolean}}"},
            {"role": "user", "content": "again {{hc:age:number}}"},
        ]
    }
    with pytest.raises(PromptError) as error:
        merge(saved, {}, {"age": "abc", "ok": "maybe"})
    assert str(error.value).split("\n") == [
        "Variable 'age' is 'number' but got 'abc'",
        "Variable 'ok' is 'boolean' but got 'maybe'",
    ]


def test_runtime_messages_substitution_can_be_off() -> None:
    body = merge(
        {"messages": []},
        {"messages": [{"role": "user", "content": "{{hc:x:string}}"}]},
        {"x": "y"},
        substitute_runtime=False,
    )
    assert body["messages"][0]["content"] == "{{hc:x:string}}"


def test_content_parts_and_non_text_parts() -> None:
    image = {"type": "image_url", "image_url": {"url": "{{hc:x:string}}"}}
    saved = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "{{hc:x:string}}"}, image]}
        ]
    }
    body = merge(saved, {}, {"x": "filled"})
    assert body["messages"][0]["content"] == [{"type": "text", "text": "filled"}, image]


@pytest.mark.parametrize(
    ("main", "partial", "inputs", "final"),
    [
        (
            "{{hcp:sysPrompt:0}} Always be {{hc:tone:string}}.",
            "You are a helpful assistant for {{hc:company:string}}.",
            {"company": "Acme Corp", "tone": "professional"},
            "You are a helpful assistant for Acme Corp. Always be professional.",
        ),
        (
            "{{hcp:greeting:0}} How can you help me?",
            "Hello {{hc:customer_name:string}}, welcome to {{hc:company:string}}!",
            {"customer_name": "Alice", "company": "TechCorp"},
            "Hello Alice, welcome to TechCorp! How can you help me?",
        ),
    ],
)
def test_partials_of_the_docs(main: str, partial: str, inputs: dict[str, Any], final: str) -> None:
    saved = {"messages": [{"role": "system", "content": main}]}
    (ref,) = partial_refs(saved)
    assert ref.index == 0 and ref.environment is None
    referenced = {"messages": [{"role": "system", "content": partial}]}
    body = merge(saved, {}, inputs, partials={ref.tag: partial_text(referenced, ref.index)})
    assert body["messages"][0]["content"] == final


def test_partial_refs_and_texts() -> None:
    saved = {
        "messages": [
            {
                "role": "system",
                "content": "{{hcp:abc123:1:staging}} {{ hcp : abc123 : 1 : staging }}",
            },
            {"role": "user", "content": [{"type": "text", "text": "{{hcp:xyz789:2}}"}]},
        ]
    }
    refs = partial_refs(saved)
    assert [(r.prompt_id, r.index, r.environment) for r in refs] == [
        ("abc123", 1, "staging"),
        ("abc123", 1, "staging"),
        ("xyz789", 2, None),
    ]
    parts = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]
    }
    assert partial_text(parts, 0) == "a b" and partial_text(parts, 5) == ""
    # Runtime messages are not scanned for partials.
    body = merge(
        {"messages": []},
        {"messages": [{"role": "user", "content": "{{hcp:abc123:0}}"}]},
        {},
        partials={"{{hcp:abc123:0}}": "X"},
    )
    assert body["messages"][0]["content"] == "{{hcp:abc123:0}}"


def test_chat_body_kinds() -> None:
    assert chat_body("Be brief.", "text") == {
        "messages": [{"role": "system", "content": "Be brief."}]
    }
    assert chat_body(SAVED, "chat") is SAVED
    with pytest.raises(PromptError, match="not a chat template"):
        chat_body({"a": 1}, "json")
