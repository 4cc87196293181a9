// The Anthropic Messages API through Meridian with Anthropic's official `@anthropic-ai/sdk`:
// messages.create, messages.stream and a tool round trip (get_weather called, its tool_result
// sent back, a text answer), on every model given. Usage:
//   node tests/clients/anthropic.mjs BASE_URL MODEL...
// BASE_URL is the gateway root (the SDK adds /v1/messages). Every sim dialect calls the first
// tool when the prompt mentions "weather", so every model must make the round trip.
// Prints one line per check; exits non-zero at the first failure.
import Anthropic from "@anthropic-ai/sdk";
import assert from "node:assert/strict";

const [base, ...models] = process.argv.slice(2);
assert.ok(base && models.length, "usage: anthropic.mjs BASE_URL MODEL...");
const client = new Anthropic({ baseURL: base, apiKey: "none", maxRetries: 0, timeout: 20000 });
const text = (m) => m.content.filter((b) => b.type === "text").map((b) => b.text).join("");

const weather = {
  name: "get_weather", description: "Weather for a city",
  input_schema: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
};

for (const model of models) {
  const hello = [{ role: "user", content: "Say hello" }];
  const whole = await client.messages.create({ model, max_tokens: 256, system: "Be brief.", messages: hello });
  assert.equal(whole.type, "message");
  assert.equal(whole.role, "assistant");
  assert.equal(whole.stop_reason, "end_turn");
  assert.ok(text(whole).length > 0, "text");
  assert.ok(whole.usage.input_tokens > 0 && whole.usage.output_tokens > 0, "usage");
  console.log(`ok anthropic-sdk ${model} ${whole.usage.input_tokens}+${whole.usage.output_tokens}`);

  const stream = client.messages.stream({ model, max_tokens: 256, system: "Be brief.", messages: hello });
  let deltas = "";
  stream.on("text", (d) => { deltas += d; });
  const final = await stream.finalMessage();
  assert.equal(final.stop_reason, "end_turn");
  assert.ok(text(final).length > 0, "streamed text");
  assert.equal(text(final), deltas, "final text = the deltas");
  assert.equal(text(final), text(whole), "streamed text = whole text");
  assert.ok(final.usage.input_tokens > 0 && final.usage.output_tokens > 0, "streamed usage");
  console.log(`ok anthropic-sdk stream ${model} ${final.usage.input_tokens}+${final.usage.output_tokens}`);

  const question = { role: "user", content: "What is the weather in Paris?" };
  const asked = await client.messages.create({ model, max_tokens: 256, tools: [weather], messages: [question] });
  const call = asked.content.find((b) => b.type === "tool_use");
  assert.ok(call, `a tool_use block (got ${JSON.stringify(asked.content)})`);
  assert.equal(asked.stop_reason, "tool_use");
  assert.equal(call.name, "get_weather");
  assert.deepEqual(call.input, { location: "Paris" });
  assert.ok(call.id.length > 0, "tool_use id");
  const turn = [question, { role: "assistant", content: asked.content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "Sunny, 21 C" }] }];
  const answered = await client.messages.create({ model, max_tokens: 256, tools: [weather], messages: turn });
  assert.equal(answered.stop_reason, "end_turn");
  assert.ok(text(answered).length > 0, "the answer after the tool_result");

  // The same call streamed: input_json deltas that add up to the input.
  const streamed = client.messages.stream({ model, max_tokens: 256, tools: [weather], messages: [question] });
  let json = "";
  streamed.on("inputJson", (d) => { json += d; });
  const sm = await streamed.finalMessage();
  const sc = sm.content.find((b) => b.type === "tool_use");
  assert.ok(sc, "a streamed tool_use block");
  assert.equal(sm.stop_reason, "tool_use");
  assert.deepEqual(sc.input, { location: "Paris" });
  assert.deepEqual(JSON.parse(json), sc.input, "input_json deltas = the input");
  console.log(`ok anthropic-sdk tools ${model}`);
}
