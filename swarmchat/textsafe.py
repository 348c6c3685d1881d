"""Text from agent code or models, made safe to show: no terminal control sequences.

Everything an agent controls (code previews, file names, tool output, answers, error
messages) passes through :func:`visible_controls` before a renderer, a prompt or an error
line shows it, so the screen shows what will actually run. Kept apart from the tools
(which import instructor and openai) so the renderers stay light.
"""

from __future__ import annotations

import re

FILES_MARKER = "Files created or changed: "

# What can move the cursor, erase, retitle the window, write the clipboard (OSC 52), or
# hide or reorder text while looking like nothing: C0 controls except newline and tab,
# DEL and C1 (U+009B alone is a CSI), the soft hyphen, bidi controls (U+061C, U+200E-F,
# U+202A-E, U+2066-9), zero-width and other invisible format characters, the line and
# paragraph separators, Hangul fillers, tag characters and the supplementary variation
# selectors (both can smuggle invisible text to a model), and lone surrogates (a file
# name's undecodable bytes, which would reach the terminal as raw bytes).
_UNSAFE = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\u3164\ud800-\udfff\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_EMOJI = re.compile("[\u2600-\u27bf\ufe0f\U0001f000-\U0001faff]")
_DISPLAY = re.compile(f"[{_UNSAFE}]")


def _shown(match: re.Match[str]) -> str:
    char, text, at = match.group(), match.string, match.start()
    if char == "\r" and text.startswith("\n", at + 1):
        return ""  # a CRLF line ending is a newline, not noise on every line of the file
    if char == "\u200d" and at and _EMOJI.match(text, at - 1) and _EMOJI.match(text, at + 1):
        return char  # a joiner between two emoji (a family, a flag) spells an emoji
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible_controls(text: str) -> str:
    """The one sanitiser for display: each unsafe character (see ``_UNSAFE``) becomes its
    Python escape as plain text (ESC -> ``\\x1b``, RLO -> ``\\u202e``), so no output can
    drive a terminal, hide a line the user is asked to approve, or smuggle escape
    sequences to the model. Newlines and tabs stay; CRLF becomes a newline, a lone CR is
    shown. One precompiled regex pass; the result is safe to sanitise again."""
    return _DISPLAY.sub(_shown, text)


def json_visible(json_text: str) -> str:
    """Serialised JSON with the unsafe characters its escaping leaves raw (DEL, C1, bidi
    and invisible format characters) written as ``\\u`` escapes: the same value for a
    parser, nothing that drives a terminal when a person reads ``--jsonl``."""
    return _DISPLAY.sub(lambda m: _json_escape(m.group()), json_text)


def _json_escape(char: str) -> str:
    units = char.encode("utf-16-le", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'little'):04x}" for i in range(0, len(units), 2))


def valid_utf8(text: str) -> str:
    """``text`` with bytes that were not UTF-8 (which Python carries as lone surrogates,
    from the command line or a pipe) replaced by U+FFFD: nothing downstream (the store,
    the provider's JSON) can encode a surrogate."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")
