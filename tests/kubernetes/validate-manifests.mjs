// Validates rendered Kubernetes manifests (multi-document YAML files, as
// `kubectl kustomize` prints them) client-side: every object against the
// Kubernetes API schema of its apiVersion/kind (kubernetes-models), then
// Cloak's own rules (RuntimeClass handlers and node labels, references
// between objects). Exits 1 listing every problem.
//
//   node validate-manifests.mjs RENDERED.yaml...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const HANDLERS = new Set(["cloak-dev", "cloak-snp", "cloak-tdx"]);
const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);

// "apps/v1" -> "kubernetes-models/apps/v1"; "v1" -> "kubernetes-models/v1".
async function modelFor(apiVersion, kind) {
  let mod;
  try {
    mod = await import(`kubernetes-models/${apiVersion}`);
  } catch {
    return null;
  }
  return mod[kind] ?? null;
}

async function validateFile(file) {
  const objects = [];
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      problem(`${file} document ${i + 1}`, `not YAML: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    const where = `${file}: ${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      problem(where, "no apiVersion or kind");
      continue;
    }
    const Model = await modelFor(obj.apiVersion, obj.kind);
    if (Model === null) {
      problem(where, `unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problem(where, `schema: ${e.message}`);
    }
    objects.push({ obj, where });
  }
  checkCloakRules(file, objects);
  return objects.length;
}

function checkCloakRules(file, objects) {
  const byKind = (kind) => objects.filter((o) => o.obj.kind === kind);
  const names = (kind, ns) =>
    new Set(byKind(kind).filter((o) => ns === undefined || o.obj.metadata?.namespace === ns)
      .map((o) => o.obj.metadata?.name));
  const namespaces = names("Namespace");

  for (const { obj, where } of byKind("RuntimeClass")) {
    if (!HANDLERS.has(obj.handler)) problem(where, `handler ${obj.handler} is not a Cloak handler`);
    if (obj.metadata?.name !== obj.handler) problem(where, "name and handler differ");
    const sel = obj.scheduling?.nodeSelector ?? {};
    if (sel[`cloak.io/runtime-${obj.handler}`] !== "true") {
      problem(where, `scheduling.nodeSelector must require cloak.io/runtime-${obj.handler}: "true"`);
    }
    if (!obj.overhead?.podFixed?.memory) problem(where, "overhead.podFixed.memory is missing");
  }

  for (const { obj, where } of objects) {
    const ns = obj.metadata?.namespace;
    if (ns !== undefined && namespaces.size > 0 && !namespaces.has(ns)) {
      problem(where, `namespace ${ns} is not among the rendered Namespaces`);
    }
  }

  for (const kind of ["DaemonSet", "Deployment"]) {
    for (const { obj, where } of byKind(kind)) {
      const ns = obj.metadata?.namespace;
      const spec = obj.spec?.template?.spec ?? {};
      const labels = obj.spec?.template?.metadata?.labels ?? {};
      for (const [k, v] of Object.entries(obj.spec?.selector?.matchLabels ?? {})) {
        if (labels[k] !== v) problem(where, `selector ${k}=${v} does not match the pod template`);
      }
      const sa = spec.serviceAccountName;
      if (sa !== undefined && !names("ServiceAccount", ns).has(sa)) {
        problem(where, `serviceAccountName ${sa} is not a rendered ServiceAccount in ${ns}`);
      }
      const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
      for (const c of spec.containers ?? []) {
        for (const m of c.volumeMounts ?? []) {
          if (!volumes.has(m.name)) problem(where, `container ${c.name} mounts unknown volume ${m.name}`);
        }
      }
    }
  }

  for (const { obj, where } of byKind("ClusterRoleBinding")) {
    if (!names("ClusterRole").has(obj.roleRef?.name)) {
      problem(where, `roleRef ${obj.roleRef?.name} is not a rendered ClusterRole`);
    }
    for (const s of obj.subjects ?? []) {
      if (s.kind === "ServiceAccount" && !names("ServiceAccount", s.namespace).has(s.name)) {
        problem(where, `subject ${s.namespace}/${s.name} is not a rendered ServiceAccount`);
      }
    }
  }

  for (const { obj, where } of byKind("Service")) {
    const sel = obj.spec?.selector ?? {};
    const ns = obj.metadata?.namespace;
    const matches = objects.filter(({ obj: o }) =>
      ["Deployment", "DaemonSet"].includes(o.kind) && o.metadata?.namespace === ns &&
      Object.entries(sel).every(([k, v]) => (o.spec?.template?.metadata?.labels ?? {})[k] === v));
    if (matches.length === 0) problem(where, "its selector matches no rendered workload");
  }
}

let total = 0;
for (const file of process.argv.slice(2)) total += await validateFile(file);
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`validate-manifests: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`validate-manifests: ${total} objects in ${process.argv.length - 2} file(s) are valid`);
