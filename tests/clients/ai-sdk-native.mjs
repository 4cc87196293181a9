// The AI SDK on Meridian's native-dialect endpoints: its Anthropic provider (/v1/messages) and
// its Google provider (/v1beta/models/MODEL:generateContent and :streamGenerateContent), each
// with generateText and streamText on every model given, and a tool() round trip (get_weather
// called, executed, its result sent back, a text answer) on the tool models. Usage:
//   node tests/clients/ai-sdk-native.mjs BASE_URL TOOL_MODELS MODEL...
// TOOL_MODELS is a comma-separated list of the models whose backend calls tools (those with
// "weather" in the prompt call the first tool). BASE_URL is the gateway root.
// @ai-sdk/google puts a model id that contains "/" into the path as it is, without "models/"
// (meant for "tunedModels/x"): "gem/gemini-2.5-flash" would become /v1beta/gem/gemini-2.5-flash,
// so the Gemini resource name "models/gem/gemini-2.5-flash" is what a user passes.
// Prints one line per check; exits non-zero at the first failure.
import { createAnthropic } from "@ai-sdk/anthropic";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import assert from "node:assert/strict";

const [base, toolList, ...models] = process.argv.slice(2);
assert.ok(base && toolList !== undefined && models.length,
  "usage: ai-sdk-native.mjs BASE_URL TOOL_MODELS MODEL...");
const toolModels = new Set(toolList.split(",").filter(Boolean));

const providers = [
  ["ai-sdk-anthropic", createAnthropic({ baseURL: `${base}/v1`, apiKey: "none" }), (m) => m],
  ["ai-sdk-google", createGoogleGenerativeAI({ baseURL: `${base}/v1beta`, apiKey: "none" }),
    (m) => (m.includes("/") ? `models/${m}` : m)],
];

let executed = 0;
const tools = {
  get_weather: tool({
    description: "Weather for a city",
    inputSchema: jsonSchema({
      type: "object", properties: { location: { type: "string" } }, required: ["location"],
      additionalProperties: false,
    }),
    execute: async ({ location }) => { executed++; return `Sunny, 21 C in ${location}`; },
  }),
};

for (const [name, provider, id] of providers) {
  for (const model of models) {
    const common = { model: provider(id(model)), system: "Be brief.", prompt: "Say hello", maxOutputTokens: 256, maxRetries: 0 };
    const g = await generateText(common);
    assert.ok(g.text.length > 0, "generateText text");
    assert.equal(g.finishReason, "stop");
    assert.ok(g.usage.inputTokens > 0 && g.usage.outputTokens > 0, "generateText usage");
    console.log(`ok ${name} ${model} ${g.usage.inputTokens}+${g.usage.outputTokens}`);

    const s = streamText({ ...common, onError: ({ error }) => { throw error; } });
    let text = "";
    for await (const d of s.textStream) text += d;
    assert.equal(text, g.text, "streamText = generateText");
    assert.equal(await s.finishReason, "stop");
    const su = await s.usage;
    assert.ok(su.inputTokens > 0 && su.outputTokens > 0, "streamText usage");
    console.log(`ok ${name} stream ${model} ${su.inputTokens}+${su.outputTokens}`);

    if (!toolModels.has(model)) continue;
    const ask = {
      model: provider(id(model)), prompt: "What is the weather in Paris?", tools,
      stopWhen: stepCountIs(3), maxOutputTokens: 256, maxRetries: 0,
    };
    const before = executed;
    const t = await generateText(ask);
    assert.ok(t.steps.length >= 2, `a tool step and an answer (${t.steps.length} steps)`);
    const [call] = t.steps[0].toolCalls;
    assert.ok(call, "a tool call in the first step");
    assert.equal(call.toolName, "get_weather");
    assert.deepEqual(call.input, { location: "Paris" });
    assert.equal(t.steps[0].finishReason, "tool-calls");
    assert.equal(t.steps[0].toolResults[0].output, "Sunny, 21 C in Paris");
    assert.equal(executed, before + 1, "executed once");
    assert.equal(t.finishReason, "stop");
    assert.ok(t.text.length > 0, "the answer after the tool result");

    const st = streamText({ ...ask, onError: ({ error }) => { throw error; } });
    const calls = [];
    let inputDeltas = "";
    for await (const part of st.fullStream) {
      if (part.type === "tool-call") calls.push(part);
      if (part.type === "tool-input-delta") inputDeltas += part.delta;
      if (part.type === "error") throw part.error;
    }
    assert.equal(calls.length, 1, "one streamed tool call");
    assert.deepEqual(calls[0].input, { location: "Paris" });
    if (inputDeltas) assert.deepEqual(JSON.parse(inputDeltas), { location: "Paris" });
    assert.equal(await st.finishReason, "stop");
    assert.ok((await st.text).length > 0, "the streamed answer after the tool result");
    assert.equal(executed, before + 2, "executed once more");
    console.log(`ok ${name} tools ${model}`);
  }
}
