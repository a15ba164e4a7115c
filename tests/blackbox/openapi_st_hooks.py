"""schemathesis hooks for test_openapi_contract.py (loaded by `st` through
SCHEMATHESIS_HOOKS=openapi_st_hooks with this directory on PYTHONPATH).

The credential.  schemathesis calls every operation, as the user it runs as:
it revokes that user's tokens (DELETE /users/NAME/tokens/ID, with ids it
reads from GET .../tokens), changes their password and logs out.  A fixed
bearer token would die in the first minute and the rest of the run would
test nothing but 401s.  So the token comes from this auth provider, minted
with `nbhub user token NAME --home DIR` (straight into the store, beside
the running server, as an operator would), and schemathesis's reactive
re-authentication (retry_on 401, its default) asks for a new one and replays
the request whenever an answer is 401.  The token is cached for the default
300 s.

NBHUB_ST_BIN, NBHUB_ST_HOME and NBHUB_ST_USER say which binary, home and
user.
"""
import os
import subprocess

import schemathesis


@schemathesis.auth()
class NbhubToken:
    def get(self, case, ctx):
        env = {k: v for k, v in os.environ.items() if k not in ("NBHUB_URL", "NBHUB_TOKEN")}
        p = subprocess.run([os.environ["NBHUB_ST_BIN"], "user", "token", os.environ["NBHUB_ST_USER"],
                            "--home", os.environ["NBHUB_ST_HOME"]],
                           capture_output=True, text=True, timeout=60, env=env)
        if p.returncode != 0 or not p.stdout.strip():
            raise RuntimeError(f"nbhub user token exited {p.returncode}: {p.stderr.strip()}")
        return p.stdout.strip()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
