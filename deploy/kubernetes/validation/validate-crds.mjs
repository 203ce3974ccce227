// Validates prometheus-operator custom resources against the CRD JSON schemas that the npm package
// @kubernetes-models/prometheus-operator compiles (one validator per kind and version).
//
//   node validate-crds.mjs < resources.json     (a JSON array of resources)
//
// Prints a JSON array with one {apiVersion, kind, name, errors} per resource; a kind this package
// has no schema for is an error, never a pass. Exit status 0 when every resource is valid, 1 otherwise.
// Called by tests/unit/deploy/test_kubernetes.py; `make install` installs the package (npm ci).
import { readFileSync } from "node:fs";

const GROUP = "monitoring.coreos.com";

async function validatorFor(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  if (group !== GROUP || !/^[A-Za-z0-9]+$/.test(kind) || !/^v[0-9a-z]+$/.test(version ?? "")) {
    return null;
  }
  try {
    const module = await import(`@kubernetes-models/prometheus-operator/${GROUP}/${version}/${kind}`);
    return module[kind] ?? null;
  } catch (error) {
    if (error.code === "ERR_MODULE_NOT_FOUND" || error.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return null;
    throw error;
  }
}

const resources = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const resource of resources) {
  const { apiVersion = "", kind = "", metadata = {} } = resource;
  const entry = { apiVersion, kind, name: metadata.name ?? "", errors: [] };
  const Model = await validatorFor(apiVersion, kind);
  if (Model === null) {
    entry.errors.push(`no schema for ${apiVersion} ${kind} in @kubernetes-models/prometheus-operator`);
  } else {
    try {
      new Model(resource).validate();
    } catch (error) {
      const details = (error.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
      entry.errors.push(...(details.length ? details : [String(error.message ?? error)]));
    }
  }
  results.push(entry);
}
process.stdout.write(JSON.stringify(results, null, 1) + "\n");
process.exitCode = results.some((r) => r.errors.length) ? 1 : 0;
