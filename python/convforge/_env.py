"""The one reader of convforge's on/off environment switches (CONVFORGE_AUTOTUNE,
CONVFORGE_CONV_EXACT, CONVFORGE_DYNAMIC_THREADS, CONVFORGE_STEP_BUFFERS)."""

from __future__ import annotations

import os
from typing import Mapping, Optional

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def flag(name: str, environ: Optional[Mapping[str, str]] = None) -> Optional[bool]:
    """True / False when `name` is set to an on / off word (1, true, yes, on / 0, false, no,
    off; any case), None when it is unset, empty or anything else (the caller's default)."""
    value = (os.environ if environ is None else environ).get(name, "").strip().lower()
    return True if value in _ON else False if value in _OFF else None
