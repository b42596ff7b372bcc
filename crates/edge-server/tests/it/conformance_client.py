"""A user of the API who knows it only through /openapi.json.

`conformance.rs` has openapi-python-client generate a Python package from the live server's
document, then runs this script, which goes through that package alone (its models, its
client, its per-operation functions; never an HTTP call of its own):

    python3 conformance_client.py <dir holding the package> <package> <base URL> <org> <username> <password>

It logs in (POST /be/v1/login), creates an app (POST /be/v1/apps) and lists tasks
(GET /be/v1/tasks: the caller has deleted an app first, so there is one), and asserts that each answer was parsed into the typed model the
document names for it: not the bare `Success` envelope, and with no field the document
does not describe (those land in a model's `additional_properties`).

Operations are found by the request they send (method and path), not by the module name
the generator derives from an operationId, so renaming an operationId breaks nothing here.
"""

import enum
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path

APP = "ClientApp"


def fail(msg):
    print(f"conformance_client: {msg}", file=sys.stderr)
    sys.exit(1)


def operation(root, package, method, path):
    """The generated module of `method path`."""
    pat = re.compile(r'"method":\s*"%s",\s*"url":\s*"%s",' % (method.lower(), re.escape(path)))
    hits = sorted(p for p in (root / "api").rglob("*.py") if pat.search(p.read_text(encoding="utf-8")))
    if len(hits) != 1:
        fail(f"{method} {path}: expected one generated module, found {[str(h) for h in hits]}")
    rel = hits[0].relative_to(root).with_suffix("")
    return importlib.import_module(".".join((package, *rel.parts)))


def body_of(module, wire):
    """The generated request model of `module`, built from its JSON form `wire`."""
    ann = inspect.signature(module.sync_detailed).parameters["body"].annotation
    kinds = [k for k in (typing.get_args(ann) or (ann,)) if hasattr(k, "from_dict")]
    if not kinds:
        fail(f"{module.__name__}: the request body has no generated model ({ann!r})")
    for kind in kinds:
        try:
            body = kind.from_dict(dict(wire))
        except (KeyError, TypeError, ValueError):
            continue
        if body.to_dict() == wire:
            return body
    fail(f"{module.__name__}: no request model among {[k.__name__ for k in kinds]} holds {wire}")


def call(module, label, **kwargs):
    """Runs the operation; returns its parsed 200 answer, checked to be a typed model."""
    r = module.sync_detailed(**kwargs)
    if r.status_code != 200:
        fail(f"{label}: HTTP {int(r.status_code)}: {r.content[:500]!r}")
    parsed = r.parsed
    kind = type(parsed).__name__
    if parsed is None or kind in ("Success", "Failure") or not hasattr(parsed, "to_dict"):
        fail(f"{label}: the 200 answer is not typed in /openapi.json (parsed as {kind}); body: {r.content[:300]!r}")
    return parsed


def described(label, model):
    """Asserts that the document describes every field the server sent in `model`."""
    extra = getattr(model, "additional_properties", None) or {}
    if extra:
        fail(f"{label}: fields the document does not describe: {sorted(extra)}")


def value(v):
    return v.value if isinstance(v, enum.Enum) else v


def main():
    if len(sys.argv) != 7:
        fail(__doc__)
    root_dir, package, base, org, username, password = sys.argv[1:]
    sys.path.insert(0, root_dir)
    pkg = importlib.import_module(package)
    root = Path(pkg.__file__).parent
    client_mod = importlib.import_module(f"{package}.client")

    login = operation(root, package, "POST", "/be/v1/login")
    post_app = operation(root, package, "POST", "/be/v1/apps")
    list_tasks = operation(root, package, "GET", "/be/v1/tasks")

    anon = client_mod.Client(base_url=base, raise_on_unexpected_status=True)
    wire = {"username": username, "password": password, "orgName": org}
    s = call(login, "POST /be/v1/login", client=anon, body=body_of(login, wire))
    described("POST /be/v1/login", s)
    if value(s.status) != "success":
        fail(f"login: status {s.status!r}")
    token = getattr(s, "access_token", None)
    if not isinstance(token, str) or not token:
        fail(f"login: no accessToken in {type(s).__name__}: {s.to_dict()}")
    if s.username != username or s.org_name != org:
        fail(f"login: for {s.username!r} in {s.org_name!r}, not {username!r} in {org!r}")
    if not isinstance(s.access_expires_in, int) or s.access_expires_in <= 0:
        fail(f"login: accessExpiresIn {s.access_expires_in!r}")

    authed = client_mod.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    a = call(post_app, "POST /be/v1/apps", client=authed, body=body_of(post_app, {"name": APP, "label": "Client app"}))
    described("POST /be/v1/apps", a)
    described("POST /be/v1/apps: app", a.app)
    if a.app.name != APP or a.app.label != "Client app":
        fail(f"create app: answered {a.app.to_dict()}")
    if a.app.max_builds != 5 or list(a.app.builds) != []:
        fail(f"create app: a new app keeps 5 builds and has none: {a.app.to_dict()}")

    kwargs = {"client": authed}
    if "limit" in inspect.signature(list_tasks.sync_detailed).parameters:
        kwargs["limit"] = 5
    t = call(list_tasks, "GET /be/v1/tasks", **kwargs)
    described("GET /be/v1/tasks", t)
    if not isinstance(t.tasks, list) or not isinstance(t.total, int) or t.total < len(t.tasks):
        fail(f"list tasks: {t.to_dict()}")
    # The caller deleted an app before running this script: its deletion is a task.
    if not t.tasks:
        fail(f"list tasks: no task listed: {t.to_dict()}")
    if t.offset != 0 or ("limit" in kwargs and t.limit != 5):
        fail(f"list tasks: offset {t.offset!r}, limit {t.limit!r}")
    for task in t.tasks:
        if not hasattr(task, "to_dict"):
            fail(f"list tasks: an item is not typed: {task!r}")
        described("GET /be/v1/tasks: task", task)
        if not isinstance(task.task_name, str) or not task.task_name:
            fail(f"list tasks: a task without taskName: {task.to_dict()}")
    print(f"generated client: logged in as {s.username}, created app {a.app.name}, listed {len(t.tasks)} of {t.total} tasks")


if __name__ == "__main__":
    main()
