"""The API's JSON renderer: DRF's output, encoded by orjson.

Encoding the conversation list's page with Python's `json` took 4-7% of the request's CPU
(bench/api_list_cpu.py: 240-330 µs of a 5-8 ms request); orjson takes 60-75 µs. The bytes
match DRF's JSONRenderer: compact, UTF-8, U+2028/U+2029 escaped, and every type orjson leaves
to `default` (dates and times, lazy translations, Decimal, ...) formatted by DRF's own encoder;
only a float's exponent is written `1e16` where Python writes `1e+16` (the same number), and
a NaN or infinite float becomes null where DRF's strict JSON raised (a 500).
Anything orjson refuses (a key that is not a string, an integer beyond 64 bits) goes through
DRF's renderer, so an answer DRF could render never fails here; pretty-printing
(`Accept: application/json; indent=4`, the browsable API) does too."""

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

_drf_default = JSONEncoder().default
# Dates and times to DRF's encoder (orjson's own format differs: `+00:00` instead of `Z`).
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        # orjson writes compact UTF-8 only: anything else is DRF's to render.
        plain = data is not None and self.compact and not self.ensure_ascii
        if plain and self.get_indent(accepted_media_type, renderer_context or {}) is None:
            try:
                body = orjson.dumps(data, default=_drf_default, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass
            else:
                # As DRF: JSON that is also a strict subset of JavaScript.
                return body.replace(b"\xe2\x80\xa8", b"\\u2028").replace(
                    b"\xe2\x80\xa9", b"\\u2029"
                )
        return super().render(data, accepted_media_type, renderer_context)
