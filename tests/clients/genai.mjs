// The Gemini API through Meridian with Google's official `@google/genai` SDK: generateContent,
// generateContentStream, a function-calling round trip (get_weather called, its functionResponse
// sent back, a text answer) and countTokens, on every model given. Usage:
//   node tests/clients/genai.mjs [--api-version=V] BASE_URL MODEL...
// BASE_URL is the gateway root; the SDK adds /VERSION/models/MODEL:METHOD, VERSION being the
// SDK's default ("v1" since @google/genai 3; GOOGLE_GENAI_API_VERSION is ignored here) unless
// --api-version says otherwise ("v1beta", as Google's REST docs and older SDKs use). A model name
// such as "gem/gemini-2.5-flash" goes into the path as is: the SDK only prefixes "models/", so
// the request is POST /v1/models/gem/gemini-2.5-flash:generateContent. Every sim dialect calls
// the first tool when the prompt mentions "weather", so every model must make the round trip.
// Prints one line per check; exits non-zero at the first failure.
import { GoogleGenAI, FunctionCallingConfigMode, Type } from "@google/genai";
import assert from "node:assert/strict";

const args = process.argv.slice(2);
const apiVersion = args[0]?.startsWith("--api-version=") ? args.shift().split("=")[1] : undefined;
const [base, ...models] = args;
assert.ok(base && models.length, "usage: genai.mjs [--api-version=V] BASE_URL MODEL...");
delete process.env.GOOGLE_GENAI_API_VERSION;
// No retryOptions: the SDK then sends each request once.
const ai = new GoogleGenAI({ apiKey: "none", httpOptions: { baseUrl: base, timeout: 20000, apiVersion } });

const weather = {
  name: "get_weather", description: "Weather for a city",
  parameters: { type: Type.OBJECT, properties: { location: { type: Type.STRING } }, required: ["location"] },
};

for (const model of models) {
  const config = { systemInstruction: "Be brief.", maxOutputTokens: 256 };
  const whole = await ai.models.generateContent({ model, contents: "Say hello", config });
  assert.ok(whole.text && whole.text.length > 0, "text");
  assert.equal(whole.candidates?.[0]?.finishReason, "STOP");
  const u = whole.usageMetadata;
  assert.ok(u && u.promptTokenCount > 0 && u.candidatesTokenCount > 0, "usageMetadata");
  assert.equal(u.totalTokenCount, u.promptTokenCount + u.candidatesTokenCount, "totalTokenCount");
  console.log(`ok genai ${model} ${u.promptTokenCount}+${u.candidatesTokenCount}`);

  const stream = await ai.models.generateContentStream({ model, contents: "Say hello", config });
  let text = "", chunks = 0, last;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.text ?? "";
    last = chunk;
  }
  assert.ok(text.length > 0, "streamed text");
  assert.equal(text, whole.text, "streamed text = whole text");
  assert.equal(last.candidates?.[0]?.finishReason, "STOP", "the last chunk's finishReason");
  assert.ok(last.usageMetadata?.candidatesTokenCount > 0, "streamed usageMetadata");
  console.log(`ok genai stream ${model} ${chunks} chunks`);

  const question = { role: "user", parts: [{ text: "What is the weather in Paris?" }] };
  const tools = [{ functionDeclarations: [weather] }];
  const asked = await ai.models.generateContent({ model, contents: [question], config: { tools } });
  const calls = asked.functionCalls;
  assert.ok(calls?.length, `a function call (got ${JSON.stringify(asked.text)})`);
  const [call] = calls;
  assert.equal(call.name, "get_weather");
  assert.deepEqual(call.args, { location: "Paris" });
  const turn = [question, asked.candidates[0].content, {
    role: "user",
    parts: [{ functionResponse: { id: call.id, name: call.name, response: { output: "Sunny, 21 C" } } }],
  }];
  const answered = await ai.models.generateContent({ model, contents: turn, config: { tools } });
  assert.ok(!answered.functionCalls?.length, "no second call");
  assert.ok(answered.text?.length > 0, "the answer after the functionResponse");

  // The same call streamed, with function calling forced.
  const streamed = await ai.models.generateContentStream({
    model, contents: [question],
    config: { tools, toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.ANY } } },
  });
  const streamedCalls = [];
  for await (const chunk of streamed) streamedCalls.push(...(chunk.functionCalls ?? []));
  assert.equal(streamedCalls.length, 1, "one streamed function call");
  assert.equal(streamedCalls[0].name, "get_weather");
  assert.deepEqual(streamedCalls[0].args, { location: "Paris" });
  console.log(`ok genai tools ${model}`);

  const count = await ai.models.countTokens({ model, contents: "Say hello" });
  assert.ok(count.totalTokens > 0, "totalTokens");
  console.log(`ok genai count ${model} ${count.totalTokens}`);
}
