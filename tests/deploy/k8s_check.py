"""Checks the Kubernetes manifests of live/deploy/k8s/ (run by k8s_test.sh in the test venv).

1. Every manifest validates against the official Kubernetes schemas, offline and strict
   (unknown fields refused), with kubernetes-validate, for two Kubernetes versions.
2. The ServiceMonitor validates against the vendored CRD's openAPIV3Schema
   (tests/deploy/schemas/, source named in its header) with jsonschema, plus a strict
   unknown-field walk (structural schemas allow none unless x-kubernetes-preserve-unknown-fields).
3. Self-checks: a manifest with an unknown field and a ServiceMonitor with a wrong type must
   fail, so a validator that passes everything fails this test.
4. The contract: probes on /readyz and /healthz (head: port 8265, node: --health-port) over
   HTTPS with --tls-dir, preStop `orrery stop`, Secrets and the ConfigMap mounted, the worker
   group's replicas / HPA bounds / CPUs equal to the autoscaler ConfigMap's node type.
Writes the head's, the worker's and the Job's command lines to OUT_DIR/command{0,1,2}.txt (one
word per line, $(VAR)s resolved as in the pod), the head's and worker's preStop commands
(prestop{0,1}.txt) and probes (probes{0,1}.txt: "path port scheme") for the local run, and the ConfigMap's autoscaler.yaml to OUT_DIR/autoscaler.yaml.
Usage: python k8s_check.py SOURCE_DIR OUT_DIR
"""
import copy
import os
import subprocess
import sys

import jsonschema
import yaml

K8S_VERSIONS = ["1.29.0", "1.37.0"]  # the oldest still common in clouds; the newest bundled
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def kubernetes_validate(files, version):
    """(ok, output) of kubernetes-validate --strict on `files` for one Kubernetes version."""
    exe = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    p = subprocess.run([exe, "--strict", "--no-warn", "-k", version, *files],
                       capture_output=True, text=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def unknown_fields(obj, schema, where="$"):
    """Fields of `obj` its structural schema does not declare (what the API server prunes)."""
    out = []
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return out
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for k, v in obj.items():
            if props is not None and k in props:
                out += unknown_fields(v, props[k], f"{where}.{k}")
            elif isinstance(extra, dict):
                out += unknown_fields(v, extra, f"{where}.{k}")
            elif props is not None:
                out.append(f"{where}.{k}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            out += unknown_fields(v, schema["items"], f"{where}[{i}]")
    return out


def servicemonitor_errors(doc, crd):
    version = doc["apiVersion"].split("/")[1]
    schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]
                  if v["name"] == version)
    if doc["kind"] != crd["spec"]["names"]["kind"]:
        return [f"kind {doc['kind']} is not {crd['spec']['names']['kind']}"]
    errs = [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    # metadata is the generic ObjectMeta (the CRD leaves it open); the rest must be declared.
    body = {k: v for k, v in doc.items() if k != "metadata"}
    errs += [f"unknown field {f}" for f in unknown_fields(body, schema)]
    return errs


def container(doc):
    spec = doc["spec"]["template"]["spec"] if doc["kind"] in ("Deployment", "Job") else None
    return spec["containers"][0], spec


def flag(cmd, name):
    """The value of --name=V in a command line; None if absent."""
    for w in cmd:
        if w.startswith(f"--{name}="):
            return w.split("=", 1)[1]
    return None


def check_contract(docs, out_dir):
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    head = by.get(("Deployment", "orrery-head"))
    worker = by.get(("Deployment", "orrery-worker"))
    hpa = by.get(("HorizontalPodAutoscaler", "orrery-worker"))
    cm = by.get(("ConfigMap", "orrery-autoscaler"))
    job = by.get(("Job", "orrery-counter"))
    svc = by.get(("Service", "orrery-head"))
    for what, d in [("head Deployment", head), ("worker Deployment", worker), ("HPA", hpa),
                    ("autoscaler ConfigMap", cm), ("counter Job", job), ("head Service", svc)]:
        if d is None:
            fail(f"no {what} in live/deploy/k8s/")
    if failures:
        return
    commands = []
    for name, d, health_port in [("head", head, "8265"), ("worker", worker, None)]:
        c, spec = container(d)
        cmd = c["command"]
        commands.append(cmd)
        if cmd[:2] != ["orrery", "start"] or "--block" not in cmd:
            fail(f"{name}: the container must run `orrery start ... --block`, runs {cmd[:3]}")
        tls = flag(cmd, "tls-dir")
        if health_port is None:
            health_port = flag(cmd, "health-port")
        elif flag(cmd, "dashboard-port") != health_port:
            fail(f"{name}: --dashboard-port must be {health_port} (the probes' port)")
        ports = {p["name"]: str(p["containerPort"]) for p in c["ports"]}
        for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
            g = c.get(probe, {}).get("httpGet", {})
            port = ports.get(g.get("port"), str(g.get("port")))
            if g.get("path") != path or port != health_port:
                fail(f"{name}: {probe} must GET {path} on port {health_port}, has {g}")
            if (g.get("scheme") == "HTTPS") != (tls is not None):
                fail(f"{name}: {probe} scheme must be HTTPS exactly when --tls-dir is given")
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if pre[:2] != ["orrery", "stop"] or flag(pre, "temp-dir") != flag(cmd, "temp-dir"):
            fail(f"{name}: preStop must run `orrery stop` on the container's --temp-dir: {pre}")
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in spec["volumes"]}
        token_file = flag(cmd, "token-file") or ""
        if vols.get("token", {}).get("secret", {}).get("secretName") != "orrery-cluster-token" or \
                not token_file.startswith(mounts.get("token", "?") + "/"):
            fail(f"{name}: --token-file must be in the mounted orrery-cluster-token Secret")
        if vols.get("tls", {}).get("secret", {}).get("secretName") != "orrery-tls" or \
                mounts.get("tls") != tls:
            fail(f"{name}: --tls-dir must be the mounted orrery-tls Secret")
    # The worker group: Deployment replicas, HPA bounds and CPUs = the ConfigMap's node type.
    conf = yaml.safe_load(cm["data"]["autoscaler.yaml"])
    with open(os.path.join(out_dir, "autoscaler.yaml"), "w") as f:
        f.write(cm["data"]["autoscaler.yaml"])
    wcmd = container(worker)[0]["command"]
    labels = yaml.safe_load(flag(wcmd, "labels") or "{}")
    types = {t["name"]: t for t in conf["node_types"]}
    t = types.get(labels.get("node_type"))
    if t is None:
        fail(f"worker: --labels node_type {labels.get('node_type')} is not a node type of the ConfigMap")
    else:
        cpu_limit = container(worker)[0]["resources"]["limits"]["cpu"]
        checks = [("Deployment replicas", worker["spec"]["replicas"], t.get("min_workers", 0)),
                  ("HPA minReplicas", hpa["spec"]["minReplicas"], t.get("min_workers", 0)),
                  ("HPA maxReplicas", hpa["spec"]["maxReplicas"], t.get("max_workers")),
                  ("container CPU limit", float(cpu_limit), float(t["resources"]["CPU"]))]
        for what, got, want in checks:
            if got != want:
                fail(f"worker group: {what} is {got}, the ConfigMap's {t['name']} says {want}")
    if hpa["spec"]["scaleTargetRef"]["name"] != "orrery-worker":
        fail("the HPA does not scale orrery-worker")
    jc = container(job)[0]
    commands.append(jc["command"])
    if jc["command"][:3] != ["orrery", "job", "submit"] or "--no-wait" in jc["command"]:
        fail("the Job must run `orrery job submit` and wait (no --no-wait)")
    if job["spec"]["template"]["spec"]["restartPolicy"] != "Never" or job["spec"]["backoffLimit"] != 0:
        fail("the Job must not retry (restartPolicy Never, backoffLimit 0): a retry is a new submission")
    svc_ports = {p["port"] for p in svc["spec"]["ports"]}
    if not {6379, 8265} <= svc_ports:
        fail(f"the head Service must expose 6379 (gRPC) and 8265 (dashboard), has {sorted(svc_ports)}")
    # For the local run: $(VAR) resolved as the pod would (POD_IP -> 127.0.0.1, the pod name,
    # the CPU limit), the preStop commands, and the probes as "path port scheme".
    for i, (cmd, d) in enumerate(zip(commands, [head, worker, job])):
        c = container(d)[0]
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "value" in e:
                value = e["value"]
            elif ref.get("fieldRef", {}).get("fieldPath") == "status.podIP":
                value = "127.0.0.1"
            elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                value = d["metadata"]["name"] + "-pod-0"
            elif "resourceFieldRef" in ref:
                value = str(c["resources"]["limits"][ref["resourceFieldRef"]["resource"].split(".")[1]])
            else:
                continue
            cmd = [w.replace(f"$({e['name']})", value) for w in cmd]
        if any("\n" in w or "$(" in w for w in cmd):
            fail(f"a command word holds a line break or an unresolved $(VAR): {cmd}")
        with open(os.path.join(out_dir, f"command{i}.txt"), "w") as f:
            f.write("\n".join(cmd) + "\n")
        if d is not job:
            with open(os.path.join(out_dir, f"prestop{i}.txt"), "w") as f:
                f.write("\n".join(c["lifecycle"]["preStop"]["exec"]["command"]) + "\n")
            ports = {p["name"]: str(p["containerPort"]) for p in c["ports"]}
            with open(os.path.join(out_dir, f"probes{i}.txt"), "w") as f:
                for probe in ("readinessProbe", "livenessProbe"):
                    g = c[probe]["httpGet"]
                    f.write(f"{g['path']} {ports.get(g['port'], g['port'])} {g.get('scheme', 'HTTP')}\n")


def main():
    src, out_dir = sys.argv[1], sys.argv[2]
    k8s = os.path.join(src, "live", "deploy", "k8s")
    files = sorted(os.path.join(k8s, f) for f in os.listdir(k8s)
                   if f.endswith(".yaml") or f.endswith(".yaml.example"))
    for version in K8S_VERSIONS:
        ok, text = kubernetes_validate(files, version)
        if not ok:
            fail(f"kubernetes-validate -k {version}:\n{text}")
    print(f"ok: {len(files)} manifests validate (strict) against Kubernetes {', '.join(K8S_VERSIONS)}")

    # Self-check: an unknown field in a container must be refused.
    docs = [d for f in files for d in load_all(f)]
    bad = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    bad_file = os.path.join(out_dir, "bad.yaml")
    with open(bad_file, "w") as f:
        yaml.safe_dump(bad, f)
    if kubernetes_validate([bad_file], K8S_VERSIONS[-1])[0]:
        fail("kubernetes-validate accepted an unknown field (readinesProbe): the check is blind")

    with open(os.path.join(src, "tests", "deploy", "schemas",
                           "monitoring.coreos.com_servicemonitors.yaml")) as f:
        crd = yaml.safe_load(f)
    monitors = load_all(os.path.join(k8s, "monitoring", "servicemonitor.yaml"))
    for sm in monitors:
        for e in servicemonitor_errors(sm, crd):
            fail(f"ServiceMonitor {sm['metadata']['name']}: {e}")
    bad_sm = copy.deepcopy(monitors[0])
    bad_sm["spec"]["endpoints"][0]["interval"] = 15
    bad_sm["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    if len(servicemonitor_errors(bad_sm, crd)) < 2:
        fail("the ServiceMonitor check missed a wrong type or an unknown field: the check is blind")
    print(f"ok: {len(monitors)} ServiceMonitor validates against the vendored CRD schema "
          f"({crd['metadata']['annotations'].get('operator.prometheus.io/version')})")

    check_contract(docs, out_dir)
    if failures:
        sys.exit(1)
    print("ok: probes, preStop, Secrets, worker group = autoscaler ConfigMap, Job waits")


if __name__ == "__main__":
    main()
