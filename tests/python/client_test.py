#!/usr/bin/env python3
"""Drives a bosun master with the official Kubernetes Python client (`pip install
kubernetes`) the way a user's program would: the typed CoreV1Api and AppsV1Api on
a namespace of its own, covering create, list, watch, patch (strategic merge, merge,
JSON patch), status, scale, replace and delete of a ConfigMap, a Pod and a
Deployment, and the API errors a program branches on (404, 409, 422).

The client deserializes every response into its generated models, which enforce
the upstream OpenAPI `required` lists: a response missing a required field fails
here exactly as it would fail a user.

Runs on both generations of the client: 37.x (pydantic models, `_content_type`)
and the older ones such as 31.x (which send `watch=True`).

Usage: client_test.py KUBECONFIG [--after-restart]. Prints one line per check;
exits 1 with the reason on the first failure (and deletes its namespace on the
way out). With --after-restart (against a master restarted since its last
writes) it checks only that a watch from a resourceVersion the master no longer
holds raises a 410 Expired ApiException, and that a watch from a fresh list works.
"""

import json
import os
import queue
import sys
import threading
import time
import traceback
import uuid

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

# How long any wait (a watch event, a deletion) may take before it is a failure.
DEADLINE = 30
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class CheckFailed(Exception):
    """A check did not hold; the message says what was expected and what came."""


def ok(what):
    print(f"ok   {what}", flush=True)


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


def api_error(fn, *args, **kwargs):
    """Calls fn, which must raise ApiException; returns (status, parsed body)."""
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        try:
            body = json.loads(e.body) if e.body else {}
        except ValueError:
            raise CheckFailed(f"error body is not JSON: {e.body!r}")
        return e.status, body
    raise CheckFailed(f"{fn.__name__} succeeded, an ApiException was expected")


def expect_error(what, code, reason, fn, *args, **kwargs):
    status, body = api_error(fn, *args, **kwargs)
    expect_eq(status, code, f"{what}: HTTP status")
    expect_eq(body.get("kind"), "Status", f"{what}: body kind")
    expect_eq(body.get("code"), code, f"{what}: Status.code")
    expect_eq(body.get("reason"), reason, f"{what}: Status.reason")
    expect_eq(body.get("status"), "Failure", f"{what}: Status.status")
    expect(body.get("message"), f"{what}: Status.message is empty")
    ok(f"{what} -> {code} {reason}: {body['message']}")
    return body


def wait_gone(what, read, *args):
    """Polls read(*args) until it raises a 404."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            read(*args)
        except ApiException as e:
            if e.status == 404:
                ok(f"{what} is gone (404)")
                return
            raise
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what} still exists after {DEADLINE}s")
        time.sleep(0.1)


class Watcher:
    """A watch in a thread of its own, started from a list's resourceVersion, that
    records every event so the main thread can wait for the ones it caused."""

    def __init__(self, list_fn, namespace, resource_version, bookmarks=False):
        self.events = queue.Queue()
        self.seen = []
        self.error = None
        self.w = watch.Watch()
        self.thread = threading.Thread(
            target=self._run, args=(list_fn, namespace, resource_version, bookmarks), daemon=True
        )
        self.thread.start()

    def _run(self, list_fn, namespace, resource_version, bookmarks):
        try:
            for ev in self.w.stream(
                list_fn,
                namespace,
                resource_version=resource_version,
                allow_watch_bookmarks=bookmarks,
                timeout_seconds=DEADLINE * 2,
                _request_timeout=DEADLINE * 2 + 10,
            ):
                self.events.put(ev)
        except Exception as e:  # reported by wait_for in the main thread
            self.error = e
        finally:
            self.events.put(None)

    def wait_for(self, kind, name, check=None):
        """Waits for a `kind` event about object `name` (and, if given, whose
        object satisfies check); returns the event's typed object."""
        for t, n, obj in self.seen:
            if t == kind and n == name and (check is None or check(obj)):
                return obj
        deadline = time.monotonic() + DEADLINE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no {kind} event for {name} in {DEADLINE}s; saw {self.summary()}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                self.events.put(None)
                raise CheckFailed(
                    f"watch ended before a {kind} event for {name} (error: {self.error!r}); "
                    f"saw {self.summary()}"
                )
            obj = ev["object"]
            n = obj.metadata.name
            self.seen.append((ev["type"], n, obj))
            if ev["type"] == kind and n == name and (check is None or check(obj)):
                return obj

    def summary(self):
        return [(t, n) for t, n, _ in self.seen]

    def stop(self):
        self.w.stop()


def patch_as(content_type, fn, *args, **kwargs):
    """Calls a patch method with the given Content-Type. Clients since about 32 take
    `_content_type`; older ones choose from the body (a list: JSON patch, an
    object: strategic merge), so there the header is forced for this one call."""
    try:
        return fn(*args, _content_type=content_type, **kwargs)
    except TypeError as e:
        if "_content_type" not in str(e):
            raise
    api = fn.__self__.api_client
    api.set_default_header("Content-Type", content_type)
    try:
        return fn(*args, **kwargs)
    finally:
        api.default_headers.pop("Content-Type", None)


def retry_conflicts(read, change, replace, attempts=20):
    """Read, change and replace until no 409 Conflict: controllers write too."""
    for _ in range(attempts - 1):
        obj = read()
        change(obj)
        try:
            return replace(obj)
        except ApiException as e:
            if e.status != 409:
                raise
    obj = read()
    change(obj)
    return replace(obj)


def rv_of(obj):
    return int(obj.metadata.resource_version)


def check_namespace(core, ns):
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    expect_eq(created.metadata.name, ns, "created namespace name")
    expect(created.metadata.uid, "namespace has a uid")
    got = core.read_namespace(ns)
    expect_eq(got.status.phase, "Active", "namespace phase")
    names = [n.metadata.name for n in core.list_namespace().items]
    expect(ns in names and "default" in names, f"namespace list {names} has {ns} and default")
    ok(f"namespace {ns} created, read (Active) and listed")


def check_errors(core, ns):
    expect_error("read a missing pod", 404, "NotFound", core.read_namespaced_pod, "nope", ns)
    body = expect_error("read a pod in a missing namespace", 404, "NotFound",
                        core.read_namespaced_pod, "nope", ns + "-missing")
    expect(body.get("message"), "404 has a message")
    expect_error("pod without containers", 422, "Invalid", core.create_namespaced_pod, ns,
                 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"},
                  "spec": {"containers": []}})
    body = expect_error("pod with an invalid name", 422, "Invalid", core.create_namespaced_pod, ns,
                        pod_manifest("Bad_Name!"))
    details = body.get("details", {})
    expect_eq(details.get("name"), "Bad_Name!", "422 details.name")
    expect_eq(details.get("kind"), "Pod", "422 details.kind")
    fields = [c.get("field") for c in details.get("causes", [])]
    expect("metadata.name" in fields, f"422 details.causes {fields} name metadata.name")
    expect_error("configmap with an invalid name", 422, "Invalid", core.create_namespaced_config_map,
                 ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="-bad-")))


def check_configmap(core, ns):
    start = core.list_namespaced_config_map(ns)
    expect(isinstance(start.items, list), "configmap list has items")
    w = Watcher(core.list_namespaced_config_map, ns, start.metadata.resource_version)

    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="py-cm", labels={"app": "py", "tier": "conf"}),
        data={"a": "1", "keep": "yes"},
    )
    created = core.create_namespaced_config_map(ns, cm)
    expect_eq(created.data, {"a": "1", "keep": "yes"}, "created configmap data")
    expect(created.metadata.uid and created.metadata.creation_timestamp, "uid and creationTimestamp set")
    expect(rv_of(created) > int(start.metadata.resource_version), "resourceVersion advanced past the list")
    ok(f"configmap created (rv {created.metadata.resource_version})")
    w.wait_for("ADDED", "py-cm")
    ok("watch: ADDED configmap")

    expect_error("duplicate configmap", 409, "AlreadyExists", core.create_namespaced_config_map, ns, cm)

    got = core.read_namespaced_config_map("py-cm", ns)
    expect_eq(got.metadata.uid, created.metadata.uid, "read configmap uid")
    items = core.list_namespaced_config_map(ns, label_selector="app=py,tier in (conf)").items
    expect_eq([c.metadata.name for c in items], ["py-cm"], "label-selected configmaps")
    items = core.list_namespaced_config_map(ns, label_selector="app=other").items
    expect_eq(items, [], "configmaps with a non-matching selector")
    items = core.list_namespaced_config_map(ns, field_selector="metadata.name=py-cm").items
    expect_eq(len(items), 1, "field-selected configmaps")
    everywhere = core.list_config_map_for_all_namespaces(label_selector="app=py").items
    expect(any(c.metadata.namespace == ns for c in everywhere), "configmap listed across namespaces")
    ok("configmap read and listed by label, set and field selectors")

    # Merge patch: maps merge, null deletes a key.
    patched = patch_as(
        MERGE_PATCH, core.patch_namespaced_config_map,
        "py-cm", ns, {"data": {"b": "2", "a": None}, "metadata": {"labels": {"patched": "merge"}}},
    )
    expect_eq(patched.data, {"b": "2", "keep": "yes"}, "data after merge patch")
    expect_eq(patched.metadata.labels.get("patched"), "merge", "label after merge patch")
    expect(rv_of(patched) > rv_of(created), "merge patch bumps resourceVersion")
    ok("configmap merge patch (add, delete with null)")
    w.wait_for("MODIFIED", "py-cm", lambda o: (o.data or {}).get("b") == "2")
    ok("watch: MODIFIED configmap after merge patch")

    # JSON patch: a list of operations.
    patched = patch_as(
        JSON_PATCH, core.patch_namespaced_config_map,
        "py-cm", ns, [{"op": "replace", "path": "/data/b", "value": "3"},
                      {"op": "add", "path": "/data/c", "value": "4"}],
    )
    expect_eq(patched.data, {"b": "3", "c": "4", "keep": "yes"}, "data after JSON patch")
    ok("configmap JSON patch")

    # Replace with the current resourceVersion, then again with the stale one.
    current = core.read_namespaced_config_map("py-cm", ns)
    stale_rv = current.metadata.resource_version
    current.data = {"replaced": "true"}
    replaced = core.replace_namespaced_config_map("py-cm", ns, current)
    expect_eq(replaced.data, {"replaced": "true"}, "data after replace")
    expect(rv_of(replaced) > int(stale_rv), "replace bumps resourceVersion")
    ok("configmap replaced")
    current.data = {"lost": "update"}
    current.metadata.resource_version = stale_rv
    body = expect_error("replace with a stale resourceVersion", 409, "Conflict",
                        core.replace_namespaced_config_map, "py-cm", ns, current)
    expect("the object has been modified" in body["message"], "Conflict message")
    expect_eq(core.read_namespaced_config_map("py-cm", ns).data, {"replaced": "true"},
              "data after the refused replace")

    core.delete_namespaced_config_map("py-cm", ns)
    wait_gone("configmap py-cm", core.read_namespaced_config_map, "py-cm", ns)
    w.wait_for("DELETED", "py-cm")
    ok("watch: DELETED configmap")
    w.stop()

    # A second watch replays the whole history from the first list's resourceVersion.
    kinds = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, ns,
                                   resource_version=start.metadata.resource_version,
                                   timeout_seconds=2):
        if ev["object"].metadata.name == "py-cm":
            kinds.append(ev["type"])
            if ev["type"] == "DELETED":
                break
    expect(kinds and kinds[0] == "ADDED" and kinds[-1] == "DELETED" and "MODIFIED" in kinds,
           f"replayed events {kinds} go ADDED, MODIFIED..., DELETED")
    ok(f"watch from the list's resourceVersion replays {len(kinds)} events in order")


def check_paging_and_idle_watch(core, ns):
    for i in range(5):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"page-{i}", labels={"page": "yes", "idx": str(i)}),
            data={"i": str(i)}))
    names, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(ns, label_selector="page=yes", limit=2, _continue=token)
        expect(len(page.items) <= 2, f"page of {len(page.items)} items with limit=2")
        names += [c.metadata.name for c in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        expect(pages < 10, "paging ends")
    expect_eq(names, [f"page-{i}" for i in range(5)], "configmaps paged by 2")
    expect_eq(pages, 3, "pages for 5 items by 2")
    ok("list paged with limit=2 and continue tokens: 3 pages, 5 items in order")

    any_rv = core.list_namespaced_config_map(ns, resource_version="0", label_selector="page=yes")
    expect_eq(len(any_rv.items), 5, "list with resourceVersion=0")
    ok("list with resourceVersion=0")

    # A watch with a timeout ends by itself when nothing happens.
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    began = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv,
                                       label_selector="page=yes", timeout_seconds=1,
                                       _request_timeout=DEADLINE))
    took = time.monotonic() - began
    expect_eq([e["type"] for e in events], [], "events on an idle watch")
    expect(took < 10, f"idle watch with timeoutSeconds=1 took {took:.1f}s to end")
    ok(f"idle watch with timeoutSeconds=1 ended after {took:.1f}s without events")

    status, body = api_error(core.list_namespaced_config_map, ns, label_selector="a in (b")
    expect_eq(status, 400, "bad label selector status")
    expect_eq(body.get("reason"), "BadRequest", "bad label selector reason")
    expect_eq(body.get("message", "").count("unable to parse requirement"), 1,
              f"upstream wording, said once: {body.get('message')!r}")
    ok(f"bad label selector -> 400 BadRequest: {body.get('message')}")
    # Delete a collection by selector.
    core.delete_collection_namespaced_config_map(ns, label_selector="page=yes,idx in (3,4)")
    names = [c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector="page=yes").items]
    expect_eq(names, ["page-0", "page-1", "page-2"], "configmaps after deleting a collection")
    ok("delete collection by label selector removed 2 of 5")

    # A watch without a resourceVersion starts with an ADDED event per existing object.
    began = time.monotonic()
    initial = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, ns, label_selector="page=yes", timeout_seconds=2,
        _request_timeout=DEADLINE)]
    expect_eq(sorted(initial), [("ADDED", f"page-{i}") for i in range(3)], "initial watch events")
    expect(time.monotonic() - began < 10, "watch with timeoutSeconds=2 ended")
    ok("watch without resourceVersion: ADDED for each of the 3 existing configmaps")

    gen = core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(generate_name="gen-")))
    expect(gen.metadata.name.startswith("gen-") and len(gen.metadata.name) > 4,
           f"generated name {gen.metadata.name!r}")
    ok(f"generateName gave {gen.metadata.name}")

    # Server-side apply: creates when absent, then updates the applier's fields.
    applied = patch_as(APPLY_PATCH, core.patch_namespaced_config_map,
        "applied", ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"},
                        "data": {"x": "1"}},
        field_manager="py-test")
    expect_eq(applied.data, {"x": "1"}, "data after a creating server-side apply")
    applied = patch_as(APPLY_PATCH, core.patch_namespaced_config_map,
        "applied", ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"},
                        "data": {"x": "2", "y": "3"}},
        field_manager="py-test")
    expect_eq(applied.data, {"x": "2", "y": "3"}, "data after an updating server-side apply")
    ok("server-side apply created then updated a configmap")
    # What is left stays behind for the namespace deletion to remove.


def pod_manifest(name, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]},
                {"name": "side", "image": "busybox:1.36", "command": ["sleep", "3600"]},
            ],
        },
    }


def check_pod(core, ns):
    start = core.list_namespaced_pod(ns)
    expect_eq(start.items, [], "pods in a new namespace")
    w = Watcher(core.list_namespaced_pod, ns, start.metadata.resource_version)

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-pod", labels={"app": "py"}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(name="main", image="busybox:1.36", command=["sleep", "3600"],
                                   env=[client.V1EnvVar(name="A", value="1")]),
                client.V1Container(name="side", image="busybox:1.36", command=["sleep", "3600"]),
            ],
            termination_grace_period_seconds=0,
        ),
    )
    created = core.create_namespaced_pod(ns, pod)
    expect_eq(created.metadata.namespace, ns, "pod namespace")
    expect_eq([c.name for c in created.spec.containers], ["main", "side"], "pod containers")
    expect(created.status is not None and created.status.phase == "Pending",
           f"new pod phase is Pending (got {created.status and created.status.phase})")
    ok("pod created (typed model), phase Pending")
    w.wait_for("ADDED", "py-pod")
    ok("watch: ADDED pod")

    expect_error("duplicate pod", 409, "AlreadyExists", core.create_namespaced_pod, ns, pod)

    status = core.read_namespaced_pod_status("py-pod", ns)
    expect(status.status is not None and status.status.phase, "pod status read")
    items = core.list_namespaced_pod(ns, label_selector="app=py").items
    expect_eq([p.metadata.name for p in items], ["py-pod"], "label-selected pods")
    expect(any(p.metadata.name == "py-pod" for p in core.list_pod_for_all_namespaces().items),
           "pod listed across namespaces")
    ok("pod status read, pods listed")

    # Strategic merge patch: containers merge by name, so patching one keeps the other.
    patched = core.patch_namespaced_pod("py-pod", ns, {
        "metadata": {"labels": {"patched": "smp"}},
        "spec": {"containers": [{"name": "side", "image": "busybox:1.37"}]},
    })
    images = {c.name: c.image for c in patched.spec.containers}
    expect_eq(images, {"main": "busybox:1.36", "side": "busybox:1.37"}, "images after strategic merge patch")
    main = next(c for c in patched.spec.containers if c.name == "main")
    expect_eq([(e.name, e.value) for e in main.env or []], [("A", "1")], "untouched container keeps env")
    expect_eq(patched.metadata.labels, {"app": "py", "patched": "smp"}, "labels after strategic merge patch")
    ok("pod strategic merge patch merges containers by name")
    w.wait_for("MODIFIED", "py-pod", lambda o: (o.metadata.labels or {}).get("patched") == "smp")
    ok("watch: MODIFIED pod")

    # Strategic merge null removes a label; a pod's command is immutable.
    patched = core.patch_namespaced_pod("py-pod", ns, {"metadata": {"labels": {"patched": None}}})
    expect_eq(patched.metadata.labels, {"app": "py"}, "labels after a strategic merge null")
    body = expect_error("change a running pod's command", 422, "Invalid", core.patch_namespaced_pod,
                        "py-pod", ns, {"spec": {"containers": [{"name": "main", "command": ["true"]}]}})
    expect_eq(body.get("details", {}).get("kind"), "Pod", "422 details.kind")

    current = core.read_namespaced_pod("py-pod", ns)
    stale_rv = current.metadata.resource_version
    current.metadata.annotations = {"replaced": "yes"}
    replaced = core.replace_namespaced_pod("py-pod", ns, current)
    expect_eq(replaced.metadata.annotations, {"replaced": "yes"}, "annotations after replace")
    current.metadata.resource_version = stale_rv
    current.metadata.annotations = {"replaced": "stale"}
    expect_error("replace a pod with a stale resourceVersion", 409, "Conflict",
                 core.replace_namespaced_pod, "py-pod", ns, current)

    deleted = core.delete_namespaced_pod("py-pod", ns, body=client.V1DeleteOptions(grace_period_seconds=0))
    expect(isinstance(deleted, client.V1Pod), f"delete answers the pod, got {type(deleted).__name__}")
    expect_eq(deleted.metadata.name, "py-pod", "deleted pod name")
    wait_gone("pod py-pod", core.read_namespaced_pod, "py-pod", ns)
    w.wait_for("DELETED", "py-pod")
    ok("watch: DELETED pod")
    w.stop()
    expect_error("delete a missing pod", 404, "NotFound", core.delete_namespaced_pod, "py-pod", ns)


def deployment(name, replicas):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="web", image="busybox:1.36", command=["sleep", "3600"],
                                       ports=[client.V1ContainerPort(container_port=8080)]),
                    client.V1Container(name="log", image="busybox:1.36", command=["sleep", "3600"]),
                ]),
            ),
        ),
    )


def check_deployment(apps, ns):
    start = apps.list_namespaced_deployment(ns)
    expect_eq(start.items, [], "deployments in a new namespace")
    w = Watcher(apps.list_namespaced_deployment, ns, start.metadata.resource_version, bookmarks=True)

    created = apps.create_namespaced_deployment(ns, deployment("py-deploy", 2))
    expect_eq(created.spec.replicas, 2, "created deployment replicas")
    expect_eq(created.metadata.generation, 1, "new deployment generation")
    expect(created.spec.strategy is not None and created.spec.strategy.type == "RollingUpdate",
           "deployment strategy defaulted to RollingUpdate")
    ok("deployment created, defaults filled")
    w.wait_for("ADDED", "py-deploy")
    ok("watch: ADDED deployment")

    expect_error("duplicate deployment", 409, "AlreadyExists",
                 apps.create_namespaced_deployment, ns, deployment("py-deploy", 1))
    expect_error("read a missing deployment", 404, "NotFound",
                 apps.read_namespaced_deployment, "nope", ns)

    st = apps.read_namespaced_deployment_status("py-deploy", ns)
    expect(st.status is not None, "deployment status present")
    ok(f"deployment status read (observedGeneration {st.status.observed_generation})")

    # The status subresource changes status only; the main resource ignores status.
    st = patch_as(MERGE_PATCH, apps.patch_namespaced_deployment_status, "py-deploy", ns, {"status": {
        "observedGeneration": 1, "replicas": 2, "unavailableReplicas": 2,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                        "message": "Deployment does not have minimum availability."}]}})
    expect_eq(st.status.replicas, 2, "status.replicas after a status patch")
    expect_eq([(c.type, c.status) for c in st.status.conditions], [("Available", "False")], "conditions")
    expect_eq(st.spec.replicas, 2, "spec after a status patch")
    expect_eq(st.metadata.generation, 1, "generation after a status patch")
    after = patch_as(MERGE_PATCH, apps.patch_namespaced_deployment, "py-deploy", ns,
                     {"status": {"replicas": 7}})
    # The deployment controller owns the status now: only check 7 was ignored.
    expect(after.status.replicas != 7, "status.replicas ignored through the main resource")
    ok("deployment status patched through /status; ignored through the main resource")

    # status.replicas counts the pods the controllers created: wait for both.
    deadline = time.time() + 10
    scale = apps.read_namespaced_deployment_scale("py-deploy", ns)
    while scale.status.replicas != 2 and time.time() < deadline:
        time.sleep(0.1)
        scale = apps.read_namespaced_deployment_scale("py-deploy", ns)
    expect_eq(scale.kind, "Scale", "scale kind")
    expect_eq(scale.spec.replicas, 2, "scale spec.replicas")
    expect_eq(scale.metadata.name, "py-deploy", "scale name")
    expect_eq(scale.status.replicas, 2, "scale status.replicas")
    expect_eq(scale.status.selector, "app=py-deploy", "scale status.selector")
    ok("deployment scale read (autoscaling/v1 Scale, 2 replicas)")

    # Strategic merge patch on the template: containers merge by name.
    patched = apps.patch_namespaced_deployment("py-deploy", ns, {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "busybox:1.37"}]}}},
    })
    cs = {c.name: c for c in patched.spec.template.spec.containers}
    expect_eq(sorted(cs), ["log", "web"], "containers after strategic merge patch")
    expect_eq(cs["web"].image, "busybox:1.37", "patched image")
    expect_eq(cs["web"].command, ["sleep", "3600"], "patched container keeps its command")
    expect_eq([p.container_port for p in cs["web"].ports or []], [8080], "patched container keeps its ports")
    expect_eq(cs["log"].image, "busybox:1.36", "other container untouched")
    expect_eq(patched.metadata.generation, 2, "generation after a spec change")
    ok("deployment strategic merge patch (set image), generation 2")
    w.wait_for("MODIFIED", "py-deploy",
               lambda o: any(c.image == "busybox:1.37" for c in o.spec.template.spec.containers))
    ok("watch: MODIFIED deployment after strategic merge patch")

    scale = apps.patch_namespaced_deployment_scale("py-deploy", ns, {"spec": {"replicas": 3}})
    expect_eq(scale.spec.replicas, 3, "scale after patch")
    expect_eq(apps.read_namespaced_deployment("py-deploy", ns).spec.replicas, 3,
              "deployment replicas after scale patch")
    scale = patch_as(MERGE_PATCH, apps.patch_namespaced_deployment_scale, "py-deploy", ns,
                     {"spec": {"replicas": 4}})
    expect_eq(scale.spec.replicas, 4, "scale after merge patch")
    # The controllers write the deployment's status meanwhile, so a replace may
    # meet a newer resourceVersion: read again and retry, as any client must.
    scale = retry_conflicts(lambda: apps.read_namespaced_deployment_scale("py-deploy", ns),
                            lambda s: setattr(s.spec, "replicas", 1),
                            lambda s: apps.replace_namespaced_deployment_scale("py-deploy", ns, s))
    expect_eq(scale.spec.replicas, 1, "scale after replace")
    expect_eq(apps.read_namespaced_deployment("py-deploy", ns).spec.replicas, 1,
              "deployment replicas after scale replace")
    ok("deployment scale patched (strategic, merge) and replaced: 3, 4, 1")
    w.wait_for("MODIFIED", "py-deploy", lambda o: o.spec.replicas == 1)
    ok("watch: MODIFIED deployment after scale")

    seen = []

    def replace_labels_and_image(d):
        seen.append(d)
        d.metadata.labels["replaced"] = "yes"
        d.spec.template.spec.containers[1].image = "busybox:1.37"

    replaced = retry_conflicts(lambda: apps.read_namespaced_deployment("py-deploy", ns),
                               replace_labels_and_image,
                               lambda d: apps.replace_namespaced_deployment("py-deploy", ns, d))
    current = seen[-1]
    stale_rv = current.metadata.resource_version
    expect_eq(replaced.metadata.labels.get("replaced"), "yes", "labels after replace")
    expect(all(c.image == "busybox:1.37" for c in replaced.spec.template.spec.containers),
           "images after replace")
    current.metadata.resource_version = stale_rv
    expect_error("replace a deployment with a stale resourceVersion", 409, "Conflict",
                 apps.replace_namespaced_deployment, "py-deploy", ns, current)
    ok("deployment replaced")

    expect_error("change a deployment's selector", 422, "Invalid", apps.patch_namespaced_deployment,
                 "py-deploy", ns, {"spec": {"selector": {"matchLabels": {"app": "py-deploy", "x": "y"}},
                                            "template": {"metadata": {"labels": {"x": "y"}}}}})

    bad = deployment("py-bad", 1)
    bad.spec.selector = client.V1LabelSelector(match_labels={"app": "other"})
    expect_error("deployment whose selector does not match its template", 422, "Invalid",
                 apps.create_namespaced_deployment, ns, bad)

    apps.delete_namespaced_deployment("py-deploy", ns, body=client.V1DeleteOptions(
        propagation_policy="Background"))
    wait_gone("deployment py-deploy", apps.read_namespaced_deployment, "py-deploy", ns)
    w.wait_for("DELETED", "py-deploy")
    ok("watch: DELETED deployment")
    w.stop()

    # Foreground deletion, as the client's own deployment example deletes: the
    # object stays, marked, with the garbage collector's finalizer until its
    # dependents are gone. Removing the last finalizer (as the collector does, or
    # as done here when no collector was quicker) completes the deletion.
    apps.create_namespaced_deployment(ns, deployment("py-fg", 1))
    apps.delete_namespaced_deployment("py-fg", ns, body=client.V1DeleteOptions(
        propagation_policy="Foreground", grace_period_seconds=5))
    try:
        marked = apps.read_namespaced_deployment("py-fg", ns)
        expect(marked.metadata.deletion_timestamp is not None,
               "foreground-deleted deployment has a deletionTimestamp")
        expect("foregroundDeletion" in (marked.metadata.finalizers or []),
               f"finalizers {marked.metadata.finalizers} hold foregroundDeletion")
        ok("foreground delete marks the deployment (deletionTimestamp, foregroundDeletion finalizer)")
        patch_as(MERGE_PATCH, apps.patch_namespaced_deployment, "py-fg", ns,
                 {"metadata": {"finalizers": None}})
    except ApiException as e:
        if e.status != 404:
            raise
    wait_gone("foreground-deleted deployment py-fg", apps.read_namespaced_deployment, "py-fg", ns)


def check_namespace_deletion(core, apps, ns):
    apps.create_namespaced_deployment(ns, deployment("left-behind", 1))
    expect(len(core.list_namespaced_config_map(ns).items) >= 5,
           "configmaps left before deleting the namespace")
    core.delete_namespace(ns)
    try:
        terminating = core.read_namespace(ns)
        expect(terminating.metadata.deletion_timestamp is not None,
               "deleted namespace has a deletionTimestamp")
        expect_eq(terminating.status.phase, "Terminating", "deleted namespace phase")
        ok("namespace deletion started: Terminating")
    except ApiException as e:
        expect_eq(e.status, 404, "namespace read right after delete")
    wait_gone(f"namespace {ns}", core.read_namespace, ns)
    sel = f"metadata.namespace={ns}"
    left = core.list_config_map_for_all_namespaces(field_selector=sel).items
    left += apps.list_deployment_for_all_namespaces(field_selector=sel).items
    expect_eq([o.metadata.name for o in left], [], "objects left in the deleted namespace")
    ok("namespace contents were removed with it")


def check_after_restart(core):
    current = core.list_namespace()
    expect(int(current.metadata.resource_version) > 1, "the store kept its revisions")
    try:
        events = list(watch.Watch().stream(core.list_namespace, resource_version="1", timeout_seconds=5,
                                           _request_timeout=DEADLINE))
        raise CheckFailed(f"watch from resourceVersion 1 after a restart gave {len(events)} events, not 410")
    except ApiException as e:
        expect_eq(e.status, 410, "status of a watch from a resourceVersion no longer held")
        expect("Expired" in str(e.reason), f"reason {e.reason!r} says Expired")
        ok(f"watch from an expired resourceVersion raised {e.status}: {e.reason}")

    name = f"py-restart-{os.getpid()}"
    start = core.list_namespaced_config_map("default")
    w = Watcher(core.list_namespaced_config_map, "default", start.metadata.resource_version)
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
    w.wait_for("ADDED", name)
    core.delete_namespaced_config_map(name, "default")
    w.wait_for("DELETED", name)
    w.stop()
    ok("watch from a fresh list after the restart: ADDED, DELETED")


def main():
    args = sys.argv[1:]
    after_restart = "--after-restart" in args
    args = [a for a in args if a != "--after-restart"]
    if len(args) != 1:
        print("usage: client_test.py KUBECONFIG [--after-restart]", file=sys.stderr)
        return 64
    config.load_kube_config(config_file=args[0])
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    version = client.VersionApi().get_code()
    ok(f"version {version.git_version}")
    if after_restart:
        try:
            check_after_restart(core)
        except Exception as e:
            print(f"FAIL {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            return 1
        print("PASS all checks", flush=True)
        return 0

    ns = f"py-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    check_namespace(core, ns)
    try:
        check_errors(core, ns)
        check_configmap(core, ns)
        check_pod(core, ns)
        check_paging_and_idle_watch(core, ns)
        check_deployment(apps, ns)
        check_namespace_deletion(core, apps, ns)
    except CheckFailed as e:
        print(f"FAIL {e}", flush=True)
        cleanup(core, ns)
        return 1
    except ApiException as e:
        print(f"FAIL unexpected API error {e.status} {e.reason}: {e.body}", flush=True)
        traceback.print_exc()
        cleanup(core, ns)
        return 1
    except Exception as e:  # a response the client could not deserialize, among others
        print(f"FAIL {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        cleanup(core, ns)
        return 1
    print("PASS all checks", flush=True)
    return 0


def cleanup(core, ns):
    try:
        core.delete_namespace(ns)
    except Exception:
        pass


if __name__ == "__main__":
    sys.exit(main())
