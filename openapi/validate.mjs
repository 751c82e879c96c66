#!/usr/bin/env node
// Contract check: validates recorded gateway responses against the OpenAPI document.
//
//   node openapi/validate.mjs OPENAPI.json RESPONSES.jsonl
//
// Each line of RESPONSES.jsonl is one real response, recorded by tests/integration/test_openapi.c:
//   {"method":"GET","route":"/v1/admin/audit","path":"/v1/admin/audit?loyalty_id=x",
//    "status":404,"headers":{"content-type":"...","x-request-id":"..."},"body":"..."}
// where route is the path template of the gateway's route table. A response fails when its
// operation or status is not documented, a required documented header is missing or does not
// match its schema, its media type is not documented for the status, or its body does not
// validate against the documented schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses it).
// Every documented operation must have been exercised at least once. Exit 0 only when all pass.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

const addFormats = addFormatsModule.default ?? addFormatsModule;
const [docPath, recPath] = process.argv.slice(2);
if (!docPath || !recPath) {
  console.error('usage: validate.mjs OPENAPI.json RESPONSES.jsonl');
  process.exit(2);
}
const doc = JSON.parse(readFileSync(docPath, 'utf8'));
const records = readFileSync(recPath, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));

// OpenAPI keywords that are not JSON Schema validation keywords are annotations here.
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true, validateFormats: true });
addFormats(ajv);
for (const kw of ['example', 'xml', 'externalDocs', 'discriminator']) ajv.addKeyword(kw);
// Schemas refer to each other as "#/components/schemas/X": here that is "oas#/$defs/X".
function rewriteRefs(node) {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node && typeof node === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(node))
      out[k] =
        k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')
          ? `oas#/$defs/${v.slice('#/components/schemas/'.length)}`
          : rewriteRefs(v);
    return out;
  }
  return node;
}
ajv.addSchema({ $id: 'oas', $defs: rewriteRefs(doc.components?.schemas ?? {}) });

function deref(obj) {
  let seen = 0;
  while (obj && obj.$ref) {
    if (++seen > 20 || !obj.$ref.startsWith('#/')) throw new Error(`cannot resolve ${obj.$ref}`);
    obj = obj.$ref
      .slice(2)
      .split('/')
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((o, k) => (o ? o[k] : undefined), doc);
  }
  return obj;
}

const compiled = new Map();
function validator(schema, key) {
  if (!compiled.has(key)) compiled.set(key, ajv.compile(rewriteRefs(schema)));
  return compiled.get(key);
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const exercised = new Map(); // "GET /path" -> Set of statuses
for (const [p, item] of Object.entries(doc.paths ?? {}))
  for (const m of METHODS) if (item[m]) exercised.set(`${m.toUpperCase()} ${p}`, new Set());

const failures = [];
let passed = 0;
for (const r of records) {
  const where = `${r.method} ${r.path} → ${r.status}`;
  const errs = [];
  const item = doc.paths?.[r.route];
  let method = r.method.toUpperCase();
  let op = item?.[method.toLowerCase()];
  if (!op && item && r.status === 405) {
    // A method the path does not take: the path's operations document that 405 (with Allow).
    method = METHODS.find((m) => item[m]?.responses?.['405'])?.toUpperCase();
    op = method && item[method.toLowerCase()];
  }
  if (!op) {
    failures.push(`${where}: operation ${r.method} ${r.route} is not documented`);
    continue;
  }
  exercised.get(`${method} ${r.route}`)?.add(r.status);
  const responses = op.responses ?? {};
  const declared =
    responses[String(r.status)] ?? responses[`${String(r.status)[0]}XX`] ?? responses.default;
  if (!declared) {
    failures.push(`${where}: status ${r.status} is not documented for ${method} ${r.route}`);
    continue;
  }
  const resp = deref(declared);
  const headers = Object.fromEntries(
    Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])
  );
  for (const [name, h0] of Object.entries(resp.headers ?? {})) {
    const h = deref(h0);
    const v = headers[name.toLowerCase()];
    if (v === undefined) {
      if (h.required) errs.push(`required header ${name} is missing`);
      continue;
    }
    if (h.schema) {
      const s = deref(h.schema);
      const value = s.type === 'integer' || s.type === 'number' ? Number(v) : v;
      const validate = validator(h.schema, `header:${r.route}:${method}:${r.status}:${name}`);
      if (!validate(value)) errs.push(`header ${name}: ${ajv.errorsText(validate.errors)}`);
    }
  }
  const content = resp.content ?? {};
  const ctype = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (Object.keys(content).length === 0) {
    if (r.body) errs.push(`a body was sent (${r.body.length} bytes) but none is documented`);
  } else {
    const media = Object.entries(content).find(([k]) => k.toLowerCase() === ctype);
    if (!media) {
      errs.push(`media type "${ctype}" is not documented (documented: ${Object.keys(content).join(', ')})`);
    } else if (media[1].schema) {
      let value = r.body;
      if (ctype === 'application/json' || ctype.endsWith('+json')) {
        try {
          value = JSON.parse(r.body);
        } catch (e) {
          errs.push(`body is not JSON: ${e.message}`);
          value = undefined;
        }
      }
      if (value !== undefined) {
        const validate = validator(media[1].schema, `body:${r.route}:${method}:${r.status}:${ctype}`);
        if (!validate(value))
          errs.push(
            `body does not match the documented schema: ${ajv.errorsText(validate.errors, { separator: '; ' })}`
          );
      }
    }
  }
  if (errs.length) failures.push(`${where}:\n    ${errs.join('\n    ')}`);
  else passed++;
}

let documented = 0;
let covered = 0;
console.log('operation coverage (statuses exercised / documented):');
for (const [key, seen] of exercised) {
  const [m, p] = key.split(' ');
  const statuses = Object.keys(doc.paths[p][m.toLowerCase()].responses ?? {});
  documented += statuses.length;
  covered += statuses.filter((s) => seen.has(Number(s))).length;
  const mark = (s) => (seen.has(Number(s)) ? s : `(${s})`);
  console.log(`  ${key.padEnd(52)} ${statuses.map(mark).join(' ')}`);
  if (seen.size === 0) failures.push(`${key}: documented but no response of it was checked`);
}
console.log('  (in parentheses: documented, not provoked by the test)');
for (const f of failures) console.log(`FAIL ${f}`);
console.log(
  `openapi contract: ${records.length} responses, ${passed} valid, ${records.length - passed} invalid; ` +
    `${exercised.size} operations; ${covered} of ${documented} documented (operation, status) pairs exercised`
);
process.exit(failures.length ? 1 : 0);
