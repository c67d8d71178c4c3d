// Cabildo through the official OpenAI npm library, as a partner would call it.
// Run by tests/openai_clients.rs with CABILDO_BASE_URL (…/v1), CABILDO_KEY (a valid API key),
// CABILDO_QUOTA_KEY (a key whose daily quota is used up). Exits non-zero on the first failure.
import OpenAI from "openai";

const baseURL = process.env.CABILDO_BASE_URL;
// No retries: a 429 must surface as the library's error, not be waited out.
const client = new OpenAI({ baseURL, apiKey: process.env.CABILDO_KEY, maxRetries: 0 });
const QUESTION = "¿Desde qué edad se puede votar en Chile?";

function check(what, ok, detail = "") {
  console.log((ok ? "ok   " : "FAIL ") + what + (ok ? "" : `: ${JSON.stringify(detail)}`));
  if (!ok) process.exit(1);
}

const models = [];
for await (const m of client.models.list()) models.push(m.id);
check("models.list names the answering model", models.length === 1 && models[0].startsWith("cabildo-"), models);

const reply = await client.chat.completions.create({
  model: models[0],
  messages: [{ role: "user", content: QUESTION }],
  max_completion_tokens: 200,
  top_p: 1,
});
const text = reply.choices[0].message.content;
check("a completion cites Artículo 13", text.includes("Artículo 13"), text);
check("citations come in the extra field", reply.citations.some((c) => c.label.endsWith("Artículo 13")), reply.citations);
check("usage counts are numbers", typeof reply.usage.total_tokens === "number", reply.usage);

let streamed = "";
let finish = null;
let usage = null;
const stream = await client.chat.completions.create({
  model: models[0],
  messages: [{ role: "user", content: QUESTION }],
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.choices.length) {
    streamed += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}
check("a stream carries the answer", streamed.includes("Artículo 13"), streamed);
check("a stream ends with finish_reason stop", finish === "stop", finish);
check("a stream reports usage when asked", usage !== null, usage);

const follow = await client.chat.completions.create({
  model: models[0],
  messages: [
    { role: "user", content: QUESTION },
    { role: "assistant", content: text },
    { role: "user", content: "¿Y quiénes pierden ese derecho?" },
  ],
  cabildo: { register: "usted" },
});
check(
  "a follow-up is answered from the Constitution",
  !follow.abstained && follow.citations.some((c) => c.label.includes("Artículo 1")),
  follow.choices[0].message.content,
);

try {
  await new OpenAI({ baseURL, apiKey: "cbk_not-a-key", maxRetries: 0 }).models.list();
  check("a bad key raises AuthenticationError", false, "no error");
} catch (e) {
  check("a bad key raises AuthenticationError", e instanceof OpenAI.AuthenticationError && e.status === 401, String(e));
}

try {
  await new OpenAI({ baseURL, apiKey: process.env.CABILDO_QUOTA_KEY, maxRetries: 0 }).chat.completions.create({
    model: models[0],
    messages: [{ role: "user", content: QUESTION }],
  });
  check("a spent quota raises RateLimitError", false, "no error");
} catch (e) {
  check("a spent quota raises RateLimitError", e instanceof OpenAI.RateLimitError && e.status === 429, String(e));
}

console.log("npm openai all checks passed");
