// @helicone/helpers' HeliconeManualLogger against a real gateway, with OpenAI calls answered
// by the test emulator (tests/test_manual_log_e2e.py runs this and checks every record through
// the query API). Each case sends its own Helicone-Request-Id; the script prints
// {"case": "<request id>", ...} as its last line once every log call has been answered.
//
// Environment: GATEWAY_URL, GATEWAY_KEY, UPSTREAM_URL (the emulator's /v1 base), UPSTREAM_KEY,
// SESSION_ID.
import { randomUUID } from "node:crypto";

import { HeliconeManualLogger } from "@helicone/helpers";
import OpenAI from "openai";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const logger = new HeliconeManualLogger({
  apiKey: env("GATEWAY_KEY"),
  headers: { "Helicone-Property-Client": "node" },
  loggingEndpoint: `${env("GATEWAY_URL")}/custom/v1/log`,
});
const openai = new OpenAI({ baseURL: env("UPSTREAM_URL"), apiKey: env("UPSTREAM_KEY") });
const session = env("SESSION_ID");
const ids = {};
// The SDK reports a refused log call with console.error only: make it fail the run.
const refusals = [];
const report = console.error;
console.error = (...args) => {
  refusals.push(args.map(String).join(" "));
  report(...args);
};

function headers(name, path) {
  ids[name] = randomUUID();
  return {
    "Helicone-Request-Id": ids[name],
    "Helicone-User-Id": "node-user",
    "Helicone-Session-Id": session,
    "Helicone-Session-Path": path,
    "Helicone-Session-Name": "node session",
  };
}

async function drain(stream) {
  const reader = stream.getReader();
  for (;;) {
    const { done } = await reader.read();
    if (done) return;
  }
}

const messages = [{ role: "user", content: "Say hello from Node" }];

// logRequest: a whole chat completion, logged to /oai/v1/log (provider OPENAI).
const chat = { model: "gpt-4o-mini", messages };
await logger.logRequest(
  chat,
  async (recorder) => {
    const answer = await openai.chat.completions.create(chat);
    recorder.appendResults(answer);
    return answer;
  },
  headers("logRequest", "/node/request"),
  "OPENAI",
);

// logStream: a streamed completion with usage, one copy to the caller, one to the logger.
const streamed = { ...chat, stream: true, stream_options: { include_usage: true } };
let consumed = "";
await logger.logStream(
  streamed,
  async (recorder) => {
    const stream = await openai.chat.completions.create(streamed);
    const [forUser, forLog] = stream.tee();
    recorder.attachStream(forLog.toReadableStream());
    for await (const chunk of forUser) consumed += chunk.choices[0]?.delta?.content ?? "";
    return consumed;
  },
  headers("logStream", "/node/stream"),
);
if (!consumed) throw new Error("the stream gave the caller nothing");

// logBuilder: the recommended stream recipe (toReadableStream, then sendLog).
const builder = logger.logBuilder(streamed, headers("logBuilder", "/node/builder"));
const builderStream = await openai.chat.completions.create(streamed);
await drain(builder.toReadableStream(builderStream));
await builder.sendLog();

// logBuilder.setError: an error status (500) with the error text in the body.
const failing = logger.logBuilder(chat, headers("logBuilderError", "/node/error"));
failing.setError(new Error("upstream exploded"));
await failing.sendLog();

// logSingleRequest: a custom tool event (no tokens, model tool:<name>).
await logger.logSingleRequest(
  { _type: "tool", toolName: "calculator", input: { expression: "2 + 2" } },
  JSON.stringify({ result: 4 }),
  { additionalHeaders: headers("tool", "/node/tool"), latencyMs: 25 },
);

// A Google-shaped answer logged with the GOOGLE hint (/googleapis/v1/log).
const gemini = { model: "gemini-2.5-flash", contents: [{ role: "user", parts: [{ text: "hi" }] }] };
await logger.logRequest(
  gemini,
  async (recorder) => {
    const answer = {
      candidates: [{ content: { role: "model", parts: [{ text: "Hello!" }] } }],
      modelVersion: "gemini-2.5-flash",
      usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 3, totalTokenCount: 14 },
    };
    recorder.appendResults(answer);
    return answer;
  },
  headers("google", "/node/google"),
  "GOOGLE",
);

if (refusals.length) {
  report(`${refusals.length} log call(s) failed`);
  process.exit(1);
}
console.log(JSON.stringify(ids));
