"""Text from agent code or models, made safe to show: no terminal control sequences.

Kept apart from the tools (which import instructor and openai) so the renderers stay light.
"""

from __future__ import annotations

import re

FILES_MARKER = "Files created or changed: "
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible_controls(text: str) -> str:
    """Make control characters visible (``\\x1b`` -> ``\\x1b`` as text) so output cannot
    drive a terminal or smuggle escape sequences to the model. Newlines and tabs stay."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
