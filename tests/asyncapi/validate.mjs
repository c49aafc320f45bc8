// Checks an AsyncAPI document (read from stdin) two ways: with the official parser
// (@asyncapi/parser, which also applies its spectral rules; any error-severity diagnostic
// fails) and against the official JSON Schema of AsyncAPI 3.0.0 from @asyncapi/specs (ajv).
// Used by tests/api/catalog.rs when HOOKD_ASYNCAPI_CHECK names the folder where
// `npm install @asyncapi/parser @asyncapi/specs ajv@8 ajv-formats@3` ran (.ci/run does).
import path from "node:path";
import { createRequire } from "node:module";

const root = path.resolve(process.argv[2]);
const require = createRequire(path.join(root, "package.json"));
const { Parser } = require("@asyncapi/parser");
const specs = require("@asyncapi/specs");
const Ajv = require("ajv").default;
const addFormats = require("ajv-formats").default;

let input = "";
for await (const chunk of process.stdin) input += chunk;

let failed = false;
const { document, diagnostics } = await new Parser().parse(input);
const errors = diagnostics.filter((d) => d.severity === 0);
if (!document || errors.length > 0) {
  console.error("@asyncapi/parser:", JSON.stringify(errors, null, 2));
  failed = true;
}

const schema = { ...specs.schemas["3.0.0"] };
delete schema.$schema; // draft-07, ajv's default dialect
// The schema embeds the draft-07 meta-schema under its own id: ajv must not add its copy.
const ajv = new Ajv({ strict: false, allErrors: true, meta: false, validateSchema: false });
addFormats(ajv);
const validate = ajv.compile(schema);
if (!validate(JSON.parse(input))) {
  console.error("@asyncapi/specs 3.0.0 JSON Schema:", JSON.stringify(validate.errors.slice(0, 20), null, 2));
  failed = true;
}
if (failed) process.exit(1);
console.log(`valid AsyncAPI ${document.version()} document`);
