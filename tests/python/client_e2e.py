"""End-to-end use of Skiff through the official Kubernetes Python client (37.x).

Usage: client_e2e.py <kubeconfig> <namespace>. Exits non-zero with a message on the first
failure. Covers CRUD, a patch with a dict (strategic merge patch: a Service's ports merge by
port, giving 2 ports), list with a label selector, and a watch that sees a create, an update and
a delete.
"""
import sys
import threading

from kubernetes import client, config, watch


def main():
    kubeconfig, ns = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    # CRUD on a ConfigMap (POST without Content-Type from this client).
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"a": "1"})
    created = core.create_namespaced_config_map(ns, cm)
    assert created.metadata.uid, "no uid"
    got = core.read_namespaced_config_map("py", ns)
    assert got.data == {"a": "1"}, got.data
    got.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("py", ns, got)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    patched = core.patch_namespaced_config_map("py", ns, {"data": {"c": "3"}})
    assert patched.data == {"a": "1", "b": "2", "c": "3"}, patched.data
    listed = core.list_namespaced_config_map(ns, label_selector="from=python")
    assert [i.metadata.name for i in listed.items] == ["py"], listed.items

    # A dict patch is a strategic merge patch: ports merge by their port number.
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(name="http", port=80, target_port=8080)]),
    )
    core.create_namespaced_service(ns, svc)
    merged = core.patch_namespaced_service("web", ns, {"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}})
    ports = sorted(p.port for p in merged.spec.ports)
    assert ports == [80, 443], ports
    assert merged.spec.cluster_ip, "no ClusterIP allocated"

    # A watch sees a create, an update and a delete, in order.
    start_rv = core.list_namespaced_config_map(ns).metadata.resource_version
    events = []
    done = threading.Event()

    def watcher():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=start_rv, timeout_seconds=20):
            if ev["object"].metadata.name == "watched":
                events.append(ev["type"])
            if len(events) >= 3:
                w.stop()
        done.set()

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"k": "v"}))
    core.patch_namespaced_config_map("watched", ns, {"data": {"k": "v2"}})
    core.delete_namespaced_config_map("watched", ns)
    done.wait(25)
    assert events == ["ADDED", "MODIFIED", "DELETED"], events

    # Errors come back as ApiException with the Kubernetes status code.
    try:
        core.read_namespaced_config_map("missing", ns)
        raise AssertionError("reading a missing object succeeded")
    except client.exceptions.ApiException as e:
        assert e.status == 404, e.status

    core.delete_namespaced_config_map("py", ns)
    print("python client e2e: ok")


if __name__ == "__main__":
    main()
