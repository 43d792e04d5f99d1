"""Exec and port-forward through the official Kubernetes Python client (37.x) against Skiff.

Usage: pods_e2e.py <kubeconfig> <namespace> <pod> <container> <port>. The pod must be running
with a shell in <container> and an HTTP server on <port> answering GET / with
"hello from skiff httpd". Exits non-zero with a message on the first failure.
"""
import sys

from kubernetes import client, config
from kubernetes.stream import portforward, stream


def main():
    kubeconfig, ns, pod, container, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()

    # Exec: stdout and stderr apart, the exit code from the status channel.
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        container=container,
        command=["sh", "-c", "echo out-from-python; echo err-from-python >&2; exit 3"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=30)
    out, err = resp.read_stdout(timeout=1) or "", resp.read_stderr(timeout=1) or ""
    code = resp.returncode
    resp.close()
    assert "out-from-python" in out, repr(out)
    assert "err-from-python" in err, repr(err)
    assert code == 3, code

    # Exec with stdin.
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        container=container,
        command=["sh", "-c", "read line; echo \"got $line\""],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("from-python-stdin\n")
    resp.run_forever(timeout=30)
    out = resp.read_stdout(timeout=1) or ""
    code = resp.returncode
    resp.close()
    assert "got from-python-stdin" in out, repr(out)
    assert code == 0, code

    # Port-forward: an HTTP request through the forwarded socket.
    pf = portforward(core.connect_get_namespaced_pod_portforward, pod, ns, ports=str(port))
    sock = pf.socket(port)
    sock.settimeout(30)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"hello from skiff httpd" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    error = pf.error(port)
    pf.close()
    text = data.decode("utf-8", "replace")
    assert text.startswith("HTTP/1."), repr(text)
    assert "hello from skiff httpd" in text, repr(text)
    assert error is None, error
    print("python pods e2e: ok")


if __name__ == "__main__":
    main()
