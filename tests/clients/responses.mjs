// The OpenAI Responses API through Meridian with the clients people use: the official `openai`
// SDK (responses.create, responses.stream, a function tool, whole and streamed, and stored
// responses: retrieve, previous_response_id, inputItems.list, delete) and the AI SDK's
// default OpenAI provider (generateText and streamText, which speak Responses). Usage:
//   node tests/clients/responses.mjs BASE_URL MODEL... (every model makes a function-tool round trip)
// Prints one line per check; exits non-zero at the first failure.
import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import assert from "node:assert/strict";

const [base, ...models] = process.argv.slice(2);
assert.ok(base && models.length, "usage: responses.mjs BASE_URL MODEL...");
const client = new OpenAI({ baseURL: base, apiKey: "none", maxRetries: 0, timeout: 20000 });

for (const model of models) {
  const whole = await client.responses.create({ model, instructions: "Be brief.", input: "Say hello" });
  assert.equal(whole.status, "completed");
  assert.ok(whole.output_text.length > 0, "output_text");
  assert.ok(whole.usage.input_tokens > 0 && whole.usage.output_tokens > 0, "usage");
  assert.equal(whole.usage.total_tokens, whole.usage.input_tokens + whole.usage.output_tokens);

  const stream = client.responses.stream({ model, instructions: "Be brief.", input: "Say hello" });
  let deltas = "";
  for await (const ev of stream) if (ev.type === "response.output_text.delta") deltas += ev.delta;
  const final = await stream.finalResponse();
  assert.equal(final.status, "completed");
  assert.equal(final.output_text, deltas);
  assert.equal(final.output_text, whole.output_text, "streamed text = whole text");
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
  console.log(`ok openai responses ${model} ${whole.usage.input_tokens}+${whole.usage.output_tokens}`);
}

const weather = {
  type: "function", name: "get_weather", description: "Weather for a city", strict: false,
  parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
};
for (const model of models) {
  const asked = await client.responses.create({
    model, input: "What is the weather in Paris?", tools: [weather],
  });
  const call = asked.output.find((i) => i.type === "function_call");
  assert.ok(call, "a function_call item");
  assert.equal(call.name, "get_weather");
  assert.deepEqual(JSON.parse(call.arguments), { location: "Paris" });
  const answered = await client.responses.create({
    model, tools: [weather], store: false,
    input: [
      { role: "user", content: "What is the weather in Paris?" },
      { type: "function_call", call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: "function_call_output", call_id: call.call_id, output: "Sunny" },
    ],
  });
  assert.ok(answered.output_text.length > 0, "the answer after the tool output");
  const streamedCall = client.responses.stream({
    model, input: "What is the weather in Paris?", tools: [weather],
  });
  let args = "";
  for await (const ev of streamedCall)
    if (ev.type === "response.function_call_arguments.delta") args += ev.delta;
  const sc = (await streamedCall.finalResponse()).output.find((i) => i.type === "function_call");
  assert.ok(sc, "a streamed function_call item");
  assert.equal(sc.arguments, args);
  assert.deepEqual(JSON.parse(args), { location: "Paris" });
  console.log(`ok openai tools ${model}`);
}

// Stored responses: retrieve, a second turn by previous_response_id (the backend may be
// stateless: Meridian sends it the whole conversation), input_items and delete.
for (const model of models) {
  const first = await client.responses.create({ model, input: "My name is Ada." });
  assert.equal(first.store, true);
  const got = await client.responses.retrieve(first.id);
  assert.equal(got.id, first.id);
  assert.deepEqual(got.output, first.output);
  const next = await client.responses.create({
    model, input: "What is my name?", previous_response_id: first.id,
  });
  assert.equal(next.previous_response_id, first.id);
  assert.ok(next.output_text.length > 0, "the second turn's text");
  const items = [];
  for await (const item of client.responses.inputItems.list(next.id, { order: "asc" }))
    items.push(item);
  assert.equal(items.length, 3, "the first input, the first answer, the second input");
  assert.equal(items[0].content[0].text, "My name is Ada.");
  assert.equal(items[1].role, "assistant");
  assert.equal(items[2].content[0].text, "What is my name?");
  await client.responses.delete(first.id);
  await assert.rejects(client.responses.retrieve(first.id), (e) => e.status === 404);
  console.log(`ok openai stored ${model}`);
}

const provider = createOpenAI({ baseURL: base, apiKey: "none" });  // Responses by default
for (const model of models) {
  const g = await generateText({ model: provider(model), prompt: "Say hello", maxRetries: 0 });
  assert.ok(g.text.length > 0, "generateText text");
  assert.ok(g.usage.outputTokens > 0, "generateText usage");
  const s = streamText({ model: provider(model), prompt: "Say hello", maxRetries: 0 });
  let text = "";
  for await (const d of s.textStream) text += d;
  assert.equal(text, g.text, "streamText = generateText");
  assert.equal((await s.usage).outputTokens, g.usage.outputTokens);
  console.log(`ok ai-sdk ${model}`);
}
