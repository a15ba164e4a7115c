"""A real Keycloak for the SSO tests: started once per pytest session, helpers
for its admin REST API and for logging a user in with plain HTTP.

    def test_x(keycloak):                      # the session fixture (conftest.py)
        kc = keycloak
        kc.issuer                              # http://127.0.0.1:P/realms/nbhub
        kc.discovery()                         # .well-known/openid-configuration
        code = kc.login("alice", url)          # url: the provider's authorize URL nbhub sent
        kc.set_backchannel_logout_url("http://127.0.0.1:%d/auth/oidc/backchannel-logout" % port)
        kc.rotate_keys()                       # new RS256 key with a higher priority, old one off
        kc.remove_user_from_group("alice", "admins")

Where Keycloak comes from: scripts/install-deps.sh unpacks the Maven Central zip
into ~/.cache/nbhub/keycloak-26.7.3 (NBHUB_KEYCLOAK_HOME overrides) and runs
`kc.sh build` there once with KC_BUILD_OPTS; we start it with `start --optimized`
(prod profile, plain HTTP on 127.0.0.1), which skips Quarkus' augmentation
(start-dev redoes it at every start: ~45 s more here).  The database is H2 in
memory and the transaction log goes into the session's own directory, so the
install stays read-only: two checkouts may run their tests at the same time.
The realm (tests/blackbox/keycloak/realm-nbhub.json) is imported through the
admin API after start, the same JSON `--import-realm` would read; in memory,
every session starts from it afresh.

The realm: users alice, bob, carol (password "<name>-pw"); groups admins
(alice), data (bob); a confidential client `nbhub` (secret nbhub-test-secret,
PKCE S256 required, redirect URIs http://127.0.0.1* and http://localhost* -
Keycloak accepts a wildcard only at the end, so any port and path -, a `groups`
claim of plain group names, back-channel logout on, front-channel off, an
`nbhub` audience in access tokens) and a public client `nbhub-cli` with the
device authorization grant for `nbhub login`.

Tests that need Keycloak are skipped only when Java is missing; a Java without
the install fails the fixture (run scripts/install-deps.sh).
"""
import copy
import html
import html.parser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import requests

KC_VERSION = "26.7.3"
# Must equal KC_BUILD_OPTS in scripts/install-deps.sh: `start --optimized` trusts the build.
KC_BUILD_OPTS = ["--db=dev-mem", "--cache=local", "--health-enabled=false"]
REALM = "nbhub"
REALM_FILE = Path(__file__).resolve().parent / "keycloak" / "realm-nbhub.json"
CLIENT_ID = "nbhub"
CLIENT_SECRET = "nbhub-test-secret"
CLI_CLIENT_ID = "nbhub-cli"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
ADMIN_USER = "kcadmin"
ADMIN_PASSWORD = "kcadmin-pw"
START_TIMEOUT = float(os.environ.get("NBHUB_KEYCLOAK_START_TIMEOUT", "300"))


def keycloak_home():
    env = os.environ.get("NBHUB_KEYCLOAK_HOME")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "nbhub" / f"keycloak-{KC_VERSION}"


def java_missing():
    """The one reason to skip a Keycloak test."""
    return shutil.which("java") is None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _FormParser(html.parser.HTMLParser):
    """The forms of a page: [{"action", "id", "inputs": {name: value}}]."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "id": a.get("id") or "", "inputs": {}})
        elif tag == "input" and self.forms and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1]["inputs"].setdefault(a["name"], a.get("value") or "")


class BrowserSession(requests.Session):
    """A requests.Session that keeps Keycloak's cookies the way a browser does on 127.0.0.1.
    Keycloak marks its login cookies Secure (SameSite=None needs it) even over plain HTTP;
    browsers send Secure cookies to http://127.0.0.1 (a potentially trustworthy origin), but
    requests would drop them and the login form would answer "Restart login cookie not found".
    (A cookie policy on the jar does not survive requests' per-request jar merge.)"""

    def request(self, *args, **kwargs):
        r = super().request(*args, **kwargs)
        for c in self.cookies:
            c.secure = False
        return r


def browser_session():
    return BrowserSession()


def page_text(page_html, limit=600):
    """The words of a Keycloak page (no scripts, styles or tags), for assertion messages."""
    t = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", page_html)
    t = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", t))).strip()
    return t[:limit]


def forms(page_html):
    p = _FormParser()
    p.feed(page_html)
    return p.forms


class Keycloak:
    def __init__(self, workdir, home=None, port=None):
        self.home = Path(home or keycloak_home())
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.proc = None
        self.log_path = self.workdir / "keycloak.log"
        self.start_seconds = None
        self._admin_token = None
        self._admin_token_exp = 0

    # -- addresses ------------------------------------------------------------------
    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self):
        return f"{self.url}/realms/{REALM}"

    def discovery(self):
        r = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        r.raise_for_status()
        return r.json()

    # -- process ----------------------------------------------------------------------
    def start(self):
        if not (self.home / ".nbhub-built").is_file():
            raise RuntimeError(f"Keycloak is not installed in {self.home}: run scripts/install-deps.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ,
                   KC_BOOTSTRAP_ADMIN_USERNAME=ADMIN_USER,
                   KC_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD)
        # Nothing of the caller's Java settings: kc.sh picks its own heap and flags.
        for k in ("JAVA_OPTS", "JAVA_OPTS_APPEND", "KC_DB", "KC_CACHE"):
            env.pop(k, None)
        argv = [str(self.home / "bin" / "kc.sh"), "start", "--optimized",
                "--http-enabled=true", "--hostname-strict=false",
                "--http-host=127.0.0.1", f"--http-port={self.port}",
                # Nothing else listens: management (health/metrics) is off with health-enabled=false.
                f"-Dquarkus.transaction-manager.object-store.directory={self.workdir / 'tx'}",
                f"-Djava.io.tmpdir={self.workdir}"]
        t0 = time.monotonic()
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=env, cwd=str(self.workdir), start_new_session=True)
        log.close()
        deadline = t0 + START_TIMEOUT
        well_known = f"{self.url}/realms/master/.well-known/openid-configuration"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Keycloak exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(well_known, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Keycloak not ready after {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
            time.sleep(0.25)
        self.import_realm()
        # Ready means the realm's discovery document answers.
        self.discovery()
        self.start_seconds = time.monotonic() - t0
        return self

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def rss_kib(self):
        """Resident memory of Keycloak's JVM (the child of kc.sh), in KiB."""
        total = 0
        for pid in self._pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def _pids(self):
        if not self.proc:
            return []
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if os.getpgid(int(d.name)) == self.proc.pid:
                        out.append(int(d.name))
                except OSError:
                    pass
        return out

    def stop(self):
        """SIGTERM to the whole group (kc.sh and its java), SIGKILL after 20 s."""
        if not self.proc:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 20
        while self._pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    # -- admin REST API -----------------------------------------------------------------
    def admin_token(self):
        """An access token of the bootstrap admin (master realm, client admin-cli), cached."""
        if self._admin_token and time.monotonic() < self._admin_token_exp:
            return self._admin_token
        r = requests.post(f"{self.url}/realms/master/protocol/openid-connect/token", timeout=10,
                          data={"grant_type": "password", "client_id": "admin-cli",
                                "username": ADMIN_USER, "password": ADMIN_PASSWORD})
        r.raise_for_status()
        body = r.json()
        self._admin_token = body["access_token"]
        self._admin_token_exp = time.monotonic() + body.get("expires_in", 60) - 10
        return self._admin_token

    def admin(self, method, path, json_body=None, expect=(200, 201, 204)):
        """One admin API call; path is below /admin/realms/nbhub ("" for the realm itself)."""
        url = f"{self.url}/admin/realms/{REALM}{path}"
        r = requests.request(method, url, json=json_body, timeout=30,
                             headers={"Authorization": f"Bearer {self.admin_token()}"})
        if expect and r.status_code not in expect:
            raise AssertionError(f"{method} {url}: {r.status_code} {r.text[:500]}")
        if r.status_code == 204 or not r.content:
            return None
        try:
            return r.json()
        except ValueError:
            return r.text

    def realm_json(self):
        return json.loads(REALM_FILE.read_text())

    def import_realm(self):
        """Create the realm from realm-nbhub.json (replacing it if it exists)."""
        r = requests.get(f"{self.url}/admin/realms/{REALM}", timeout=10,
                         headers={"Authorization": f"Bearer {self.admin_token()}"})
        if r.status_code == 200:
            self.admin("DELETE", "")
        r = requests.post(f"{self.url}/admin/realms", json=self.realm_json(), timeout=60,
                          headers={"Authorization": f"Bearer {self.admin_token()}"})
        if r.status_code != 201:
            raise RuntimeError(f"realm import: {r.status_code} {r.text[:500]}")

    def user_id(self, username):
        users = self.admin("GET", f"/users?username={urllib.parse.quote(username)}&exact=true")
        if not users:
            raise KeyError(username)
        return users[0]["id"]

    def group_id(self, name):
        for g in self.admin("GET", f"/groups?search={urllib.parse.quote(name)}&exact=true"):
            if g["name"] == name:
                return g["id"]
        raise KeyError(name)

    def client(self, client_id=CLIENT_ID):
        return self.admin("GET", f"/clients?clientId={urllib.parse.quote(client_id)}")[0]

    def update_client(self, client_id=CLIENT_ID, **changes):
        """PUT the client back with top-level changes; attributes={...} merges into its attributes."""
        c = self.client(client_id)
        attrs = changes.pop("attributes", None)
        c.update(changes)
        if attrs:
            c.setdefault("attributes", {}).update(attrs)
        self.admin("PUT", f"/clients/{c['id']}", c)
        return c

    def set_backchannel_logout_url(self, url, client_id=CLIENT_ID):
        """Where Keycloak POSTs the logout token when a user's session ends (nbhub under test)."""
        self.update_client(client_id, frontchannelLogout=False,
                           attributes={"backchannel.logout.url": url,
                                       "backchannel.logout.session.required": "true"})

    def user_groups(self, username):
        return sorted(g["name"] for g in self.admin("GET", f"/users/{self.user_id(username)}/groups"))

    def add_user_to_group(self, username, group):
        self.admin("PUT", f"/users/{self.user_id(username)}/groups/{self.group_id(group)}")

    def remove_user_from_group(self, username, group):
        self.admin("DELETE", f"/users/{self.user_id(username)}/groups/{self.group_id(group)}")

    def logout_user(self, username):
        """End all of a user's Keycloak sessions (sends back-channel logouts)."""
        self.admin("POST", f"/users/{self.user_id(username)}/logout")

    def user_sessions(self, username):
        return self.admin("GET", f"/users/{self.user_id(username)}/sessions")

    def set_realm(self, **changes):
        """PUT realm settings (e.g. accessTokenLifespan=10, ssoSessionIdleTimeout=...)."""
        self.admin("PUT", "", changes)

    # -- signing keys ------------------------------------------------------------------------
    def key_providers(self):
        realm_id = self.admin("GET", "")["id"]
        return [c for c in self.admin("GET", f"/components?parent={realm_id}&type=org.keycloak.keys.KeyProvider")]

    def active_kid(self, alg="RS256"):
        keys = self.admin("GET", "/keys")
        return keys["active"][alg]

    def jwks(self):
        r = requests.get(f"{self.issuer}/protocol/openid-connect/certs", timeout=10)
        r.raise_for_status()
        return r.json()

    def rotate_keys(self, alg="RS256", keep_old_for_verification=False):
        """Add a new rsa-generated key provider above every other one and turn the old RS256
        providers off: disabled (gone from the JWKS), or with keep_old_for_verification
        only passive (still published, no longer signing).  Returns the new kid."""
        realm_id = self.admin("GET", "")["id"]
        old = [c for c in self.key_providers()
               if c["providerId"] in ("rsa-generated", "rsa") and
               c.get("config", {}).get("algorithm", ["RS256"])[0] == alg]
        top = max([int(c.get("config", {}).get("priority", ["0"])[0]) for c in self.key_providers()] + [0])
        name = f"rsa-rotated-{int(time.time() * 1000)}"
        self.admin("POST", "/components", {
            "name": name, "providerId": "rsa-generated", "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": {"priority": [str(top + 100)], "enabled": ["true"], "active": ["true"],
                       "algorithm": [alg], "keySize": ["2048"]}})
        for c in old:
            c = copy.deepcopy(c)
            if keep_old_for_verification:
                c["config"]["active"] = ["false"]
            else:
                c["config"]["enabled"] = ["false"]
                c["config"]["active"] = ["false"]
            self.admin("PUT", f"/components/{c['id']}", c)
        kid = self.active_kid(alg)
        new = [k for k in self.admin("GET", "/keys")["keys"] if k.get("kid") == kid]
        assert new and new[0].get("providerPriority", 0) >= top + 100, new
        return kid

    # -- the end user's side, with plain HTTP ----------------------------------------------------
    def authorize_url(self, redirect_uri, state="s", nonce="n", code_challenge=None,
                      client_id=CLIENT_ID, scope="openid profile email"):
        q = {"client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri,
             "scope": scope, "state": state, "nonce": nonce}
        if code_challenge:
            q.update(code_challenge=code_challenge, code_challenge_method="S256")
        return f"{self.issuer}/protocol/openid-connect/auth?" + urllib.parse.urlencode(q)

    def fill_login(self, session, page, username, password=None):
        """Submit Keycloak's login form found in page (a requests.Response); the response to the POST
        with redirects not followed."""
        fs = [f for f in forms(page.text) if f["id"] == "kc-form-login"] or forms(page.text)
        if not fs:
            raise AssertionError(f"no login form at {page.url}: {page.status_code} {page_text(page.text)}")
        f = fs[0]
        data = dict(f["inputs"], username=username,
                    password=password if password is not None else PASSWORDS[username])
        action = urllib.parse.urljoin(page.url, f["action"])
        return session.post(action, data=data, allow_redirects=False, timeout=30)

    def login(self, username, authorize_url, password=None, session=None):
        """Log username in through the login form, starting at the provider's authorize URL (the one
        nbhub's /auth/oidc/login redirected to).  Follows Keycloak's own redirects and stops at
        the first one that leaves Keycloak: returns that Location (the client's redirect_uri with
        code and state).  session: a browser_session() to keep Keycloak's cookies (SSO) across calls."""
        s = session or browser_session()
        r = s.get(authorize_url, allow_redirects=False, timeout=30)
        r = self._follow_inside(s, r)
        if r.status_code == 200:
            r = self.fill_login(s, r, username, password)
            r = self._follow_inside(s, r)
        loc = r.headers.get("Location")
        if r.status_code not in (302, 303) or not loc:
            raise AssertionError(f"login as {username}: {r.status_code} at {r.url}: {page_text(r.text)}")
        return urllib.parse.urljoin(r.url, loc)

    def _follow_inside(self, s, r, hops=10):
        while r.status_code in (301, 302, 303, 307) and hops:
            loc = urllib.parse.urljoin(r.url, r.headers["Location"])
            if not loc.startswith(self.url + "/"):
                return r
            r = s.get(loc, allow_redirects=False, timeout=30)
            hops -= 1
        return r

    def approve_device(self, verification_uri_complete, username, password=None, accept=True):
        """Complete an RFC 8628 device verification as username: open the verification URL, log
        in, answer Keycloak's "Grant access" page Yes (or No with accept=False).  Returns the last
        page's text (Keycloak's "Device Login Successful", or its refusal page)."""
        s = browser_session()
        r = s.get(verification_uri_complete, allow_redirects=False, timeout=30)
        r = self._follow_inside(s, r)
        for _ in range(5):
            fs = forms(r.text) if r.status_code == 200 else []
            ids = [f["id"] for f in fs]
            if "kc-form-login" in ids:
                r = self._follow_inside(s, self.fill_login(s, r, username, password))
            elif fs and ("user_code" in fs[0]["inputs"] or "device_user_code" in fs[0]["inputs"]):
                # The code-entry page (verification_uri without the code): the code is prefilled.
                f = fs[0]
                r = self._follow_inside(s, s.post(urllib.parse.urljoin(r.url, f["action"]),
                                                  data=f["inputs"], allow_redirects=False, timeout=30))
            elif fs and ("login-actions/consent" in fs[0]["action"] or 'name="accept"' in r.text):
                # "Grant Access to nbhub command line": the Yes button is <input name="accept">
                # or a <button>, neither of which our parser keeps; send it by name.
                f = fs[0]
                data = {k: v for k, v in f["inputs"].items() if k not in ("accept", "cancel")}
                if accept:
                    data["accept"] = "Yes"
                else:
                    data["cancel"] = "No"
                r = self._follow_inside(s, s.post(urllib.parse.urljoin(r.url, f["action"]),
                                                  data=data, allow_redirects=False, timeout=30))
            else:
                break
        if not accept:
            return r.text
        if r.status_code != 200 or "Device Login Successful" not in r.text:
            raise AssertionError(f"device approval as {username}: {r.status_code} at {r.url}: {page_text(r.text)}")
        return r.text

    def token_by_code(self, code, redirect_uri, code_verifier=None, client_id=CLIENT_ID,
                      client_secret=CLIENT_SECRET):
        """Trade a code at the token endpoint the way an RP does (for tests of the fixture itself)."""
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": client_id, "client_secret": client_secret}
        if code_verifier:
            data["code_verifier"] = code_verifier
        return requests.post(f"{self.issuer}/protocol/openid-connect/token", data=data, timeout=30)


if __name__ == "__main__":
    # python tests/blackbox/keycloak.py PORT: run the fixture's Keycloak until Ctrl-C, for a
    # developer's loop (NBHUB_KEYCLOAK_PORT=PORT makes the fixture use it instead of its own).
    import sys
    import tempfile
    kc = Keycloak(tempfile.mkdtemp(prefix="nbhub-keycloak-"), port=int(sys.argv[1]) if len(sys.argv) > 1 else None)
    kc.start()
    print(f"keycloak ready in {kc.start_seconds:.1f} s at {kc.url} (RSS {kc.rss_kib() // 1024} MiB); Ctrl-C stops it",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        kc.stop()
