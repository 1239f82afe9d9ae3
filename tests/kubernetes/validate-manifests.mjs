// Validates rendered Kubernetes manifests (multi-document YAML files, as
// `kubectl kustomize` prints them) client-side: every object against the
// Kubernetes API schema of its apiVersion/kind (kubernetes-models), with no
// field the API does not have (checked against the models' declarations,
// since the schemas allow unknown fields), then Cloak's own rules (RuntimeClass handlers and node labels, references
// between objects). Exits 1 listing every problem.
//
//   node validate-manifests.mjs RENDERED.yaml...
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { parseAllDocuments } from "yaml";

const require = createRequire(import.meta.url);

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

// The JSON schemas do not forbid unknown fields, so a misspelt key would
// pass them; the TypeScript declarations next to each model list every
// field. Declarations parsed: file -> {interfaces, imports, aliases}.
const declarations = new Map();
function declaration(file) {
  if (declarations.has(file)) return declarations.get(file);
  const text = readFileSync(file, "utf8");
  const d = { interfaces: new Map(), imports: new Map(), aliases: new Map() };
  for (const m of text.matchAll(/^import \{([^}]*)\} from "([^"]+)";/gm)) {
    for (const name of m[1].split(",").map((n) => n.trim()).filter(Boolean)) d.imports.set(name, m[2]);
  }
  for (const m of text.matchAll(/^export \{([^}]*)\};/gm)) {
    for (const part of m[1].split(",")) {
      const [local, alias] = part.trim().split(/\s+as\s+/);
      if (alias) d.aliases.set(alias, local);
    }
  }
  for (const m of text.matchAll(/^export interface (\w+)[^{]*\{\n([\s\S]*?)^\}/gm)) {
    const fields = new Map();
    for (const f of m[2].matchAll(/^ {4}"([^"]+)"\??: (.*)$/gm)) fields.set(f[1], f[2]);
    d.interfaces.set(m[1], fields);
  }
  declarations.set(file, d);
  return d;
}

// The declaration file and interface a type name refers to from `file`.
function resolveType(file, name) {
  const d = declaration(file);
  if (d.interfaces.has(name)) return { file, iface: name };
  if (d.aliases.has(name)) return { file, iface: d.aliases.get(name) };
  const from = d.imports.get(name);
  if (from === undefined) return null;
  let target;
  if (from.startsWith(".")) {
    target = join(dirname(file), `${from}.d.ts`);
  } else {
    const [scope, pkg, ...rest] = from.split("/");
    const root = dirname(require.resolve(`${scope}/${pkg}/package.json`));
    target = join(root, `${rest.join("/")}.d.ts`);
  }
  if (!existsSync(target)) return null;
  const t = declaration(target);
  const iface = t.aliases.get(name) ?? name;
  return t.interfaces.has(iface) ? { file: target, iface } : null;
}

function unknownFields(value, file, iface, path, out) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const fields = declaration(file).interfaces.get(iface);
  if (fields === undefined) return;
  for (const [key, v] of Object.entries(value)) {
    if (!fields.has(key)) {
      out.push(`${path}${key}: unknown field (not in ${iface.replace(/^I/, "")})`);
      continue;
    }
    const type = fields.get(key).replace(/;$/, "");
    const array = /^Array<(\w+)>$/.exec(type);
    const single = /^(\w+)$/.exec(type);
    const name = array?.[1] ?? single?.[1];
    if (name === undefined || ["string", "number", "boolean", "any"].includes(name)) continue;
    const target = resolveType(file, name);
    if (target === null) continue;
    const items = array ? (Array.isArray(v) ? v : []) : [v];
    items.forEach((item, i) =>
      unknownFields(item, target.file, target.iface, `${path}${key}${array ? `[${i}]` : ""}.`, out));
  }
}

function modelDeclaration(apiVersion, kind) {
  const file = join(dirname(require.resolve("kubernetes-models/package.json")), apiVersion, `${kind}.d.ts`);
  return existsSync(file) ? file : null;
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
    const dts = modelDeclaration(obj.apiVersion, obj.kind);
    if (dts === null) {
      problem(where, `no declaration of ${obj.apiVersion} ${obj.kind} to check its fields against`);
    } else {
      const unknown = [];
      unknownFields(obj, dts, `I${obj.kind}`, "", unknown);
      for (const u of unknown) problem(where, u);
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
