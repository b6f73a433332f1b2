// Drives afd-serve with the official `openai` npm package (installed by tools/server-test-setup.sh); prints one
// JSON object with what each call returned. Usage: node openai_client.cjs BASE_URL API_KEY PROMPT
const OpenAI = require(process.env.OPENAI_MODULE);

async function main() {
  const [baseURL, apiKey, prompt] = process.argv.slice(2);
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
  const model = (await client.models.list()).data[0].id;
  const out = { model };
  const params = { model, prompt, max_tokens: 32, temperature: 0 };
  const c = await client.completions.create(params);
  out.completion = c.choices[0].text;
  out.completion_finish = c.choices[0].finish_reason;
  out.completion_usage = c.usage;
  out.completion_stream = '';
  for await (const chunk of await client.completions.create({ ...params, stream: true }))
    out.completion_stream += chunk.choices[0]?.text ?? '';
  const messages = [{ role: 'user', content: prompt }];
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
  out.chat = chat.choices[0].message.content;
  out.chat_usage = chat.usage;
  out.chat_stream = '';
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, stream: true });
  for await (const chunk of stream) out.chat_stream += chunk.choices[0]?.delta?.content ?? '';
  try {
    await client.completions.create({ ...params, model: 'no-such-model' });
    out.error_status = 0;
  } catch (e) {
    out.error_status = e.status;
    out.error_code = e.code;
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
