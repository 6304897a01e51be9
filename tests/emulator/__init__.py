"""An upstream emulator speaking OpenAI's, Anthropic's, the Gemini API's and Bedrock's wire
formats, for end-to-end tests and benchmarks (Bedrock: ``/model/{modelId}/...`` on the same
origin, signed with ``BEDROCK_ACCESS_KEY`` / ``BEDROCK_SECRET_KEY``; :mod:`.bedrock`).

Point the gateway at ``OpenAIEmulator().start().base_url`` (``OPENAI_BASE_URL``),
``.anthropic_base_url`` (``ANTHROPIC_BASE_URL``) and ``.gemini_base_url``
(``GEMINI_BASE_URL``); inject ``Fault``s to make it fail, stall or cut streams; read
``requests`` to see what was sent. The assistants take the same scenario markers in the user
text (``[[parallel]]``, ``[[text+tool]]``, ``[[refuse]]``): the chat one's are in
:mod:`.chat_plan`, the Anthropic one's in :mod:`.messages_plan`, the Gemini one's in
:mod:`.gemini_plan`.
"""

from .faults import Fault
from .recording import RecordedRequest
from .server import BEDROCK_ACCESS_KEY, BEDROCK_SECRET_KEY, OpenAIEmulator

__all__ = ["BEDROCK_ACCESS_KEY", "BEDROCK_SECRET_KEY", "Fault", "OpenAIEmulator", "RecordedRequest"]
