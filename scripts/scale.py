#!/usr/bin/env python3
"""Drives rockit-edge processes over HTTP for the scale test (`scripts/scale-test.sh`)
and the scale benchmark (`bench/scale.sh`). Standard library only.

  scale.py test   — concurrent imports on two processes, checks, then kill -9 of one
  scale.py bench  — imports/minute and submit → deploy-end latency

Environment (set by the shell wrappers): URL_1, URL_2, PID_1, PID_2, ADMIN, WORK,
MOTO_URL, LEASE, BENCH_BIN.
"""

import concurrent.futures as cf
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

WORK = os.environ.get("WORK", "/tmp")
ADMIN = os.environ.get("ADMIN", "")


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def call(base, method, path, body=None, token=None, admin=False, ok=True):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    if admin:
        req.add_header("x-rockit-admin-token", ADMIN)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        out = json.loads(raw)
    except ValueError:
        out = raw.decode(errors="replace")
    if ok and status != 200:
        raise Fail(f"{method} {path}: HTTP {status}: {out}")
    return out


def put_file(url, path):
    with open(path, "rb") as f:
        data = f.read()
    req = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(req, timeout=300) as r:
        check(r.status == 200, f"upload {url}: HTTP {r.status}")


def org_token(base, org):
    body = {"name": org, "label": org, "username": org + "_admin", "email": "ops@example.com", "firstname": "Scale", "surname": "Test"}
    pw = call(base, "POST", "/adm/v1/orgs", body, admin=True)["adminPW"]
    return call(base, "POST", "/be/v1/login", {"username": org + "_admin", "password": pw, "orgName": org})["accessToken"]


def small_build(name, seed):
    """A small distinct game tree, archived with GNU tar; returns the tar path."""
    rnd = random.Random(seed)
    d = os.path.join(WORK, "builds", name)
    for i in range(3):
        p = os.path.join(d, "data" if i else "bin", f"f{i}.bin")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(rnd.randbytes(rnd.randrange(30_000, 200_000)))
    with open(os.path.join(d, "version.txt"), "w") as f:
        f.write(f"{name} {seed}\n")
    return tar(d, name)


def big_build(name, seed, mib):
    rnd = random.Random(seed)
    d = os.path.join(WORK, "builds", name)
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    for i in range(mib // 4):
        with open(os.path.join(d, "data", f"pack{i}.pak"), "wb") as f:
            f.write(rnd.randbytes(4 << 20))
    return tar(d, name)


def tar(d, name):
    out = os.path.join(WORK, "builds", name + ".tar")
    subprocess.run(["tar", "cf", out, "-C", d, "."], check=True)
    return out


def import_build(base, token, app, build_name, tar_path):
    """POST an import, PUT the tar; returns (taskGroup, submit time)."""
    t = time.time()
    r = call(base, "POST", "/be/v1/builds", {"appName": app, "buildName": build_name}, token=token)
    put_file(r["uploadUrl"], tar_path)
    return r["taskGroup"], t


def group_tasks(base, token, group):
    return call(base, "GET", f"/be/v1/tasks?taskGroup={group}&limit=20", token=token)["tasks"]


def wait_groups(base, token, groups, timeout):
    """Waits until every task of every group has ended; returns {group: [tasks]}."""
    end = time.time() + timeout
    pending, out = set(groups), {}
    while pending:
        for g in list(pending):
            ts = group_tasks(base, token, g)
            if ts and all(t["status"] not in ("submitted", "running") for t in ts):
                out[g] = ts
                pending.discard(g)
        if pending and time.time() > end:
            raise Fail(f"{len(pending)} import(s) did not finish within {timeout} s, e.g. {sorted(pending)[0]}")
        time.sleep(0.3)
    return out


def log_events(n, message):
    """Lines of process n's JSON log with this message."""
    out = []
    path = os.path.join(WORK, f"edge-{n}.log")
    if not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("message") == message:
                out.append(v)
    return out


def ts(v):
    return datetime.datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00")).timestamp()


def s3_keys(moto, bucket, prefix=""):
    keys, token = [], None
    while True:
        q = f"{moto}/{bucket}?list-type=2&prefix={prefix}" + (f"&continuation-token={urllib.request.quote(token)}" if token else "")
        with urllib.request.urlopen(q, timeout=60) as r:
            root = ET.fromstring(r.read())
        ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
        keys += [c.find(ns + "Key").text for c in root.findall(ns + "Contents")]
        if root.findtext(ns + "IsTruncated") != "true":
            return keys
        token = root.findtext(ns + "NextContinuationToken")


def check_published(moto, bucket, org, app, builds, prefix=""):
    """Exactly one image (one dxf name, one manifest) per build id on the s3 origin (or,
    with prefix "depot/", in the depot's published copy)."""
    keys = [k[len(prefix):] for k in s3_keys(moto, bucket, f"{prefix}dxf/{org}/{app}/")]
    per_build = {}
    for k in keys:
        parts = k.split("/")  # dxf, org, app, build, dxfName, file...
        per_build.setdefault(int(parts[3]), set()).add(parts[4])
        if parts[-1] == "manifest.json":
            per_build.setdefault(("manifest", int(parts[3])), set()).add(k)
    for b in builds:
        names = per_build.get(b, set())
        check(len(names) == 1, f"{app} build {b}: {len(names)} images on the s3 origin ({sorted(names)}): duplicate or missing publish")
        check(len(per_build.get(("manifest", b), ())) == 1, f"{app} build {b}: not exactly one manifest")


def test():
    url1, url2 = os.environ["URL_1"], os.environ["URL_2"]
    pid1 = int(os.environ["PID_1"])
    moto, lease = os.environ["MOTO_URL"], int(os.environ.get("LEASE", "5"))
    bucket, org = "scale", "ScaleCo"
    depot = os.environ.get("DEPOT_BUCKET", "edge-depot")
    t0 = time.time()
    req = urllib.request.Request(f"{moto}/{bucket}", method="PUT")
    urllib.request.urlopen(req, timeout=30).read()
    token = org_token(url1, org)
    origin = {"type": "s3", "endpoint": moto, "region": "us-east-1", "bucket": bucket, "accessKeyId": "AKIASCALETEST",
              "secretAccessKey": "scale-test-secret", "pathStyle": True}
    call(url2, "POST", "/be/v1/deployments", {"name": "s3", "origin": origin}, token=token)
    apps = [f"Game{i}" for i in range(5)]
    for a in apps:
        # Three builds kept: two patches per import (the test is about concurrency; patch
        # cost per older build is bench/patch.sh's subject).
        call(url1, "POST", "/be/v1/apps", {"name": a, "label": a, "maxBuilds": 3}, token=token)
    tars = {(a, k): small_build(f"{a}-{k}", i * 10 + k) for i, a in enumerate(apps) for k in range(4)}

    # Phase 1: 20 concurrent imports across 5 apps, through both processes' APIs. Within
    # an app they are submitted one after the other (that is the order to keep).
    def submit_app(i, a):
        out = []
        for k in range(4):
            base = (url1, url2)[(i + k) % 2]
            g, t = import_build(base, token, a, f"{a}-b{k}", tars[(a, k)])
            out.append((a, k, g, t))
        return out

    with cf.ThreadPoolExecutor(len(apps)) as ex:
        subs = [s for r in ex.map(lambda ia: submit_app(*ia), enumerate(apps)) for s in r]
    print(f"phase 1: {len(subs)} imports submitted in {time.time() - t0:.1f} s")
    done = wait_groups(url1, token, [s[2] for s in subs], 150)
    print(f"phase 1: all imports ended after {time.time() - t0:.1f} s")
    started = {1: log_events(1, "task started"), 2: log_events(2, "task started")}
    ended = {n: {v["task"]: v for v in log_events(n, "task ended")} for n in (1, 2)}
    runs = {}
    for n in (1, 2):
        for v in started[n]:
            runs.setdefault(v["task"], []).append(n)
    for n in (1, 2):
        check(any(v["task"] in {t["taskName"] for ts_ in done.values() for t in ts_} for v in started[n]),
              f"process {n} ran no task: the load was not shared")
    for a, k, g, _ in subs:
        for t in done[g]:
            check(t["status"] == "done", f"{a} import {k}: {t['type']} ended {t['status']}: {t.get('exception')}")
            check(t["attempts"] == 1, f"{a} import {k}: {t['type']} ran {t['attempts']} times")
            if t["type"] != "dltar":
                who = runs.get(t["taskName"], [])
                check(len(who) == 1, f"{t['taskName']} ({t['type']}) was started by processes {who}: not exactly once")
    for a in apps:
        mine = sorted((s for s in subs if s[0] == a), key=lambda s: s[1])
        ids = [next(t["buildId"] for t in done[s[2]] if t["type"] == "mkraw") for s in mine]
        check(ids == [1, 2, 3, 4], f"{a}: build ids {ids} in submission order (expected 1..4)")
        deploy_end = []
        for s in mine:
            d = next(t for t in done[s[2]] if t["type"] == "deploy")
            line = ended[1].get(d["taskName"]) or ended[2].get(d["taskName"])
            check(line is not None, f"no 'task ended' log line for {d['taskName']}")
            deploy_end.append(ts(line))
        check(deploy_end == sorted(deploy_end), f"{a}: deploys ended out of submission order")
        app = call(url2, "GET", f"/be/v1/apps/{a}", token=token)["app"]
        check(app["iCurBuild"] == 4 and app["buildName"] == f"{a}-b3", f"{a}: current build {app['iCurBuild']} {app['buildName']}")
        check_published(moto, bucket, org, a, [1, 2, 3, 4])
        check_published(moto, depot, org, a, [1, 2, 3, 4], "depot/")
    print("phase 1: every import completed exactly once, one image per build on s3, per-app order kept")

    # Phase 2: larger imports; kill -9 whichever process is seen running one of their
    # tasks, and check that the other one takes it over after the lease and finishes.
    t1 = time.time()
    pids = {1: pid1, 2: int(os.environ["PID_2"])}
    urls = {1: url1, 2: url2}
    big = [(a, big_build(f"{a}-big", 1000 + i, 24)) for i, a in enumerate(apps[:3])]
    with cf.ThreadPoolExecutor(3) as ex:
        subs2 = list(ex.map(lambda ab: (ab[0],) + import_build(url2 if ab[0] != apps[1] else url1, token, ab[0], f"{ab[0]}-big", ab[1]), big))
    groups2 = {g for _, g, _ in subs2}
    names2 = set()
    for g in groups2:
        names2 |= {t["taskName"] for t in group_tasks(url2, token, g)}
    # The victim is an image or patch step: those run for seconds on a 24 MiB build. An
    # `mkraw` can end within milliseconds of its start (the upload was ingested while it
    # arrived), so the kill could land after its outcome was committed, leaving nothing to
    # take over.
    victim, deadline = None, time.time() + 90
    while victim is None:
        for n in (1, 2):
            seen_ended = {v["task"] for v in log_events(n, "task ended")}
            for v in log_events(n, "task started"):
                if v["task"] in names2 and v["task"] not in seen_ended and v.get("kind") in ("mkdxf", "mkpat"):
                    t = call(url2, "GET", f"/be/v1/tasks/{v['task']}", token=token)["task"]
                    if t["status"] == "running":
                        victim, dead = t, n
                        break
            if victim is not None:
                break
        if victim is None:
            check(time.time() < deadline, "no phase-2 task was seen running")
            time.sleep(0.02)
    os.kill(pids[dead], signal.SIGKILL)
    killed_at = time.time()
    alive = 3 - dead
    after = call(urls[alive], "GET", f"/be/v1/tasks/{victim['taskName']}", token=token)["task"]
    check(after["status"] == "running",
          f"phase 2: {victim['type']} {victim['taskName']} was {after['status']} right after the kill, "
          "not running: it ended before the kill landed, so there is nothing to take over")
    print(f"phase 2: killed process {dead} (pid {pids[dead]}) while it ran {victim['type']} {victim['taskName']}")
    # Generous: a loaded 2-core machine takes a minute per 24 MiB patch in a debug build.
    done2 = wait_groups(urls[alive], token, groups2, 400)
    for g, ts_ in done2.items():
        for t in ts_:
            check(t["status"] == "done", f"phase 2: {t['type']} {t['taskName']} ended {t['status']}: {t.get('exception')}")
            check(t["attempts"] == 1, f"phase 2: {t['type']} attempts {t['attempts']}")
    took = [v for v in log_events(alive, "task started") if v["task"] == victim["taskName"]]
    check(len(took) == 1, f"process {alive} started the killed task {len(took)} times")
    waited = ts(took[0]) - killed_at
    check(waited >= lease / 2 - 0.5, f"process {alive} took the task over {waited:.1f} s after the kill: before its lease ({lease} s) expired?")
    fin = [v for v in log_events(alive, "task ended") if v["task"] == victim["taskName"]]
    check(len(fin) == 1 and fin[0].get("status") == "done", f"process {alive} did not finish the killed task: {fin}")
    for a, g, _ in subs2:
        app = call(urls[alive], "GET", f"/be/v1/apps/{a}", token=token)["app"]
        check(app["iCurBuild"] == 5 and app["buildName"] == f"{a}-big", f"{a}: current build after phase 2: {app['iCurBuild']}")
        check_published(moto, bucket, org, a, [1, 2, 3, 4, 5])
    print(f"phase 2: process {alive} took the task over {waited:.1f} s after the kill (lease {lease} s) and finished "
          f"every import in {time.time() - t1:.1f} s")
    print(f"scale test passed in {time.time() - t0:.1f} s")


def percentile(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def bench():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--imports", type=int, default=40)
    ap.add_argument("--apps", type=int, default=8)
    ap.add_argument("--size", default="16M")
    ap.add_argument("--label", default="")
    a = ap.parse_args(sys.argv[2:])
    urls = [u for u in (os.environ.get("URL_1"), os.environ.get("URL_2")) if u]
    gen = os.environ["BENCH_BIN"]
    token = org_token(urls[0], "BenchCo")
    call(urls[0], "POST", "/be/v1/deployments", {"name": "local", "origin": {"type": "fs", "path": "site"}}, token=token)
    apps = [f"Bench{i}" for i in range(a.apps)]
    for x in apps:
        call(urls[0], "POST", "/be/v1/apps", {"name": x, "label": x, "maxBuilds": 5}, token=token)
    # Each app's builds are successive versions of one game: a generated tree, then each
    # next import its predecessor plus new files (rockit-bench mutate newfiles), as real
    # updates are (patches between unrelated trees would measure something else).
    tars = []
    for i in range(a.imports):
        d = os.path.join(WORK, "builds", f"g{i}")
        if not os.path.exists(d + ".tar"):
            prev = os.path.join(WORK, "builds", f"g{i - len(apps)}")
            if i < len(apps):
                subprocess.run([gen, "gen", d, "--size", a.size, "--seed", str(i + 1)], check=True, stderr=subprocess.DEVNULL)
            else:
                subprocess.run(["cp", "-a", prev, d], check=True)
                subprocess.run([gen, "mutate", d, "--scenario", "newfiles", "--seed", str(i + 1)], check=True, stderr=subprocess.DEVNULL)
            tar(d, f"g{i}")
        tars.append(os.path.join(WORK, "builds", f"g{i}.tar"))
    total_bytes = sum(os.path.getsize(t) for t in tars)
    print(f"{a.label}: {a.imports} builds ready, {total_bytes / 1e6:.0f} MB of tars; submitting", file=sys.stderr, flush=True)
    lock, submitted = threading.Lock(), {}

    def submit(i):
        app = apps[i % len(apps)]
        g, t = import_build(urls[i % len(urls)], token, app, f"b{i}", tars[i])
        with lock:
            submitted[g] = t

    t0 = time.time()
    # Everything at once, 8 clients; within an app in index order.
    with cf.ThreadPoolExecutor(len(apps)) as ex:
        list(ex.map(lambda app_i: [submit(i) for i in range(app_i, a.imports, len(apps))], range(len(apps))))
    ends = {}
    while len(ends) < a.imports:
        r = call(urls[0], "GET", "/be/v1/tasks?type=deploy&limit=500", token=token)["tasks"]
        now = time.time()
        for t in r:
            if t["status"] == "done" and t["taskGroup"] not in ends:
                ends[t["taskGroup"]] = now
            if t["status"] in ("error", "canceled"):
                raise Fail(f"import failed: {t}")
        if now - t0 > 3600:
            raise Fail("benchmark timed out")
        time.sleep(0.1)
    wall = max(ends.values()) - t0
    lat = [ends[g] - submitted[g] for g in ends]
    print(json.dumps({"label": a.label, "processes": len(urls), "imports": a.imports, "apps": a.apps, "size": a.size,
                      "tarBytes": total_bytes, "wallSeconds": round(wall, 1), "importsPerMinute": round(a.imports / wall * 60, 1),
                      "latencyP50": round(percentile(lat, 50), 1), "latencyP95": round(percentile(lat, 95), 1),
                      "MBps": round(total_bytes / wall / 1e6, 1)}))


if __name__ == "__main__":
    try:
        {"test": test, "bench": bench}[sys.argv[1]]()
    except Fail as e:
        print(f"SCALE TEST FAILED: {e}", file=sys.stderr)
        sys.exit(1)
