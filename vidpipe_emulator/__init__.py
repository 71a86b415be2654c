"""vidpipe_emulator: a wire-level emulator of the Vertex AI Gemini and Veo endpoints.

It lets tests drive the *real* ``google-genai`` SDK (Vertex express mode,
``GOOGLE_VERTEX_BASE_URL`` pointing here) without network access, with
deterministic synthetic media and injectable faults.  It is deliberately
independent of ``vidpipe_core`` (the code under test).

    from vidpipe_emulator import Emulator, Faults
    with Emulator(faults=Faults(rate_429=0.1), image_height=144) as emu:
        base_url = emu.base_url
"""

from .config import ENDPOINT_KINDS, Faults, Settings
from .server import Emulator
from .state import RequestRecord

__all__ = ["ENDPOINT_KINDS", "Emulator", "Faults", "RequestRecord", "Settings"]
