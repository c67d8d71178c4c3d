"""Checks deploy/ without a container daemon or a cluster (scripts/check-deploy.sh runs it).

- The Helm chart: `helm lint --strict` and offline rendering with Helm's own engine (the
  helm-python-sdk package embeds Helm's Go library), for a release with its own Secret and
  one that names an existing Secret; the rendered manifests are then checked: the Service,
  PodDisruptionBudget, HPA and ServiceMonitor select what the API Deployment runs, probes hit
  /healthz and /readyz on a port the container declares, pods run as non-root, every Secret
  key a pod needs is in the Secret.
- The compose file: it parses, and what services depend on exists.
- Both: every CABILDO__SECTION__KEY they set is a key of config/cabildo.toml.

Prints what it checked; exits 1 with every problem found.
"""

import re
import sys
import tomllib
from pathlib import Path

import yaml
from helm_python import chart as helm

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "cabildo"
problems: list[str] = []


def problem(what: str) -> None:
    problems.append(what)


def config_keys() -> set[tuple[str, str]]:
    """(section, key) of config/cabildo.toml, including keys shown commented out (unset by
    default, such as secrets)."""
    keys, section = set(), None
    for line in (ROOT / "config" / "cabildo.toml").read_text().splitlines():
        if m := re.match(r"^\[(\w+)\]", line):
            section = m.group(1)
        elif section and (m := re.match(r"^#?\s?(\w+)\s*=", line)):
            keys.add((section, m.group(1)))
    tomllib.loads((ROOT / "config" / "cabildo.toml").read_text())  # and it parses
    return keys


KEYS = config_keys()


def check_env_name(name: str, where: str) -> None:
    if not name.startswith("CABILDO__"):
        return
    parts = name[len("CABILDO__"):].lower().split("__")
    if len(parts) != 2 or tuple(parts) not in KEYS:
        problem(f"{where}: {name} is not a setting of config/cabildo.toml")


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_release(values: dict, expect_secret: bool, expect_monitor: bool, expect_hpa: bool):
    rendered = helm.Chart.load(CHART).render(values, name="cabildo", namespace="gov")
    docs = [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    label = "existing Secret" if not expect_secret else "own Secret"
    print(f"  rendered ({label}): " + ", ".join(
        f"{k} {', '.join(d['metadata']['name'] for d in v)}" for k, v in sorted(by_kind.items())))

    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    api = next((d for n, d in deployments.items() if n.endswith("-api")), None)
    worker = next((d for n, d in deployments.items() if n.endswith("-worker")), None)
    if api is None or worker is None:
        problem(f"{label}: an API and a worker Deployment, found {sorted(deployments)}")
        return
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    if bool(secrets) != expect_secret:
        problem(f"{label}: Secret rendered: {sorted(secrets)}")
    secret_name = values["secrets"].get("existingSecret") or next(iter(secrets), None)

    for name, d in deployments.items():
        pod = d["spec"]["template"]
        if not selects(d["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]):
            problem(f"{name}: its selector does not match its own pods")
        if not pod["spec"].get("securityContext", {}).get("runAsNonRoot"):
            problem(f"{name}: pods do not run as non-root")
        for c in pod["spec"]["containers"]:
            for env in c.get("env", []):
                check_env_name(env["name"], name)
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                if ref["name"] != secret_name:
                    problem(f"{name}: {env['name']} reads Secret {ref['name']}, not {secret_name}")
                if expect_secret and not ref.get("optional"):
                    data = secrets[secret_name].get("stringData", {})
                    if ref["key"] not in data:
                        problem(f"{name}: Secret {secret_name} has no key {ref['key']}")
    container = api["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ports:
            problem(f"API {probe}: {get}")
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    for svc in by_kind.get("Service", []):
        if not selects(svc["spec"]["selector"], api_labels):
            problem(f"Service {svc['metadata']['name']} does not select the API pods")
        for p in svc["spec"]["ports"]:
            if p.get("targetPort") not in ports and p.get("targetPort") not in ports.values():
                problem(f"Service port {p} targets no API container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not selects(pdb["spec"]["selector"]["matchLabels"], api_labels):
            problem("the PodDisruptionBudget does not select the API pods")
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if bool(hpas) != expect_hpa:
        problem(f"{label}: HPA rendered: {len(hpas)}")
    for hpa in hpas:
        if hpa["spec"]["scaleTargetRef"]["name"] != api["metadata"]["name"]:
            problem("the HPA does not scale the API Deployment")
    monitors = by_kind.get("ServiceMonitor", [])
    if bool(monitors) != expect_monitor:
        problem(f"{label}: ServiceMonitor rendered: {len(monitors)}")
    for m in monitors:
        svcs = [s for s in by_kind.get("Service", [])
                if selects(m["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        names = {p.get("name") for s in svcs for p in s["spec"]["ports"]}
        for e in m["spec"]["endpoints"]:
            if not svcs or e.get("port") not in names or e.get("path") != "/metrics":
                problem(f"ServiceMonitor endpoint {e} matches no Service port")


def check_chart() -> None:
    given = {"secrets": {"registryUrl": "postgres://cabildo:pw@postgres:5432/cabildo",
                         "pseudonymKey": "k" * 40, "existingSecret": ""},
             "serviceMonitor": {"enabled": True}}
    report = helm.lint(CHART, given, strict=True)
    for m in report.get("messages", []):
        print(f"  helm lint: {m['path']}: {m['error']} (severity {m['severity']})")
        if m["severity"] >= 2:
            problem(f"helm lint: {m['path']}: {m['error']}")
    for e in report.get("errors", []):
        problem(f"helm lint: {e}")
    check_release(given, expect_secret=True, expect_monitor=True, expect_hpa=True)
    existing = {"secrets": {"existingSecret": "cabildo-secrets"},
                "api": {"autoscaling": {"enabled": False}}}
    check_release(existing, expect_secret=False, expect_monitor=False, expect_hpa=False)
    try:
        helm.Chart.load(CHART).render({}, name="cabildo", namespace="gov")
        problem("the chart renders without a registry address or pseudonym key")
    except Exception as e:  # Helm's `required` refuses it, as it should
        print(f"  without secrets, refused: {str(e).splitlines()[0]}")


def check_compose() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    print(f"  compose services: {', '.join(services)}")
    for name, s in services.items():
        for dep in s.get("depends_on", {}) or {}:
            if dep not in services:
                problem(f"compose {name}: depends on {dep}, which is not a service")
        env = s.get("environment", {}) or {}
        for key in env if isinstance(env, dict) else [e.split("=")[0] for e in env]:
            check_env_name(key, f"compose {name}")
    for required in ["postgres", "qdrant", "api-a", "api-b", "worker"]:
        if required not in services:
            problem(f"compose: no {required} service")
    for name in ["api-a", "api-b", "worker"]:
        if services.get(name, {}).get("environment", {}).get("CABILDO_PROFILE") != "cluster":
            problem(f"compose {name}: not the cluster profile")


print("Helm chart deploy/helm/cabildo:")
check_chart()
print("deploy/compose.yaml:")
check_compose()
if problems:
    print("deploy/ check failed:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("deploy/ check passed")
