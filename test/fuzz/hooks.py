"""Schemathesis hooks for Hangar's fuzz test (test/integration/fuzz.test.ts).

Loaded through SCHEMATHESIS_HOOKS. Two things the stock checks do not cover:

- every 4xx answer is Hangar's JSON error shape (API.md), and
- the fuzzing callers must survive the run: schemathesis draws real ids from
  list responses (its resource pool), so without a guard it would deactivate,
  demote or revoke the very user and token it fuzzes with, and every later
  request would test nothing but 401/403.
"""

import json
import os
import re

import schemathesis

# Ids of the fuzzing users and their tokens (comma-separated, from the test).
PROTECTED = {v for v in os.environ.get("HANGAR_FUZZ_PROTECTED_IDS", "").split(",") if v}
# Looks like an id and exists nowhere: the request still runs and gets its 404.
STAND_IN = "fuzz-protected-stand-in"
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters or {}
    for name, value in list(params.items()):
        if isinstance(value, str) and value in PROTECTED:
            params[name] = STAND_IN


@schemathesis.check
def hangar_json_error(ctx, response, case):
    """A 4xx is `{"error": {"code": "snake_case", "message": "..."}}` as JSON."""
    if not 400 <= response.status_code < 500:
        return None
    media = response.headers.get("content-type", [""])
    media = media[0] if isinstance(media, list) else media
    if "application/json" not in (media or ""):
        raise AssertionError(f"{response.status_code} answered with content-type {media!r}, not JSON")
    try:
        body = json.loads(response.content or b"")
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} body is not JSON: {exc}") from exc
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise AssertionError(f'{response.status_code} body has no "error" object')
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, str) or not ERROR_CODE.match(code):
        raise AssertionError(f"{response.status_code} error.code {code!r} is not a snake_case string")
    if not isinstance(message, str) or not message:
        raise AssertionError(f"{response.status_code} error.message is missing or empty")
    if response.status_code == 405 and not response.headers.get("allow"):
        raise AssertionError("405 without an Allow header")
    return None
