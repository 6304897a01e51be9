"""An upstream emulator speaking OpenAI's and Anthropic's wire formats, for end-to-end
tests and benchmarks.

Point the gateway at ``OpenAIEmulator().start().base_url`` (``OPENAI_BASE_URL``) and
``.anthropic_base_url`` (``ANTHROPIC_BASE_URL``); inject ``Fault``s to make it fail, stall or
cut streams; read ``requests`` to see what was sent. Both assistants take the same scenario
markers in the user text (``[[parallel]]``, ``[[text+tool]]``, ``[[refuse]]``): the chat
one's are in :mod:`.chat_plan`, the Anthropic one's in :mod:`.messages_plan`.
"""

from .faults import Fault
from .recording import RecordedRequest
from .server import OpenAIEmulator

__all__ = ["Fault", "OpenAIEmulator", "RecordedRequest"]
