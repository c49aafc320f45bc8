// Validates an OpenRPC document (read from stdin) against the official meta-schema from
// the npm package @open-rpc/meta-schema. Used by tests/api/discover.rs when
// HOOKD_OPENRPC_CHECK names the folder where `npm install @open-rpc/meta-schema @json-schema-tools/meta-schema ajv@8` ran.
const path = require("path");
const root = process.argv[2];
const { openrpcDocument } = require(path.join(root, "node_modules/@open-rpc/meta-schema"));
const { jsonSchema } = require(path.join(root, "node_modules/@json-schema-tools/meta-schema"));
const Ajv = require(path.join(root, "node_modules/ajv")).default;

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const schema = { ...openrpcDocument };
  delete schema.$schema; // a draft-07 dialect under its own name
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  // The meta-schema refers to the JSON Schema meta-schema by its id, with and without the
  // trailing slash.
  for (const id of ["https://meta.json-schema.tools/", "https://meta.json-schema.tools"]) {
    const inner = { ...jsonSchema };
    delete inner.$schema;
    delete inner.$id;
    ajv.addSchema(inner, id);
  }
  const validate = ajv.compile(schema);
  if (validate(JSON.parse(input))) {
    console.log("valid OpenRPC document");
  } else {
    console.error(JSON.stringify(validate.errors, null, 2));
    process.exit(1);
  }
});
