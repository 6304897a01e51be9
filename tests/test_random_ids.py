"""Answer ids from a batch of random bytes (:mod:`providers.random_ids`): the shape
``secrets.token_hex`` gives, never repeated across refills, and not shared with a forked
child; Bedrock's completions and streams take theirs from it."""

from __future__ import annotations

import os
import re
from unittest import mock

from providers import random_ids
from providers.bedrock import response
from providers.bedrock.stream import ConverseStreamDecoder
from providers.random_ids import RandomIds

_ID = re.compile(r"chatcmpl-[0-9a-f]{48}")


def test_ids_are_prefixed_hex_of_the_size_and_never_repeat() -> None:
    ids = RandomIds("chatcmpl-", 24)
    made = [ids() for _ in range(3 * random_ids.BATCH_IDS + 5)]  # three refills and more
    assert all(_ID.fullmatch(made_id) for made_id in made)
    assert len(set(made)) == len(made)
    assert RandomIds("x", 1)().startswith("x") and len(RandomIds("x", 1)()) == 3


def test_the_kernel_is_asked_once_a_batch() -> None:
    ids = RandomIds("", 24)
    with mock.patch.object(random_ids.os, "urandom", wraps=os.urandom) as urandom:
        made = [ids() for _ in range(2 * random_ids.BATCH_IDS)]
    assert urandom.call_count == 2
    assert all(len(made_id) == 48 for made_id in made)
    assert "".join(made[: random_ids.BATCH_IDS]) != "".join(made[random_ids.BATCH_IDS :])


def test_a_forked_child_does_not_reuse_the_batch() -> None:
    ids = RandomIds("", 24)
    ids()  # the batch is filled in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ids().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 48 and child != ids()


def test_bedrock_answers_take_fresh_ids() -> None:
    answer = {"output": {"message": {"content": [{"text": "hi"}]}}, "stopReason": "end_turn"}
    walked = {"output": {"message": {"content": [{"toolUse": {"toolUseId": "t", "name": "f"}}]}}}
    made = [response.converse_to_chat(answer, model="m")["id"] for _ in range(300)]
    made += [response.converse_to_chat(walked, model="m")["id"] for _ in range(3)]
    made += [ConverseStreamDecoder(include_usage=False, model="m")._id for _ in range(3)]
    assert all(_ID.fullmatch(made_id) for made_id in made)
    assert len(set(made)) == len(made)
