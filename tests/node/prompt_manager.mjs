// @helicone/helpers' HeliconePromptManager against a real gateway's /v1/prompt-2025 facade
// (tests/test_prompts_node.py runs this). baseUrl is the only thing changed from Helicone's
// setup: the manager queries versions with the key, fetches each body from the version's
// s3_url without one (the gateway's signed link), and merges client-side. Partials are
// resolved the way the SDK leaves to its caller: extractPromptPartials, pullPromptBody of
// each referenced prompt, getPromptPartialSubstitutionValue, then mergePromptBody.
//
// Prints one JSON line with what every call returned (errors as {"error": message}).
//
// Environment: GATEWAY_URL, GATEWAY_KEY, PROMPT_ID (deployed to production and staging),
// STAGING_VERSION_ID, MAIN_ID (a prompt using a partial), TYPED_ID (a {{hc:age:number}}).
import { HeliconePromptManager } from "@helicone/helpers";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const manager = new HeliconePromptManager({
  apiKey: env("GATEWAY_KEY"),
  baseUrl: env("GATEWAY_URL"),
});
// The SDK logs failures with console.error before rethrowing: keep stdout/stderr quiet.
console.error = () => {};

async function attempt(work) {
  try {
    return await work();
  } catch (error) {
    return { error: String(error && error.message ? error.message : error) };
  }
}

const promptId = env("PROMPT_ID");
const runtime = {
  prompt_id: promptId,
  inputs: { company: "Acme Corp" },
  model: "gpt-4o-mini",
  temperature: 0.4,
  messages: [{ role: "user", content: "Actually, I want to cancel my subscription." }],
};

const out = {};
out.production = await attempt(() => manager.pullPromptVersion({ prompt_id: promptId }));
out.staging = await attempt(() =>
  manager.pullPromptVersion({ prompt_id: promptId, environment: "staging" }),
);
out.byVersion = await attempt(() =>
  manager.pullPromptVersion({ prompt_id: promptId, version_id: env("STAGING_VERSION_ID") }),
);
out.stagingBody = await attempt(() =>
  manager.pullPromptBodyByVersionId(env("STAGING_VERSION_ID")),
);
out.compiled = await attempt(() => manager.getPromptBody(runtime));
out.compiledStaging = await attempt(() =>
  manager.getPromptBody({ ...runtime, environment: "staging" }),
);

const mainId = env("MAIN_ID");
const mainInputs = { customer_name: "Alice", company: "TechCorp" };
out.partials = await attempt(async () => {
  const source = await manager.pullPromptBody({ prompt_id: mainId });
  const partials = manager.extractPromptPartials(source);
  const values = {};
  for (const partial of partials) {
    const body = await manager.pullPromptBody({
      prompt_id: partial.prompt_id,
      environment: partial.environment,
    });
    values[partial.raw] = manager.getPromptPartialSubstitutionValue(partial, body);
  }
  return manager.mergePromptBody({ prompt_id: mainId, inputs: mainInputs }, source, values);
});

out.typedBad = await attempt(() =>
  manager.getPromptBody({ prompt_id: env("TYPED_ID"), inputs: { age: "abc" } }),
);
out.unknown = await attempt(() => manager.getPromptBody({ prompt_id: "nope42", inputs: {} }));
out.unknownEnvironment = await attempt(() =>
  manager.pullPromptVersion({ prompt_id: promptId, environment: "qa" }),
);

process.stdout.write(`${JSON.stringify(out)}\n`);
