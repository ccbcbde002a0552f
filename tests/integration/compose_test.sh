#!/usr/bin/env bash
# Checks the deployment files without a container engine:
#
#   * docker-compose.yml parses (`docker-compose config -q`), the worker
#     service can be scaled, its stop grace period outlasts the drain, the
#     build targets and mounted files exist;
#   * every HANDOFF_* variable that docker-compose.yml, deploy/k8s/ and the
#     Dockerfiles set is one the program it is set for knows: for workers,
#     a name quoted in worker/ or common/; for the controller, the documented
#     list below or a name quoted in controller/ or common/;
#   * deploy/Dockerfile's runtime packages are install.sh's PKGS_RUNTIME;
#   * Prometheus: `promtool check config` (prometheus.yml, prometheus-k8s.yml),
#     `promtool check rules` and `promtool test rules` (alerts_test.yml);
#   * Grafana: the dashboard is valid JSON (python3 -m json.tool), its
#     panels are consistent and every PromQL query parses (promtool);
#   * Kubernetes: every manifest is well-formed YAML (PyYAML), selectors,
#     named ports, ConfigMaps and Secrets line up, the worker's grace
#     period outlasts its drain timeout; `kubectl kustomize` renders.
#
#   tests/integration/compose_test.sh
#
# Needs docker-compose, promtool and python3 with PyYAML (deploy/install.sh
# installs them; PyYAML comes with docker-compose). Prints one line per
# check and exits 0, or lists every failed check and exits 1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

# The controller's settings (DESIGN.md, the controller's brief); names
# quoted in controller/ and common/ sources are added to these.
CONTROLLER_VARS=(HANDOFF_HTTP_ADDR HANDOFF_NATS_URL HANDOFF_PG_DSN
    HANDOFF_PG_PASSWORD HANDOFF_REDIS_URL HANDOFF_LOG_LEVEL)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/handoff-compose-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

FAILED=()

ok()
{
    printf 'ok - %s\n' "$*"
}

# fail MESSAGE [FILE]: records a failed check, showing FILE if given.
fail()
{
    printf 'FAIL - %s\n' "$1"
    if [ $# -gt 1 ] && [ -s "$2" ]; then
        sed 's/^/    /' "$2"
    fi
    FAILED+=("$1")
}

# check NAME CMD...: runs CMD, ok or fail with its output.
check()
{
    local name=$1
    shift
    if "$@" >"$TMP/out" 2>&1; then
        ok "$name"
    else
        fail "$name" "$TMP/out"
    fi
}

need()
{
    command -v "$1" >/dev/null 2>&1 ||
        { echo "compose_test: FAIL: $1 not found (deploy/install.sh installs it)" >&2
          exit 1; }
}

need docker-compose
need promtool

# A python3 with PyYAML: the one on PATH, else Debian's (docker-compose
# depends on python3-yaml).
PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then
        PY=$p
        break
    fi
done
[ -n "$PY" ] ||
    { echo "compose_test: FAIL: no python3 with the yaml module (python3-yaml)" >&2
      exit 1; }

# ---- Known variables ---------------------------------------------------------

# HANDOFF_* names quoted as string literals (not include guards) in DIRS.
quoted_names()
{
    local d
    local dirs=()
    for d in "$@"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    [ ${#dirs[@]} -gt 0 ] || return 0
    { grep -RhoE --include='*.c' --include='*.h' '"HANDOFF_[A-Z0-9_]+"' \
          "${dirs[@]}" || true; } | tr -d '"' | sort -u
}

quoted_names worker common >"$TMP/worker.vars"
{ printf '%s\n' "${CONTROLLER_VARS[@]}"; quoted_names controller common; } |
    sort -u >"$TMP/controller.vars"
if ! grep -qx HANDOFF_NATS_URL "$TMP/worker.vars"; then
    fail "worker sources name HANDOFF_NATS_URL (is the grep still right?)"
fi

# ---- docker-compose.yml --------------------------------------------------------

if docker-compose -f docker-compose.yml config -q >"$TMP/out" 2>&1; then
    ok "docker-compose.yml: docker-compose config -q"
else
    fail "docker-compose.yml: docker-compose config -q" "$TMP/out"
fi
# The resolved file (anchors, merges and ${VAR:-default} expanded), for the
# checks below. Without the environment's HANDOFF_* values.
env -u HANDOFF_LOG_LEVEL -u POSTGRES_PASSWORD \
    docker-compose -f docker-compose.yml config >"$TMP/compose.yml" 2>"$TMP/out" ||
    fail "docker-compose.yml: docker-compose config" "$TMP/out"
for f in docker-compose.*.yml; do
    [ -e "$f" ] || continue
    check "$f: docker-compose config -q (as an override)" \
        docker-compose -f docker-compose.yml -f "$f" config -q
done

# ---- Prometheus --------------------------------------------------------------

check "prometheus.yml: promtool check config" \
    promtool check config deploy/prometheus/prometheus.yml
check "alerts.yml: promtool check rules" \
    promtool check rules deploy/prometheus/alerts.yml
check "alerts.yml: promtool test rules alerts_test.yml" \
    promtool test rules deploy/prometheus/alerts_test.yml

# Debian's promtool is built without Kubernetes service discovery: check
# prometheus-k8s.yml as is where it can, else with each
# kubernetes_sd_configs replaced by a static target (the relabelling and
# everything else is still checked).
k8s_prom=deploy/prometheus/prometheus-k8s.yml
if promtool check config "$k8s_prom" >"$TMP/out" 2>&1; then
    ok "prometheus-k8s.yml: promtool check config"
elif grep -q 'field kubernetes_sd_configs not found' "$TMP/out"; then
    mkdir "$TMP/k8s-prom"
    cp deploy/prometheus/alerts.yml "$TMP/k8s-prom/"
    "$PY" - "$k8s_prom" "$TMP/k8s-prom/prometheus.yml" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for sc in c.get("scrape_configs", []):
    if sc.pop("kubernetes_sd_configs", None) is not None:
        sc["static_configs"] = [{"targets": ["stand-in.invalid:9"]}]
yaml.safe_dump(c, open(sys.argv[2], "w"))
EOF
    check "prometheus-k8s.yml: promtool check config (kubernetes_sd_configs stubbed: this promtool lacks it)" \
        promtool check config "$TMP/k8s-prom/prometheus.yml"
else
    fail "prometheus-k8s.yml: promtool check config" "$TMP/out"
fi

# ---- Grafana -----------------------------------------------------------------

dashboard=deploy/grafana/provisioning/dashboards/handoff.json
check "handoff.json: python3 -m json.tool" \
    "$PY" -m json.tool "$dashboard" /dev/null

# ---- Everything that needs parsing: one Python pass ---------------------------
#
# Prints "ok - ..." / "FAIL - ..." lines (a traceback on stderr if a file
# is too broken to look into); writes the dashboard's queries
# (Grafana variables replaced) as a rule file for promtool, and the metric
# names the alerts and the dashboard use.

py_rc=0
"$PY" - "$TMP" <<'EOF' >"$TMP/py.out" 2>"$TMP/py.err" || py_rc=$?
import glob, json, os, re, sys
import yaml

tmp = sys.argv[1]
worker_vars = set(open(os.path.join(tmp, "worker.vars")).read().split())
controller_vars = set(open(os.path.join(tmp, "controller.vars")).read().split())
def ok(msg):
    print(f"ok - {msg}", flush=True)

def fail(msg):
    print(f"FAIL - {msg}", flush=True)

def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond

def duration_s(text):
    """Go/compose-style duration ("1m30s", "45s", "90") in seconds, or None."""
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)

def unknown_vars(names, known):
    return sorted(n for n in names if n.startswith("HANDOFF_") and n not in known)

def env_names(env):
    if isinstance(env, dict):
        return set(env)
    if isinstance(env, list):
        return {str(e).split("=", 1)[0] for e in env}
    return set()

def program_vars(kind):
    return {"controller": controller_vars, "worker": worker_vars}[kind]

def report_vars(where, kind, names):
    unknown = unknown_vars(names, program_vars(kind))
    handoff = sorted(n for n in names if n.startswith("HANDOFF_"))
    if unknown:
        fail(f"{where}: HANDOFF_* variables the {kind} does not know: {' '.join(unknown)}")
    else:
        ok(f"{where}: {len(handoff)} HANDOFF_* variables, all known to the {kind}")

WORKER_DRAIN_DEFAULT_S = 30   # --drain-timeout default (docs/worker.md)

# ---- Dockerfiles --------------------------------------------------------------

def dockerfile_lines(path):
    """Logical instructions (continuations joined, comments dropped)."""
    out, cur = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return out

def dockerfile_stages(path):
    """{stage: [instructions]}, and the ENV names set per stage."""
    stages, name = {}, None
    for ins in dockerfile_lines(path):
        word = ins.split(None, 1)[0].upper()
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)\s*$", ins, re.I)
            name = m.group(1) if m else f"stage{len(stages)}"
            stages[name] = []
        if name is not None:
            stages[name].append(ins)
    return stages

def env_in(instructions):
    names = set()
    for ins in instructions:
        parts = ins.split(None, 1)
        if parts[0].upper() != "ENV" or len(parts) < 2:
            continue
        names |= set(re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", parts[1]))
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s+\S.*", parts[1])
        if m and "=" not in parts[1].split()[0]:
            names.add(m.group(1))
    return names

df = "deploy/Dockerfile"
stages = dockerfile_stages(df)
check({"build", "controller", "example-worker", "runtime", "sdk"} <= set(stages),
      f"{df}: stages build, sdk, runtime, controller, example-worker ({', '.join(stages)})")
check(any("install.sh --minimal" in i for i in stages.get("toolchain", [])),
      f"{df}: the build toolchain comes from deploy/install.sh --minimal")
for stage, kind in (("controller", "controller"), ("example-worker", "worker")):
    report_vars(f"{df} stage {stage}", kind, env_in(stages.get(stage, [])))
for stage in ("controller", "example-worker"):
    ins = stages.get(stage, [])
    users = [i for i in stages.get("runtime", []) + ins if i.upper().startswith("USER ")]
    check(users and not re.search(r"USER\s+(root|0)(:|\s|$)", users[-1], re.I),
          f"{df} stage {stage}: runs as a non-root user ({users[-1] if users else 'no USER'})")
check(any(i.upper().startswith("HEALTHCHECK ") for i in stages.get("controller", [])),
      f"{df} stage controller: has a HEALTHCHECK")
# COPY sources from the build context (the repository root) exist. (The
# template's context is the user's repository: not checked.)
missing = []
for ins in dockerfile_lines(df):
    parts = ins.split()
    if parts[0].upper() != "COPY" or any(p.startswith("--from") for p in parts):
        continue
    srcs = [p for p in parts[1:-1] if not p.startswith("--")]
    missing += [s for s in srcs if s != "." and not glob.glob(s)]
check(not missing, f"{df}: COPY sources exist ({' '.join(missing) or 'all'})")

# Runtime packages: the same as install.sh's PKGS_RUNTIME group.
inst = open("deploy/install.sh").read()
m = re.search(r'PKGS_RUNTIME="([^"]*)"', inst)
want = set(m.group(1).split()) if m else set()
arg = next((i for i in stages.get("runtime", []) if i.startswith("ARG RUNTIME_PKGS=")), "")
m = re.search(r'RUNTIME_PKGS="([^"]*)"', arg)
have = set(m.group(1).split()) if m else set()
if check(want and have == want,
         f"{df}: runtime packages = install.sh PKGS_RUNTIME ({len(want)} packages)"):
    pass
else:
    fail(f"{df}: only in install.sh: {sorted(want - have)}; only in the Dockerfile: {sorted(have - want)}")

tpl = "deploy/Dockerfile.worker-template"
tstages = dockerfile_stages(tpl)
check("build" in tstages and "worker" in tstages, f"{tpl}: stages build and worker")
report_vars(f"{tpl} stage worker", "worker", env_in(tstages.get("worker", [])))
check(any("cmake" in i or "pkg-config" in i or "make" in i for i in tstages.get("build", [])),
      f"{tpl}: the build stage compiles the suites")

# ---- docker-compose.yml (resolved by docker-compose config) --------------------

compose = yaml.safe_load(open(os.path.join(tmp, "compose.yml")))
services = compose.get("services", {})
check({"nats", "postgres", "redis", "controller", "worker"} <= set(services),
      "docker-compose.yml: services nats, postgres, redis, controller, worker")
check({"prometheus", "grafana"} <= set(services)
      and all("monitoring" in services[s].get("profiles", []) for s in ("prometheus", "grafana")),
      "docker-compose.yml: prometheus and grafana under the monitoring profile")

for name, svc in sorted(services.items()):
    target = (svc.get("build") or {}).get("target", "") if isinstance(svc.get("build"), dict) else ""
    kind = "controller" if target == "controller" else "worker" if "worker" in target else None
    names = env_names(svc.get("environment"))
    if kind:
        report_vars(f"docker-compose.yml service {name}", kind, names)
        check(target in stages, f"docker-compose.yml service {name}: build target {target} is a stage of {df}")
    elif any(n.startswith("HANDOFF_") for n in names):
        fail(f"docker-compose.yml service {name}: sets HANDOFF_* variables but runs no Handoff program")
    # Bind-mounted files exist.
    for v in svc.get("volumes", []) or []:
        src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith("/") and not os.path.exists(src):
            fail(f"docker-compose.yml service {name}: mounts {src}, which does not exist")

w = services.get("worker", {})
check("container_name" not in w and not w.get("ports"),
      "docker-compose.yml service worker: no container_name, no published ports (scalable)")
drain = duration_s((w.get("environment") or {}).get("HANDOFF_WORKER_DRAIN_TIMEOUT",
                                                    WORKER_DRAIN_DEFAULT_S))
grace = duration_s(w.get("stop_grace_period", 10))
check(drain is not None and grace is not None and grace > drain,
      f"docker-compose.yml service worker: stop_grace_period {grace}s > drain timeout {drain}s")
c = services.get("controller", {})
deps = c.get("depends_on", {})
check(isinstance(deps, dict) and all(deps.get(s, {}).get("condition") == "service_healthy"
                                     for s in ("nats", "postgres")),
      "docker-compose.yml service controller: waits for healthy nats and postgres")
env = c.get("environment") or {}
check("password" not in str(env.get("HANDOFF_PG_DSN", "")),
      "docker-compose.yml service controller: no password in HANDOFF_PG_DSN")
for s in ("nats", "postgres", "redis"):
    check("healthcheck" in services.get(s, {}), f"docker-compose.yml service {s}: has a healthcheck")

# ---- Prometheus scrape targets match the compose services ----------------------

prom = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
jobs = {sc["job_name"]: sc for sc in prom.get("scrape_configs", [])}
check({"handoff-controller", "handoff-worker"} <= set(jobs),
      "prometheus.yml: jobs handoff-controller and handoff-worker")
for job, svc in (("handoff-controller", "controller"), ("handoff-worker", "worker")):
    names = [n for d in jobs.get(job, {}).get("dns_sd_configs", []) for n in d.get("names", [])]
    check(svc in names or f"tasks.{svc}" in names,
          f"prometheus.yml job {job}: discovers compose service {svc} by DNS")
wport = str(w.get("environment", {}).get("HANDOFF_WORKER_METRICS_ADDR", "")).rsplit(":", 1)[-1]
dport = [str(d.get("port")) for d in jobs.get("handoff-worker", {}).get("dns_sd_configs", [])]
check(wport in dport, f"prometheus.yml: worker port {dport} = HANDOFF_WORKER_METRICS_ADDR port {wport}")

# ---- Grafana --------------------------------------------------------------------

gdir = "deploy/grafana/provisioning"
dsfile = yaml.safe_load(open(f"{gdir}/datasources/datasource.yaml"))
dps = yaml.safe_load(open(f"{gdir}/dashboards/dashboards.yaml"))
ds = dsfile.get("datasources", [])
check(ds and ds[0].get("type") == "prometheus"
      and re.match(r"https?://prometheus:9090", ds[0].get("url", "")),
      "datasource.yaml: a prometheus datasource at the compose service prometheus:9090")
paths = [p.get("options", {}).get("path") for p in dps.get("providers", [])]
check("/etc/grafana/provisioning/dashboards" in paths,
      "dashboards.yaml: provider reads /etc/grafana/provisioning/dashboards (the compose mount)")

dash = json.load(open(f"{gdir}/dashboards/handoff.json"))
panels = dash.get("panels", [])
ids = [p.get("id") for p in panels]
check(len(ids) == len(set(ids)) and None not in ids, "handoff.json: panel ids unique")
rows = [p["title"] for p in panels if p.get("type") == "row"]
check(rows == ["Overview", "Tests", "Workers", "Infrastructure"],
      f"handoff.json: rows Overview, Tests, Workers, Infrastructure ({', '.join(rows)})")
bad = [p.get("title") for p in panels
       if p.get("gridPos", {}).get("x", 0) + p.get("gridPos", {}).get("w", 0) > 24]
check(not bad, f"handoff.json: panels fit the 24-column grid ({bad or 'all'})")
var_names = {v["name"] for v in dash.get("templating", {}).get("list", [])}
exprs = []
for p in panels:
    for t in p.get("targets", []):
        if t.get("expr"):
            exprs.append((p.get("title"), t["expr"]))
    uid = (p.get("datasource") or {}).get("uid", "${datasource}")
    if p.get("type") != "row" and uid not in ("${datasource}", ds[0].get("uid") if ds else None):
        fail(f"handoff.json panel {p.get('title')}: datasource uid {uid} is neither ${{datasource}} nor provisioned")
used_vars = {v for _, e in exprs for v in re.findall(r"\$([A-Za-z_]\w*)", e)} - {"__rate_interval", "__range", "__interval"}
check(used_vars <= var_names, f"handoff.json: queries use defined variables ({sorted(used_vars)})")

def grafana_to_promql(e):
    e = e.replace("$__rate_interval", "5m").replace("$__range", "6h").replace("$__interval", "1m")
    return re.sub(r"\$\{?([A-Za-z_]\w*)\}?", ".*", e)

rules = {"groups": [{"name": "dashboard", "rules": [
    {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)} for i, (_, e) in enumerate(exprs)]}]}
yaml.safe_dump(rules, open(os.path.join(tmp, "dashboard_rules.yml"), "w"))
ok(f"handoff.json: {len(exprs)} queries written for promtool")

# Metric names the alerts and the dashboard use.
text = open("deploy/prometheus/alerts.yml").read() + "\n".join(e for _, e in exprs)
metrics = sorted({re.sub(r"_(bucket|count|sum)$", "", m) if m.startswith("handoff_ingest_lag_seconds") else m
                  for m in re.findall(r"\bhandoff_[a-z_]+\b", text)})
open(os.path.join(tmp, "metrics.txt"), "w").write("\n".join(metrics) + "\n")

# ---- Kubernetes ---------------------------------------------------------------------

docs = []
for path in sorted(glob.glob("deploy/k8s/*.yaml")):
    try:
        for d in yaml.safe_load_all(open(path)):
            if d is not None:
                docs.append((path, d))
        ok(f"{path}: well-formed YAML")
    except yaml.YAMLError as e:
        fail(f"{path}: YAML error: {e}")

objs = [(p, d) for p, d in docs if os.path.basename(p) != "kustomization.yaml"]
for p, d in objs:
    md = d.get("metadata", {})
    if not (d.get("apiVersion") and d.get("kind") and md.get("name")):
        fail(f"{p}: an object without apiVersion, kind or metadata.name")
    elif d["kind"] != "Namespace" and md.get("namespace") != "handoff":
        fail(f"{p}: {d['kind']}/{md['name']} not in namespace handoff")

kust = next((d for p, d in docs if os.path.basename(p) == "kustomization.yaml"), {})
listed = set(kust.get("resources", []))
files = {os.path.basename(p) for p, _ in objs}
check(listed == files - {"secret.example.yaml"},
      f"kustomization.yaml lists every manifest but secret.example.yaml ({sorted(listed)})")

by_kind = {}
for p, d in objs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
cms = by_kind.get("ConfigMap", {})
secrets = by_kind.get("Secret", {})
deps = by_kind.get("Deployment", {})

def matches(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())

for name, kind in (("handoff-controller", "controller"), ("handoff-worker", "worker")):
    dep = deps.get(name)
    if not check(dep is not None, f"deploy/k8s: Deployment {name}"):
        continue
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    tlabels = spec["template"]["metadata"].get("labels", {})
    check(matches(spec["selector"].get("matchLabels"), tlabels),
          f"Deployment {name}: selector matches the pod labels")
    check(spec.get("replicas") == 2, f"Deployment {name}: 2 replicas")
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True, f"Deployment {name}: runAsNonRoot")
    for ctr in pod["containers"]:
        ports = {pt.get("name") for pt in ctr.get("ports", [])}
        names = set()
        for ef in ctr.get("envFrom", []):
            ref = (ef.get("configMapRef") or {}).get("name")
            if check(ref in cms, f"Deployment {name}: ConfigMap {ref} exists"):
                names |= set(cms[ref].get("data", {}))
        for e in ctr.get("env", []):
            names.add(e["name"])
            sk = (e.get("valueFrom") or {}).get("secretKeyRef")
            if sk and not sk.get("optional"):
                check(sk["name"] in secrets and sk["key"] in (secrets[sk["name"]].get("stringData") or {}),
                      f"Deployment {name}: Secret {sk['name']} key {sk['key']} in secret.example.yaml")
        report_vars(f"deploy/k8s Deployment {name}", kind, names)
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = ((ctr.get(probe) or {}).get("httpGet") or {}).get("port")
            if port is not None and isinstance(port, str):
                check(port in ports, f"Deployment {name}: {probe} port {port} is a named container port")
        if kind == "controller":
            check((ctr.get("readinessProbe") or {}).get("httpGet", {}).get("path") == "/readyz"
                  and (ctr.get("livenessProbe") or {}).get("httpGet", {}).get("path") == "/healthz",
                  "Deployment handoff-controller: readiness /readyz, liveness /healthz")
        check("resources" in ctr, f"Deployment {name}: container {ctr['name']} has resources")
        if kind == "worker":
            data = cms.get("handoff-worker", {}).get("data", {})
            drain = duration_s(data.get("HANDOFF_WORKER_DRAIN_TIMEOUT", WORKER_DRAIN_DEFAULT_S))
            grace = pod.get("terminationGracePeriodSeconds", 30)
            check(drain is not None and grace > drain,
                  f"Deployment handoff-worker: terminationGracePeriodSeconds {grace} > drain timeout {drain}s")

for svc_name, svc in by_kind.get("Service", {}).items():
    sel = svc["spec"].get("selector", {})
    target = [d for d in deps.values() if matches(sel, d["spec"]["template"]["metadata"].get("labels", {}))]
    if check(target, f"Service {svc_name}: selects a Deployment"):
        ports = {pt.get("name") for c in target[0]["spec"]["template"]["spec"]["containers"]
                 for pt in c.get("ports", [])}
        for pt in svc["spec"].get("ports", []):
            tp = pt.get("targetPort")
            if isinstance(tp, str):
                check(tp in ports, f"Service {svc_name}: targetPort {tp} is a named container port")

pdbs = by_kind.get("PodDisruptionBudget", {})
for pname, pdb in pdbs.items():
    sel = pdb["spec"]["selector"].get("matchLabels", {})
    check(any(matches(sel, d["spec"]["template"]["metadata"].get("labels", {})) for d in deps.values()),
          f"PodDisruptionBudget {pname}: selects a Deployment")
check(any("worker" in n for n in pdbs), "deploy/k8s: a PodDisruptionBudget for the workers")
check(all("EXAMPLE" in str(v) for s in secrets.values() for v in (s.get("stringData") or {}).values()),
      "secret.example.yaml: every value is marked as an example")
EOF

while IFS= read -r line; do
    case $line in
    "ok - "*) printf '%s\n' "$line" ;;
    "FAIL - "*) fail "${line#FAIL - }" ;;
    esac
done <"$TMP/py.out"
if [ "$py_rc" -ne 0 ]; then
    fail "the YAML/JSON checks stopped (exit $py_rc) before the end" "$TMP/py.err"
fi

if [ -s "$TMP/dashboard_rules.yml" ]; then
    check "handoff.json: every query parses (promtool check rules)" \
        promtool check rules "$TMP/dashboard_rules.yml"
else
    fail "handoff.json: queries not extracted"
fi

# The metric names in alerts and dashboard against docs/metrics.md, once it
# exists; until then they are listed for whoever writes it.
if [ -f docs/metrics.md ]; then
    missing=$(while IFS= read -r m; do
                  grep -q -- "$m" docs/metrics.md || printf '%s ' "$m"
              done <"$TMP/metrics.txt")
    if [ -z "$missing" ]; then
        ok "alerts and dashboard use only metrics docs/metrics.md documents"
    else
        fail "alerts and dashboard use metrics docs/metrics.md does not document: $missing"
    fi
else
    printf '# docs/metrics.md not written yet; alerts and dashboard use: %s\n' \
        "$(tr '\n' ' ' <"$TMP/metrics.txt")"
fi

# ---- Kubernetes: kustomize, shell --------------------------------------------------

if command -v kubectl >/dev/null 2>&1; then
    check "deploy/k8s: kubectl kustomize renders" kubectl kustomize deploy/k8s
else
    printf '# kubectl not installed: kustomize rendering not checked\n'
fi
check "deploy/docker/healthcheck.sh: bash -n" bash -n deploy/docker/healthcheck.sh
if command -v shellcheck >/dev/null 2>&1; then
    check "deploy/docker/healthcheck.sh: shellcheck" shellcheck deploy/docker/healthcheck.sh
fi

if [ ${#FAILED[@]} -ne 0 ]; then
    printf '\ncompose_test: %d check(s) failed:\n' "${#FAILED[@]}" >&2
    printf '  %s\n' "${FAILED[@]}" >&2
    exit 1
fi
printf '\ncompose_test: PASS\n'
