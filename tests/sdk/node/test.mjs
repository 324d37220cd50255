// Compatibility suite: the official `openai` Node SDK against our Assistants API v2 server.
//
// Runs unchanged with openai@4.42.0 and openai@7.59.0 (node:test + node:assert, no other deps).
// The two majors differ in naming and call shapes, bridged by the small adapter below:
//   * vector stores: client.beta.vectorStores (4.42) vs client.vectorStores (>= 4.8x / 7.x)
//   * deletes:       .del(...) (4.x)               vs .delete(...) (>= 5)
//   * sub-resources: retrieve(parentId, childId)   vs retrieve(childId, { parent_id }) (>= 5)
// Features that only newer SDKs have (uploads, vector-store search / file content / attribute
// update) are skipped, with a reason, only when the installed SDK lacks the method.
//
// `openai` is resolved from the directory this file sits in (tests/sdk/run.sh places it next to
// the right node_modules). Environment: ASSISTANTS_BASE_URL (e.g. http://127.0.0.1:8000/v1).
//
// Run: node --test --test-reporter=spec test.mjs   (or just `node test.mjs`)

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import OpenAI, { toFile, NotFoundError, BadRequestError } from 'openai';
import { VERSION } from 'openai/version';

const BASE_URL = (process.env.ASSISTANTS_BASE_URL ?? 'http://127.0.0.1:8000/v1').replace(/\/+$/, '');
const TEST_TIMEOUT_MS = Number(process.env.SDK_TEST_TIMEOUT ?? '180') * 1000;
const MODEL = 'gpt-4o';
const MAJOR = Number.parseInt(VERSION, 10);
const LABEL = `openai-node ${VERSION}`;

const client = new OpenAI({ apiKey: 'test', baseURL: BASE_URL, maxRetries: 0, timeout: 60_000 });

// ---------------------------------------------------------------------------------------------
// adapter over the SDK majors
// ---------------------------------------------------------------------------------------------

/** >= 5 takes (childId, { parent_id }) for nested resources; 4.x takes (parentId, childId). */
const PARAMS_STYLE = MAJOR >= 5;
const vectorStores = client.vectorStores ?? client.beta.vectorStores;

function remove(resource, ...args) {
  const fn = resource.delete ?? resource.del;
  assert.equal(typeof fn, 'function', 'resource has neither delete() nor del()');
  return fn.apply(resource, args);
}

const sdk = {
  messages: {
    retrieve: (threadId, messageId) =>
      PARAMS_STYLE
        ? client.beta.threads.messages.retrieve(messageId, { thread_id: threadId })
        : client.beta.threads.messages.retrieve(threadId, messageId),
    update: (threadId, messageId, body) =>
      PARAMS_STYLE
        ? client.beta.threads.messages.update(messageId, { thread_id: threadId, ...body })
        : client.beta.threads.messages.update(threadId, messageId, body),
    delete: (threadId, messageId) =>
      PARAMS_STYLE
        ? remove(client.beta.threads.messages, messageId, { thread_id: threadId })
        : remove(client.beta.threads.messages, threadId, messageId),
  },
  vsFiles: {
    retrieve: (vsId, fileId) =>
      PARAMS_STYLE
        ? vectorStores.files.retrieve(fileId, { vector_store_id: vsId })
        : vectorStores.files.retrieve(vsId, fileId),
    delete: (vsId, fileId) =>
      PARAMS_STYLE
        ? remove(vectorStores.files, fileId, { vector_store_id: vsId })
        : remove(vectorStores.files, vsId, fileId),
    update: (vsId, fileId, attributes) =>
      vectorStores.files.update(fileId, { vector_store_id: vsId, attributes }),
    content: (vsId, fileId) => vectorStores.files.content(fileId, { vector_store_id: vsId }),
  },
  batches: {
    retrieve: (vsId, batchId) =>
      PARAMS_STYLE
        ? vectorStores.fileBatches.retrieve(batchId, { vector_store_id: vsId })
        : vectorStores.fileBatches.retrieve(vsId, batchId),
    listFiles: (vsId, batchId, query = {}) =>
      PARAMS_STYLE
        ? vectorStores.fileBatches.listFiles(batchId, { vector_store_id: vsId, ...query })
        : vectorStores.fileBatches.listFiles(vsId, batchId, query),
  },
};

const HAS_UPLOADS = client.uploads !== undefined && typeof client.uploads.create === 'function';
const HAS_CONVERSATIONS = client.conversations !== undefined;
const HAS_SEARCH = typeof vectorStores.search === 'function';
const HAS_VS_FILE_CONTENT = typeof vectorStores.files.content === 'function';
const HAS_VS_FILE_UPDATE = typeof vectorStores.files.update === 'function';

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const unique = (prefix = '') => `${prefix}${randomUUID().replaceAll('-', '').slice(0, 12)}`;

function assertIntTs(value, what = 'timestamp') {
  assert.ok(Number.isInteger(value), `${what} is not an integer: ${value}`);
  assert.ok(value >= 1_577_836_800 && value <= 4_102_444_800, `${what} is not in Unix seconds: ${value}`);
}

async function collect(pagePromise) {
  const out = [];
  for await (const item of pagePromise) {
    out.push(item);
    assert.ok(out.length < 100_000, 'pagination does not terminate');
  }
  return out;
}

async function ids(pagePromise) {
  return (await collect(pagePromise)).map((x) => x.id);
}

function textOf(message) {
  return message.content
    .filter((c) => c.type === 'text')
    .map((c) => c.text.value)
    .join('');
}

async function expectApiError(promise, ErrorClass, status) {
  let caught;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected ${ErrorClass.name}, but the call succeeded`);
  assert.ok(caught instanceof ErrorClass, `expected ${ErrorClass.name}, got ${caught?.constructor?.name}: ${caught?.message}`);
  assert.equal(caught.status, status);
  const inner = caught.error?.error ?? caught.error;
  assert.ok(inner && typeof inner === 'object', `error body is not an object: ${JSON.stringify(caught.error)}`);
  for (const key of ['message', 'type', 'param', 'code']) {
    assert.ok(key in inner, `error object lacks "${key}": ${JSON.stringify(inner)}`);
  }
  assert.equal(typeof inner.message, 'string');
  assert.ok(inner.message.trim().length > 0, 'empty error message');
  assert.equal(inner.type, 'invalid_request_error');
  assert.equal(caught.type, 'invalid_request_error');
  return { err: caught, inner };
}

const file = (name, content) => toFile(Buffer.from(content), name);

async function uploadText(name, text) {
  return client.files.create({ file: await file(name, text), purpose: 'assistants' });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitVsIdle(vsId, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vs = await vectorStores.retrieve(vsId);
    if (vs.file_counts.in_progress === 0) return vs;
    assert.ok(Date.now() < deadline, `vector store ${vsId} still has files in progress`);
    await sleep(100);
  }
}

const WEATHER_PARAMS = {
  type: 'object',
  properties: {
    city: { type: 'string', description: 'City name' },
    unit: { type: 'string', enum: ['c', 'f'] },
  },
  required: ['city'],
};
const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Look up the weather for a city.', parameters: WEATHER_PARAMS },
};

const DOC_A =
  'Field notes about the zanzibarquokka. The zanzibarquokka is a small marsupial that lives near the old ' +
  'harbor lighthouse and eats mango peel. Observers counted forty zanzibarquokka nests this spring.\n';
const DOC_B =
  'Recipe card: velociraptor marmalade. Boil bitter oranges with brown sugar for the velociraptor marmalade ' +
  'and store the jars in the cellar beside the harbor lighthouse.\n';
const DOC_C =
  'Maintenance log for the quantum xylophone. The quantum xylophone was retuned after a storm damaged the ' +
  'harbor lighthouse; the xylophone keys were polished with beeswax.\n';

const TEXT_BYTES = Buffer.from('Ünïcödé line one\r\nline two\twith tab\n\u2603 snowman, trailing spaces   \n', 'utf8');
const BINARY_BYTES = Buffer.concat([
  ...Array.from({ length: 8 }, () => Buffer.from(Array.from({ length: 256 }, (_, i) => i))),
  Buffer.from([0, 255, 0]),
]);

// Every test gets a deadline so that a poller that never sees a terminal status fails the test.
// Usage: t(name, fn) or t(name, { skip: 'reason' | false }, fn).
function t(name, optsOrFn, maybeFn) {
  const [opts, fn] = typeof optsOrFn === 'function' ? [{}, optsOrFn] : [optsOrFn ?? {}, maybeFn];
  assert.equal(typeof fn, 'function', `test "${name}" has no body`);
  return test(`[${LABEL}] ${name}`, { timeout: TEST_TIMEOUT_MS, ...opts }, fn);
}

after(() => {
  console.log(
    `# ${LABEL}: vector stores at ${client.vectorStores ? 'client.vectorStores' : 'client.beta.vectorStores'}, ` +
      `${PARAMS_STYLE ? 'params-object' : 'positional'} sub-resource signatures, ` +
      `uploads=${HAS_UPLOADS} search=${HAS_SEARCH} vsFileContent=${HAS_VS_FILE_CONTENT} vsFileUpdate=${HAS_VS_FILE_UPDATE}`,
  );
});

// ---------------------------------------------------------------------------------------------
// assistants
// ---------------------------------------------------------------------------------------------

t('sdk version is one of the pinned ones', () => {
  assert.ok(['4.42.0', '7.59.0'].includes(VERSION), `unexpected openai version ${VERSION}`);
});

t('assistant CRUD', async () => {
  const tag = unique();
  const created = await client.beta.assistants.create({
    model: MODEL,
    name: 'sdk-crud',
    description: 'created by the SDK suite',
    instructions: 'Answer tersely.',
    tools: [WEATHER_TOOL, { type: 'file_search' }],
    metadata: { suite: 'node', tag },
    temperature: 0.5,
    top_p: 0.9,
  });
  assert.match(created.id, /^asst_/);
  assert.equal(created.object, 'assistant');
  assertIntTs(created.created_at);
  assert.equal(created.model, MODEL);
  assert.equal(created.name, 'sdk-crud');
  assert.equal(created.description, 'created by the SDK suite');
  assert.equal(created.instructions, 'Answer tersely.');
  assert.deepEqual(created.metadata, { suite: 'node', tag });
  assert.deepEqual(created.tools.map((x) => x.type), ['function', 'file_search']);
  assert.equal(created.tools[0].function.name, 'get_weather');
  assert.equal(created.tools[0].function.description, 'Look up the weather for a city.');
  assert.deepEqual(created.tools[0].function.parameters, WEATHER_PARAMS);
  assert.ok(Math.abs(created.temperature - 0.5) < 1e-6);
  assert.ok(Math.abs(created.top_p - 0.9) < 1e-6);

  const got = await client.beta.assistants.retrieve(created.id);
  assert.equal(got.id, created.id);
  assert.equal(got.created_at, created.created_at);
  assert.deepEqual(got.tools, created.tools);
  assert.deepEqual(got.metadata, { suite: 'node', tag });

  const updated = await client.beta.assistants.update(created.id, {
    name: 'sdk-crud-renamed',
    metadata: { only: 'this' },
  });
  assert.equal(updated.id, created.id);
  assert.equal(updated.name, 'sdk-crud-renamed');
  assert.deepEqual(updated.metadata, { only: 'this' }, 'metadata update must replace the whole map');
  assert.equal(updated.instructions, 'Answer tersely.', 'fields not sent in an update must be kept');
  assert.deepEqual(updated.tools.map((x) => x.type), ['function', 'file_search']);
  assert.equal((await client.beta.assistants.retrieve(created.id)).name, 'sdk-crud-renamed');

  assert.ok((await ids(client.beta.assistants.list({ limit: 100 }))).includes(created.id));

  const deleted = await remove(client.beta.assistants, created.id);
  assert.deepEqual(
    { id: deleted.id, object: deleted.object, deleted: deleted.deleted },
    { id: created.id, object: 'assistant.deleted', deleted: true },
  );
  await expectApiError(client.beta.assistants.retrieve(created.id), NotFoundError, 404);
  assert.ok(!(await ids(client.beta.assistants.list({ limit: 100 }))).includes(created.id));
});

t('assistant with file_search tool_resources', async () => {
  const vs = await vectorStores.create({ name: unique('vs-for-asst-') });
  const asst = await client.beta.assistants.create({
    model: MODEL,
    tools: [{ type: 'file_search' }],
    tool_resources: { file_search: { vector_store_ids: [vs.id] } },
  });
  assert.deepEqual(asst.tool_resources?.file_search?.vector_store_ids, [vs.id]);
  const got = await client.beta.assistants.retrieve(asst.id);
  assert.deepEqual(got.tool_resources?.file_search?.vector_store_ids, [vs.id]);
  await remove(client.beta.assistants, asst.id);
  await remove(vectorStores, vs.id);
});

t('assistant pagination (25 items, pages of 5, asc/desc, cursors)', async () => {
  const tag = unique('page-');
  const created = [];
  for (let i = 0; i < 25; i++) {
    const a = await client.beta.assistants.create({
      model: MODEL,
      name: `${tag}-${String(i).padStart(2, '0')}`,
      metadata: { tag },
    });
    created.push(a.id);
  }
  const mine = new Set(created);
  assert.equal(mine.size, 25);

  const all = await ids(client.beta.assistants.list({ limit: 5 }));
  assert.equal(all.length, new Set(all).size, 'an assistant was yielded twice');
  assert.deepEqual(all.filter((id) => mine.has(id)), [...created].reverse(), 'desc order must be newest first');

  const asc = (await ids(client.beta.assistants.list({ limit: 5, order: 'asc' }))).filter((id) => mine.has(id));
  assert.deepEqual(asc, created);

  let page = await client.beta.assistants.list({ limit: 5, order: 'asc', after: created[9] });
  assert.deepEqual(page.data.map((a) => a.id), created.slice(10, 15));
  page = await client.beta.assistants.list({ limit: 5, order: 'desc', after: created[10] });
  assert.deepEqual(page.data.map((a) => a.id), created.slice(5, 10).reverse());
  page = await client.beta.assistants.list({ limit: 3, order: 'asc', before: created[10] });
  const before = page.data.map((a) => a.id);
  assert.ok(before.length > 0 && !before.includes(created[10]));
  assert.ok(before.filter((id) => mine.has(id)).every((id) => created.slice(0, 10).includes(id)));

  // A cursor at the very end gives an empty page (4.42 stops only on an empty page).
  page = await client.beta.assistants.list({ limit: 5, order: 'asc', after: created[24] });
  assert.deepEqual(page.data, []);
  assert.equal(page.hasNextPage(), false);

  for (const id of created) await remove(client.beta.assistants, id);
});

// ---------------------------------------------------------------------------------------------
// threads and messages
// ---------------------------------------------------------------------------------------------

t('thread CRUD with initial messages', async () => {
  const thread = await client.beta.threads.create({
    messages: [
      { role: 'user', content: 'Hello there', metadata: { n: '1' } },
      { role: 'assistant', content: 'General Kenobi' },
    ],
    metadata: { suite: 'node' },
  });
  assert.match(thread.id, /^thread_/);
  assert.equal(thread.object, 'thread');
  assertIntTs(thread.created_at);
  assert.deepEqual(thread.metadata, { suite: 'node' });

  const msgs = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
  assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant']);
  assert.deepEqual(msgs.map(textOf), ['Hello there', 'General Kenobi']);
  for (const m of msgs) {
    assert.match(m.id, /^msg_/);
    assert.equal(m.object, 'thread.message');
    assert.equal(m.thread_id, thread.id);
    assertIntTs(m.created_at);
    assert.equal(m.content[0].type, 'text');
    assert.deepEqual(m.content[0].text.annotations, []);
  }
  assert.deepEqual(msgs[0].metadata, { n: '1' });

  const got = await client.beta.threads.retrieve(thread.id);
  assert.equal(got.id, thread.id);
  assert.equal(got.created_at, thread.created_at);

  const updated = await client.beta.threads.update(thread.id, { metadata: { changed: 'yes' } });
  assert.deepEqual(updated.metadata, { changed: 'yes' });

  const deleted = await remove(client.beta.threads, thread.id);
  assert.deepEqual(
    { id: deleted.id, object: deleted.object, deleted: deleted.deleted },
    { id: thread.id, object: 'thread.deleted', deleted: true },
  );
  await expectApiError(client.beta.threads.retrieve(thread.id), NotFoundError, 404);
});

t('message CRUD', async () => {
  const thread = await client.beta.threads.create();
  const msg = await client.beta.threads.messages.create(thread.id, {
    role: 'user',
    content: 'What is the weather in Paris?',
    metadata: { k: 'v' },
  });
  assert.match(msg.id, /^msg_/);
  assert.equal(msg.object, 'thread.message');
  assert.equal(msg.thread_id, thread.id);
  assert.equal(msg.role, 'user');
  assertIntTs(msg.created_at);
  assert.equal(textOf(msg), 'What is the weather in Paris?');
  assert.deepEqual(msg.metadata, { k: 'v' });
  assert.equal(msg.assistant_id, null);
  assert.equal(msg.run_id, null);

  const multi = await client.beta.threads.messages.create(thread.id, {
    role: 'user',
    content: [
      { type: 'text', text: 'part one' },
      { type: 'text', text: 'part two' },
    ],
  });
  assert.deepEqual(multi.content.map((c) => c.text.value), ['part one', 'part two']);

  const got = await sdk.messages.retrieve(thread.id, msg.id);
  assert.equal(got.id, msg.id);
  assert.equal(got.created_at, msg.created_at);
  assert.equal(textOf(got), 'What is the weather in Paris?');

  const updated = await sdk.messages.update(thread.id, msg.id, { metadata: { reviewed: 'true' } });
  assert.equal(updated.id, msg.id);
  assert.deepEqual(updated.metadata, { reviewed: 'true' });
  assert.equal(textOf(updated), 'What is the weather in Paris?');

  const listed = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
  assert.deepEqual(listed.map((m) => m.id), [msg.id, multi.id]);
  assert.deepEqual(listed[0].metadata, { reviewed: 'true' });

  const deleted = await sdk.messages.delete(thread.id, msg.id);
  assert.deepEqual(
    { id: deleted.id, object: deleted.object, deleted: deleted.deleted },
    { id: msg.id, object: 'thread.message.deleted', deleted: true },
  );
  assert.deepEqual(await ids(client.beta.threads.messages.list(thread.id)), [multi.id]);
  await expectApiError(sdk.messages.retrieve(thread.id, msg.id), NotFoundError, 404);
  await remove(client.beta.threads, thread.id);
});

t('message pagination (25 messages in one thread)', async () => {
  const thread = await client.beta.threads.create();
  const created = [];
  for (let i = 0; i < 25; i++) {
    created.push((await client.beta.threads.messages.create(thread.id, { role: 'user', content: `message number ${i}` })).id);
  }
  assert.deepEqual(await ids(client.beta.threads.messages.list(thread.id, { limit: 5 })), [...created].reverse());
  assert.deepEqual(await ids(client.beta.threads.messages.list(thread.id, { limit: 5, order: 'asc' })), created);

  const page = await client.beta.threads.messages.list(thread.id, { limit: 4, order: 'asc', after: created[19] });
  assert.deepEqual(page.data.map((m) => m.id), created.slice(20, 24));

  // Page by page through the SDK's page objects.
  let p = await client.beta.threads.messages.list(thread.id, { limit: 10, order: 'asc' });
  const pages = [p.data.map((m) => m.id)];
  while (p.hasNextPage()) {
    p = await p.getNextPage();
    if (p.data.length) pages.push(p.data.map((m) => m.id));
    assert.ok(pages.length < 10);
  }
  assert.deepEqual(pages, [created.slice(0, 10), created.slice(10, 20), created.slice(20, 25)]);

  const end = await client.beta.threads.messages.list(thread.id, { order: 'asc', after: created[24] });
  assert.deepEqual(end.data, []);
  await remove(client.beta.threads, thread.id);
});

// ---------------------------------------------------------------------------------------------
// files
// ---------------------------------------------------------------------------------------------

for (const [kind, filename, payload] of [
  ['text', 'notes.txt', TEXT_BYTES],
  ['binary', 'garbage.pdf', BINARY_BYTES],
]) {
  t(`file upload/retrieve/list/content/delete (${kind})`, async () => {
    const f = await client.files.create({ file: await toFile(payload, filename), purpose: 'assistants' });
    assert.match(f.id, /^file-/);
    assert.equal(f.object, 'file');
    assert.equal(f.filename, filename);
    assert.equal(f.bytes, payload.length);
    assert.equal(f.purpose, 'assistants');
    assertIntTs(f.created_at);

    const got = await client.files.retrieve(f.id);
    assert.equal(got.id, f.id);
    assert.equal(got.bytes, payload.length);

    assert.ok((await ids(client.files.list({ purpose: 'assistants' }))).includes(f.id));
    assert.ok((await ids(client.files.list())).includes(f.id));

    const res = await client.files.content(f.id);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.equals(payload), `downloaded bytes differ (${body.length} vs ${payload.length})`);
    if (kind === 'text') {
      assert.equal(await (await client.files.content(f.id)).text(), payload.toString('utf8'));
    }

    const deleted = await remove(client.files, f.id);
    assert.deepEqual(
      { id: deleted.id, object: deleted.object, deleted: deleted.deleted },
      { id: f.id, object: 'file', deleted: true },
    );
    await expectApiError(client.files.retrieve(f.id), NotFoundError, 404);
  });
}

// ---------------------------------------------------------------------------------------------
// uploads
// ---------------------------------------------------------------------------------------------

const noUploads = !HAS_UPLOADS && `openai ${VERSION} has no uploads resource`;

t('upload: create, two parts, complete', { skip: noUploads }, async () => {
  const part1 = Buffer.from('first part of the upload, ');
  const part2 = Buffer.from('second part \u00e9\u00e8 and done.\n', 'utf8');
  const total = part1.length + part2.length;
  const up = await client.uploads.create({ bytes: total, filename: 'joined.txt', mime_type: 'text/plain', purpose: 'assistants' });
  assert.equal(up.object, 'upload');
  assert.equal(up.status, 'pending');
  assert.equal(up.filename, 'joined.txt');
  assert.equal(up.bytes, total);
  assert.equal(up.purpose, 'assistants');
  assertIntTs(up.created_at);
  assertIntTs(up.expires_at, 'expires_at');

  const p1 = await client.uploads.parts.create(up.id, { data: await toFile(part1, 'part1') });
  const p2 = await client.uploads.parts.create(up.id, { data: await toFile(part2, 'part2') });
  for (const p of [p1, p2]) {
    assert.equal(p.object, 'upload.part');
    assert.equal(p.upload_id, up.id);
    assertIntTs(p.created_at);
  }
  assert.notEqual(p1.id, p2.id);

  const done = await client.uploads.complete(up.id, { part_ids: [p1.id, p2.id] });
  assert.equal(done.id, up.id);
  assert.equal(done.status, 'completed');
  assert.match(done.file?.id ?? '', /^file-/);
  assert.equal(done.file.filename, 'joined.txt');
  assert.equal(done.file.bytes, total);
  const body = Buffer.from(await (await client.files.content(done.file.id)).arrayBuffer());
  assert.ok(body.equals(Buffer.concat([part1, part2])));
});

t('upload: part order follows part_ids', { skip: noUploads }, async () => {
  const a = Buffer.from('AAAA-');
  const b = Buffer.from('BBBB');
  const up = await client.uploads.create({ bytes: a.length + b.length, filename: 'order.txt', mime_type: 'text/plain', purpose: 'assistants' });
  const pb = await client.uploads.parts.create(up.id, { data: await toFile(b, 'b') });
  const pa = await client.uploads.parts.create(up.id, { data: await toFile(a, 'a') });
  const done = await client.uploads.complete(up.id, { part_ids: [pa.id, pb.id] });
  assert.equal(await (await client.files.content(done.file.id)).text(), 'AAAA-BBBB');
});

t('upload: cancel', { skip: noUploads }, async () => {
  const up = await client.uploads.create({ bytes: 10, filename: 'never.txt', mime_type: 'text/plain', purpose: 'assistants' });
  const cancelled = await client.uploads.cancel(up.id);
  assert.equal(cancelled.id, up.id);
  assert.equal(cancelled.status, 'cancelled');
  await expectApiError(
    client.uploads.parts.create(up.id, { data: await toFile(Buffer.from('0123456789'), 'p') }),
    BadRequestError,
    400,
  );
});

// ---------------------------------------------------------------------------------------------
// vector stores
// ---------------------------------------------------------------------------------------------

t('vector store CRUD', async () => {
  const name = unique('vs-');
  const vs = await vectorStores.create({ name, metadata: { suite: 'node' } });
  assert.match(vs.id, /^vs_/);
  assert.equal(vs.object, 'vector_store');
  assertIntTs(vs.created_at);
  assert.equal(vs.name, name);
  assert.deepEqual(vs.metadata, { suite: 'node' });
  assert.equal(vs.status, 'completed');
  assert.equal(vs.usage_bytes, 0);
  assert.deepEqual(
    { ...vs.file_counts },
    { in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 },
  );

  const got = await vectorStores.retrieve(vs.id);
  assert.equal(got.id, vs.id);
  assert.equal(got.created_at, vs.created_at);

  const updated = await vectorStores.update(vs.id, { name: `${name}-renamed`, metadata: { v: '2' } });
  assert.equal(updated.name, `${name}-renamed`);
  assert.deepEqual(updated.metadata, { v: '2' });
  assert.equal((await vectorStores.retrieve(vs.id)).name, `${name}-renamed`);

  assert.ok((await ids(vectorStores.list({ limit: 100 }))).includes(vs.id));

  const deleted = await remove(vectorStores, vs.id);
  assert.deepEqual(
    { id: deleted.id, object: deleted.object, deleted: deleted.deleted },
    { id: vs.id, object: 'vector_store.deleted', deleted: true },
  );
  await expectApiError(vectorStores.retrieve(vs.id), NotFoundError, 404);
});

t('vector store pagination', async () => {
  const created = [];
  for (let i = 0; i < 12; i++) created.push((await vectorStores.create({ name: unique('vspage-') })).id);
  const mine = new Set(created);
  const seen = await ids(vectorStores.list({ limit: 5, order: 'asc' }));
  assert.equal(seen.length, new Set(seen).size);
  assert.deepEqual(seen.filter((id) => mine.has(id)), created);
  for (const id of created) await remove(vectorStores, id);
});

t('vector store file: uploadAndPoll, retrieve, list with filter, delete', async () => {
  const vs = await vectorStores.create({ name: unique('vs-upload-') });
  const vf = await vectorStores.files.uploadAndPoll(vs.id, await file('zanzibar.txt', DOC_A));
  assert.equal(vf.status, 'completed', JSON.stringify(vf.last_error));
  assert.match(vf.id, /^file-/, "a vector-store file's id is the file id");
  assert.equal(vf.object, 'vector_store.file');
  assert.equal(vf.vector_store_id, vs.id);
  assert.equal(vf.last_error, null);
  assertIntTs(vf.created_at);
  assert.equal((await client.files.retrieve(vf.id)).filename, 'zanzibar.txt');

  const got = await sdk.vsFiles.retrieve(vs.id, vf.id);
  assert.equal(got.id, vf.id);
  assert.equal(got.status, 'completed');

  assert.deepEqual(await ids(vectorStores.files.list(vs.id)), [vf.id]);
  assert.deepEqual(await ids(vectorStores.files.list(vs.id, { filter: 'completed' })), [vf.id]);
  assert.deepEqual(await ids(vectorStores.files.list(vs.id, { filter: 'failed' })), []);
  assert.deepEqual(await ids(vectorStores.files.list(vs.id, { filter: 'in_progress' })), []);

  let store = await vectorStores.retrieve(vs.id);
  assert.equal(store.file_counts.completed, 1);
  assert.equal(store.file_counts.total, 1);
  assert.equal(store.file_counts.in_progress, 0);
  assert.ok(store.usage_bytes > 0);

  const deleted = await sdk.vsFiles.delete(vs.id, vf.id);
  assert.deepEqual(
    { id: deleted.id, object: deleted.object, deleted: deleted.deleted },
    { id: vf.id, object: 'vector_store.file.deleted', deleted: true },
  );
  assert.deepEqual(await ids(vectorStores.files.list(vs.id)), []);
  store = await vectorStores.retrieve(vs.id);
  assert.equal(store.file_counts.total, 0);
  assert.equal((await client.files.retrieve(vf.id)).id, vf.id, 'detaching must not delete the file');
  await expectApiError(sdk.vsFiles.retrieve(vs.id, vf.id), NotFoundError, 404);
});

t('vector store file: createAndPoll with an existing file', async () => {
  const vs = await vectorStores.create({ name: unique('vs-attach-') });
  const f = await uploadText('marmalade.md', `# Marmalade\n\n${DOC_B}`);
  const vf = await vectorStores.files.createAndPoll(vs.id, { file_id: f.id });
  assert.equal(vf.id, f.id);
  assert.equal(vf.status, 'completed', JSON.stringify(vf.last_error));

  const g = await uploadText('data.json', JSON.stringify({ fact: 'the quantum xylophone has 37 keys' }));
  const created = await vectorStores.files.create(vs.id, { file_id: g.id });
  assert.equal(created.id, g.id);
  assert.ok(['in_progress', 'completed'].includes(created.status));
  const done = await vectorStores.files.poll(vs.id, g.id);
  assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
  assert.equal((await waitVsIdle(vs.id)).file_counts.completed, 2);
});

t('vector store file: unsupported type ends failed with last_error', async () => {
  const vs = await vectorStores.create({ name: unique('vs-fail-') });
  const vf = await vectorStores.files.uploadAndPoll(vs.id, await toFile(BINARY_BYTES, 'broken.pdf'));
  assert.equal(vf.status, 'failed');
  assert.ok(vf.last_error, 'last_error missing');
  assert.ok(vf.last_error.code);
  assert.ok(vf.last_error.message);
  assert.deepEqual(await ids(vectorStores.files.list(vs.id, { filter: 'failed' })), [vf.id]);
  const store = await vectorStores.retrieve(vs.id);
  assert.equal(store.file_counts.failed, 1);
  assert.equal(store.file_counts.completed, 0);
  assert.equal(store.file_counts.total, 1);
});

t('file batch: uploadAndPoll with 3 files, listFiles', async () => {
  const vs = await vectorStores.create({ name: unique('vs-batch-') });
  const batch = await vectorStores.fileBatches.uploadAndPoll(vs.id, {
    files: [await file('a.txt', DOC_A), await file('b.txt', DOC_B), await file('c.txt', DOC_C)],
  });
  assert.match(batch.id, /^vsfb_/);
  assert.equal(batch.object, 'vector_store.files_batch');
  assert.equal(batch.vector_store_id, vs.id);
  assertIntTs(batch.created_at);
  assert.equal(batch.status, 'completed');
  assert.deepEqual(
    { ...batch.file_counts },
    { in_progress: 0, completed: 3, failed: 0, cancelled: 0, total: 3 },
  );

  const got = await sdk.batches.retrieve(vs.id, batch.id);
  assert.equal(got.id, batch.id);
  assert.equal(got.status, 'completed');

  const inBatch = await collect(sdk.batches.listFiles(vs.id, batch.id));
  assert.equal(inBatch.length, 3);
  assert.ok(inBatch.every((f) => f.status === 'completed' && f.vector_store_id === vs.id));
  const names = (await Promise.all(inBatch.map((f) => client.files.retrieve(f.id)))).map((f) => f.filename).sort();
  assert.deepEqual(names, ['a.txt', 'b.txt', 'c.txt']);
  assert.equal((await collect(sdk.batches.listFiles(vs.id, batch.id, { filter: 'completed' }))).length, 3);
  assert.deepEqual(await collect(sdk.batches.listFiles(vs.id, batch.id, { filter: 'failed' })), []);
  const paged = await ids(sdk.batches.listFiles(vs.id, batch.id, { limit: 1 }));
  assert.deepEqual([...paged].sort(), inBatch.map((f) => f.id).sort());

  const store = await vectorStores.retrieve(vs.id);
  assert.equal(store.file_counts.completed, 3);
  assert.equal(store.file_counts.total, 3);
  assert.equal(store.file_counts.in_progress, 0);
  assert.deepEqual((await ids(vectorStores.files.list(vs.id))).sort(), inBatch.map((f) => f.id).sort());
});

t('file batch: createAndPoll with file_ids', async () => {
  const vs = await vectorStores.create({ name: unique('vs-batch-ids-') });
  const fileIds = [(await uploadText('doc0.txt', `document 0: ${DOC_C}`)).id, (await uploadText('doc1.txt', `document 1: ${DOC_C}`)).id];
  const batch = await vectorStores.fileBatches.createAndPoll(vs.id, { file_ids: fileIds });
  assert.equal(batch.status, 'completed');
  assert.equal(batch.file_counts.completed, 2);
  assert.deepEqual((await ids(sdk.batches.listFiles(vs.id, batch.id))).sort(), [...fileIds].sort());
});

t('vector store created with file_ids', async () => {
  const fileIds = [(await uploadText('a.txt', DOC_A)).id, (await uploadText('b.txt', DOC_B)).id];
  const vs = await vectorStores.create({ name: unique('vs-with-files-'), file_ids: fileIds });
  assert.match(vs.id, /^vs_/);
  const store = await waitVsIdle(vs.id);
  assert.equal(store.file_counts.completed, 2);
  assert.equal(store.file_counts.total, 2);
  assert.deepEqual((await ids(vectorStores.files.list(vs.id))).sort(), [...fileIds].sort());
});

async function searchFixture() {
  const vs = await vectorStores.create({ name: unique('vs-search-') });
  const byName = {};
  for (const [name, text] of [['a.txt', DOC_A], ['b.txt', DOC_B], ['c.txt', DOC_C]]) {
    byName[name] = (await uploadText(name, text)).id;
  }
  const batch = await vectorStores.fileBatches.createAndPoll(vs.id, { file_ids: Object.values(byName) });
  assert.equal(batch.file_counts.completed, 3);
  return { vs, ids: byName };
}

t('vector store search', { skip: !HAS_SEARCH && `openai ${VERSION} has no vectorStores.search` }, async () => {
  const { vs, ids: byName } = await searchFixture();
  const page = await vectorStores.search(vs.id, { query: 'zanzibarquokka' });
  const results = page.data;
  assert.ok(results.length > 0, 'search found nothing');
  const top = results[0];
  assert.equal(top.file_id, byName['a.txt']);
  assert.equal(top.filename, 'a.txt');
  assert.ok(top.score >= 0 && top.score <= 1);
  assert.equal(top.content[0].type, 'text');
  assert.ok(top.content.map((c) => c.text).join(' ').includes('zanzibarquokka'));
  const scores = results.map((r) => r.score);
  assert.deepEqual(scores, [...scores].sort((x, y) => y - x), 'results must be ordered by score');

  assert.equal((await vectorStores.search(vs.id, { query: 'velociraptor marmalade recipe' })).data[0].file_id, byName['b.txt']);
  const one = await vectorStores.search(vs.id, { query: 'quantum xylophone', max_num_results: 1 });
  assert.equal(one.data.length, 1);
  assert.equal(one.data[0].file_id, byName['c.txt']);
  // Iterating the page object also works.
  assert.ok((await collect(vectorStores.search(vs.id, { query: 'harbor lighthouse' }))).length >= 3);
});

t(
  'vector store file content',
  { skip: !HAS_VS_FILE_CONTENT && `openai ${VERSION} has no vectorStores.files.content` },
  async () => {
    const vs = await vectorStores.create({ name: unique('vs-content-') });
    const vf = await vectorStores.files.uploadAndPoll(vs.id, await file('xylophone.txt', DOC_C));
    assert.equal(vf.status, 'completed');
    const page = await sdk.vsFiles.content(vs.id, vf.id);
    assert.ok(page.data.length > 0);
    assert.ok(page.data.every((p) => p.type === 'text'));
    const text = page.data.map((p) => p.text).join('');
    assert.ok(text.includes('quantum xylophone'));
    assert.ok(text.includes('beeswax'));
  },
);

t(
  'vector store file attributes + filtered search',
  { skip: !HAS_VS_FILE_UPDATE && `openai ${VERSION} has no vectorStores.files.update (attributes)` },
  async (tc) => {
    const { vs, ids: byName } = await searchFixture();
    const upd = await sdk.vsFiles.update(vs.id, byName['b.txt'], { category: 'special', rank: 2 });
    assert.equal(upd.id, byName['b.txt']);
    assert.deepEqual(upd.attributes, { category: 'special', rank: 2 });
    await sdk.vsFiles.update(vs.id, byName['a.txt'], { category: 'other', rank: 1 });
    assert.deepEqual((await sdk.vsFiles.retrieve(vs.id, byName['b.txt'])).attributes, { category: 'special', rank: 2 });

    if (!HAS_SEARCH) {
      tc.skip(`openai ${VERSION} has no vectorStores.search`);
      return;
    }
    const query = 'zanzibarquokka harbor lighthouse';
    assert.equal((await vectorStores.search(vs.id, { query })).data[0].file_id, byName['a.txt']);
    const filtered = (
      await vectorStores.search(vs.id, { query, filters: { type: 'eq', key: 'category', value: 'special' } })
    ).data;
    assert.ok(filtered.length > 0, "filtered search returned nothing although b.txt matches 'harbor lighthouse'");
    assert.deepEqual([...new Set(filtered.map((r) => r.file_id))], [byName['b.txt']]);
    assert.deepEqual(filtered[0].attributes, { category: 'special', rank: 2 });

    const compound = (
      await vectorStores.search(vs.id, {
        query: 'harbor lighthouse',
        filters: {
          type: 'or',
          filters: [
            { type: 'eq', key: 'category', value: 'other' },
            { type: 'gte', key: 'rank', value: 2 },
          ],
        },
      })
    ).data;
    assert.deepEqual([...new Set(compound.map((r) => r.file_id))].sort(), [byName['a.txt'], byName['b.txt']].sort());
  },
);

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

t('not found errors', async () => {
  const { err, inner } = await expectApiError(client.beta.assistants.retrieve('asst_doesnotexist000'), NotFoundError, 404);
  assert.ok(inner.message.includes('asst_doesnotexist000'), inner.message);
  assert.ok(err.message.length > 0);
  await expectApiError(client.beta.threads.retrieve('thread_doesnotexist000'), NotFoundError, 404);
  await expectApiError(client.beta.threads.messages.list('thread_doesnotexist000'), NotFoundError, 404);
  await expectApiError(vectorStores.retrieve('vs_doesnotexist000'), NotFoundError, 404);
  await expectApiError(client.files.retrieve('file-doesnotexist000'), NotFoundError, 404);
  await expectApiError(remove(client.beta.assistants, 'asst_doesnotexist000'), NotFoundError, 404);
});

t('bad request: metadata with 17 keys', async () => {
  const metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`key${i}`, 'v']));
  const { inner } = await expectApiError(client.beta.assistants.create({ model: MODEL, metadata }), BadRequestError, 400);
  assert.ok((inner.param ?? '').startsWith('metadata'), JSON.stringify(inner));

  const ok = await client.beta.assistants.create({
    model: MODEL,
    metadata: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`key${i}`, 'v'])),
  });
  assert.equal(Object.keys(ok.metadata).length, 16);
  await remove(client.beta.assistants, ok.id);
});

t('bad request: wrong JSON types', async () => {
  const { inner } = await expectApiError(client.beta.assistants.create({ model: 123 }), BadRequestError, 400);
  assert.equal(inner.param, 'model');
  await expectApiError(client.beta.assistants.create({ model: MODEL, tools: 'not-a-list' }), BadRequestError, 400);
  const thread = await client.beta.threads.create();
  await expectApiError(client.beta.threads.messages.create(thread.id, { role: 'wizard', content: 'hi' }), BadRequestError, 400);
});

t('unknown JSON keys are ignored', async () => {
  const a = await client.beta.assistants.create({ model: MODEL, name: 'extra', some_future_field: { x: 1 } });
  assert.equal(a.name, 'extra');
  await remove(client.beta.assistants, a.id);
});

// ---------------------------------------------------------------------------------------------
// runs
//
// The server's upstream is tests/sdk/fake_llm.py: with tools offered and a last user message
// mentioning "weather" it calls get_weather({"city": "Paris"}); offered the built-in
// `file_search` function it searches for the last user message, and answers a labelled search
// result with "Found it 【n:m†file】." (quoting the first label); after another tool result it
// answers "Tool said: <output>"; otherwise "echo: <last user message>". It streams word by word,
// each word followed by a space, hence the trimEnd() in replyText().
// ---------------------------------------------------------------------------------------------

const runsApi = client.beta.threads.runs;

/** Run calls whose shape changed in 5.x: (threadId, runId, ...) became (runId, { thread_id, ... }). */
const runs = {
  retrieve: (threadId, runId) =>
    PARAMS_STYLE ? runsApi.retrieve(runId, { thread_id: threadId }) : runsApi.retrieve(threadId, runId),
  update: (threadId, runId, body) =>
    PARAMS_STYLE ? runsApi.update(runId, { thread_id: threadId, ...body }) : runsApi.update(threadId, runId, body),
  cancel: (threadId, runId) =>
    PARAMS_STYLE ? runsApi.cancel(runId, { thread_id: threadId }) : runsApi.cancel(threadId, runId),
  poll: (threadId, runId) =>
    PARAMS_STYLE ? runsApi.poll(runId, { thread_id: threadId }) : runsApi.poll(threadId, runId),
  submitToolOutputsAndPoll: (threadId, runId, body) =>
    PARAMS_STYLE
      ? runsApi.submitToolOutputsAndPoll(runId, { thread_id: threadId, ...body })
      : runsApi.submitToolOutputsAndPoll(threadId, runId, body),
  submitToolOutputsStream: (threadId, runId, body) =>
    PARAMS_STYLE
      ? runsApi.submitToolOutputsStream(runId, { thread_id: threadId, ...body })
      : runsApi.submitToolOutputsStream(threadId, runId, body),
  listSteps: (threadId, runId, query = {}) =>
    PARAMS_STYLE
      ? runsApi.steps.list(runId, { thread_id: threadId, ...query })
      : runsApi.steps.list(threadId, runId, query),
  retrieveStep: (threadId, runId, stepId, query = {}) =>
    PARAMS_STYLE
      ? runsApi.steps.retrieve(stepId, { thread_id: threadId, run_id: runId, ...query })
      : runsApi.steps.retrieve(threadId, runId, stepId),
};

const HAS_CREATE_AND_RUN_STREAM = typeof client.beta.threads.createAndRunStream === 'function';
// 4.x's AssistantStream.accumulateDelta leaves arrays of objects alone, so a streamed tool call
// keeps its first arguments fragment in every snapshot (step, toolCallDone); >= 5 merges by index.
const MERGES_TOOL_CALL_DELTAS = MAJOR >= 5;

// One simple run on the wire, consecutive duplicates (the message deltas) collapsed.
const SIMPLE_RUN_EVENTS = [
  'thread.run.created',
  'thread.run.queued',
  'thread.run.in_progress',
  'thread.run.step.created',
  'thread.run.step.in_progress',
  'thread.message.created',
  'thread.message.in_progress',
  'thread.message.delta',
  'thread.message.completed',
  'thread.run.step.completed',
  'thread.run.completed',
];
const TOOL_CALL_EVENTS = [
  'thread.run.created',
  'thread.run.queued',
  'thread.run.in_progress',
  'thread.run.step.created',
  'thread.run.step.in_progress',
  'thread.run.step.delta',
  'thread.run.requires_action',
];
// submit_tool_outputs with stream: true continues the same run: the pending tool step completes first.
const AFTER_TOOL_OUTPUTS_EVENTS = [
  'thread.run.queued',
  'thread.run.in_progress',
  'thread.run.step.completed',
  'thread.run.step.created',
  'thread.run.step.in_progress',
  'thread.message.created',
  'thread.message.in_progress',
  'thread.message.delta',
  'thread.message.completed',
  'thread.run.step.completed',
  'thread.run.completed',
];

let echoAssistant;
let weatherAssistant;
const echoAsst = () =>
  (echoAssistant ??= client.beta.assistants.create({ model: MODEL, name: 'sdk-runs-echo', instructions: 'Repeat after me.' }));
const weatherAsst = () =>
  (weatherAssistant ??= client.beta.assistants.create({
    model: MODEL,
    name: 'sdk-runs-weather',
    instructions: 'Use the tools.',
    tools: [WEATHER_TOOL],
  }));

const replyText = (message) => textOf(message).trimEnd();
const collapse = (events) => events.filter((e, i) => i === 0 || events[i - 1] !== e);

/** Subscribes to what the SDK's own AssistantStream reports, listener by listener. */
function record(stream) {
  const rec = { events: [], threadCreated: undefined, deltas: [], textsDone: [], toolCallsCreated: [], toolCallsDone: [], stepsDone: [] };
  stream
    .on('event', (e) => {
      rec.events.push(e.event);
      if (e.event === 'thread.created') rec.threadCreated = e.data;
    })
    .on('textDelta', (delta) => rec.deltas.push(delta.value))
    .on('textDone', (text) => rec.textsDone.push(text.value))
    // The snapshot keeps accumulating after creation: copy what the first delta carried.
    .on('toolCallCreated', (tc) => rec.toolCallsCreated.push([tc.id, tc.type, tc.function?.name]))
    .on('toolCallDone', (tc) => rec.toolCallsDone.push(structuredClone(tc)))
    .on('runStepDone', (step) => rec.stepsDone.push(structuredClone(step)));
  return rec;
}

function assertUsage(usage) {
  assert.ok(usage, 'a terminal run carries usage');
  for (const key of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(usage[key]) && usage[key] >= 0, `${key}: ${JSON.stringify(usage)}`);
  }
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  assert.ok(usage.total_tokens > 0);
}

const weatherThread = () =>
  client.beta.threads.create({ messages: [{ role: 'user', content: 'What is the weather in Paris?' }] });

/** The single get_weather call a run in requires_action waits for. */
function pendingWeatherCall(run) {
  assert.equal(run.status, 'requires_action', JSON.stringify(run.last_error));
  assert.equal(run.required_action?.type, 'submit_tool_outputs');
  const calls = run.required_action.submit_tool_outputs.tool_calls;
  assert.equal(calls.length, 1, JSON.stringify(calls));
  const [call] = calls;
  assert.match(call.id, /^call_/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  return call;
}

t('runs: createAndPoll completes with usage, the reply and one message_creation step', async () => {
  const asst = await echoAsst();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hello from the poller' }] });
  const run = await runsApi.createAndPoll(thread.id, { assistant_id: asst.id });
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.match(run.id, /^run_/);
  assert.equal(run.object, 'thread.run');
  assert.equal(run.thread_id, thread.id);
  assert.equal(run.assistant_id, asst.id);
  assert.equal(run.model, MODEL);
  assert.equal(run.instructions, 'Repeat after me.');
  assert.deepEqual(run.tools, []);
  for (const key of ['created_at', 'started_at', 'completed_at']) assertIntTs(run[key], key);
  assert.equal(run.expires_at, null, 'expires_at is null once the run is terminal');
  assert.equal(run.cancelled_at, null);
  assert.equal(run.failed_at, null);
  assert.equal(run.last_error, null);
  assert.equal(run.required_action, null);
  assertUsage(run.usage);

  const msgs = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
  assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant']);
  const reply = msgs[1];
  assert.equal(replyText(reply), 'echo: hello from the poller');
  assert.equal(reply.run_id, run.id);
  assert.equal(reply.assistant_id, asst.id);
  assert.equal(reply.status, 'completed');

  const steps = await collect(runs.listSteps(thread.id, run.id));
  assert.equal(steps.length, 1, JSON.stringify(steps));
  const [step] = steps;
  assert.match(step.id, /^step_/);
  assert.equal(step.object, 'thread.run.step');
  assert.equal(step.type, 'message_creation');
  assert.equal(step.status, 'completed');
  assert.equal(step.run_id, run.id);
  assert.equal(step.thread_id, thread.id);
  assert.equal(step.step_details.type, 'message_creation');
  assert.equal(step.step_details.message_creation.message_id, reply.id);
  assertIntTs(step.completed_at, 'step.completed_at');
  assertUsage(step.usage);
});

t('runs: stream with textDelta listener and finalMessages', async () => {
  const asst = await echoAsst();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'stream me a reply please' }] });
  const stream = runsApi.stream(thread.id, { assistant_id: asst.id });
  const rec = record(stream);
  const messages = await stream.finalMessages();
  const run = await stream.finalRun();

  assert.deepEqual(collapse(rec.events), SIMPLE_RUN_EVENTS);
  assert.ok(rec.deltas.length >= 2, `expected the reply in several deltas, got ${JSON.stringify(rec.deltas)}`);
  assert.equal(rec.deltas.join('').trimEnd(), 'echo: stream me a reply please');
  assert.deepEqual(rec.textsDone.map((s) => s.trimEnd()), ['echo: stream me a reply please']);
  assert.equal(messages.length, 1);
  assert.equal(replyText(messages[0]), 'echo: stream me a reply please');
  assert.equal(run.status, 'completed');
  assert.equal(run.thread_id, thread.id);
  assertUsage(run.usage);

  // What was streamed is what was stored.
  const [stored] = (await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data;
  assert.equal(stored.id, messages[0].id);
  assert.equal(stored.run_id, run.id);
  // (4.42's finalMessages() keeps the status of thread.message.created; the stored one is final.)
  assert.equal(stored.status, 'completed');
  assert.equal(replyText(stored), 'echo: stream me a reply please');
  assert.equal((await runs.retrieve(thread.id, run.id)).status, 'completed');
});

t(
  'runs: createAndRunStream starts with thread.created',
  { skip: !HAS_CREATE_AND_RUN_STREAM && `openai ${VERSION} has no threads.createAndRunStream` },
  async () => {
    const asst = await echoAsst();
    const stream = client.beta.threads.createAndRunStream({
      assistant_id: asst.id,
      thread: { messages: [{ role: 'user', content: 'a brand new thread' }] },
    });
    const rec = record(stream);
    const messages = await stream.finalMessages();
    const run = await stream.finalRun();

    assert.deepEqual(collapse(rec.events), ['thread.created', ...SIMPLE_RUN_EVENTS]);
    assert.match(rec.threadCreated?.id ?? '', /^thread_/);
    assert.equal(run.thread_id, rec.threadCreated.id);
    assert.equal(run.status, 'completed');
    assert.equal(rec.deltas.join('').trimEnd(), 'echo: a brand new thread');
    assert.deepEqual(messages.map(replyText), ['echo: a brand new thread']);
    const stored = await collect(client.beta.threads.messages.list(run.thread_id, { order: 'asc' }));
    assert.deepEqual(
      stored.map((m) => [m.role, replyText(m)]),
      [['user', 'a brand new thread'], ['assistant', 'echo: a brand new thread']],
    );
  },
);

t('runs: threads.createAndRunPoll creates the thread and polls the run to completion', async () => {
  const asst = await echoAsst();
  const run = await client.beta.threads.createAndRunPoll({
    assistant_id: asst.id,
    thread: { messages: [{ role: 'user', content: 'polled in one call' }] },
  });
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.match(run.thread_id, /^thread_/);
  assertUsage(run.usage);
  const msgs = await collect(client.beta.threads.messages.list(run.thread_id, { order: 'asc' }));
  assert.deepEqual(
    msgs.map((m) => [m.role, replyText(m)]),
    [['user', 'polled in one call'], ['assistant', 'echo: polled in one call']],
  );
});

t('runs: function tool round trip, polled (createAndPoll + submitToolOutputsAndPoll)', async () => {
  const asst = await weatherAsst();
  const thread = await weatherThread();
  const run = await runsApi.createAndPoll(thread.id, { assistant_id: asst.id });
  const call = pendingWeatherCall(run);
  assert.deepEqual(run.tools.map((x) => x.type), ['function']);
  assertIntTs(run.expires_at, 'expires_at');
  assert.equal(run.expires_at, run.created_at + 600, 'an active run expires 10 minutes after creation');
  assert.equal(run.completed_at, null);

  const done = await runs.submitToolOutputsAndPoll(thread.id, run.id, {
    tool_outputs: [{ tool_call_id: call.id, output: '22C' }],
  });
  assert.equal(done.id, run.id);
  assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
  assert.equal(done.required_action, null);
  assertIntTs(done.completed_at, 'completed_at');
  assertUsage(done.usage);

  const msgs = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
  assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant']);
  assert.equal(replyText(msgs[1]), 'Tool said: 22C');
  assert.equal(msgs[1].run_id, run.id);

  const steps = await collect(runs.listSteps(thread.id, run.id, { order: 'asc' }));
  assert.deepEqual(steps.map((s) => s.type), ['tool_calls', 'message_creation']);
  assert.deepEqual(steps.map((s) => s.status), ['completed', 'completed']);
  const [toolStep, messageStep] = steps;
  assert.equal(toolStep.step_details.type, 'tool_calls');
  assert.equal(toolStep.step_details.tool_calls.length, 1);
  const [tc] = toolStep.step_details.tool_calls;
  assert.equal(tc.id, call.id);
  assert.equal(tc.type, 'function');
  assert.equal(tc.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'Paris' });
  assert.equal(tc.function.output, '22C');
  assert.equal(messageStep.step_details.message_creation.message_id, msgs[1].id);
});

t('runs: function tool round trip, streamed (stream + submitToolOutputsStream)', async () => {
  const asst = await weatherAsst();
  const thread = await weatherThread();
  const first = runsApi.stream(thread.id, { assistant_id: asst.id });
  const rec1 = record(first);
  const run = await first.finalRun();

  assert.deepEqual(collapse(rec1.events), TOOL_CALL_EVENTS);
  const call = pendingWeatherCall(run);
  assert.equal(first.currentRun()?.status, 'requires_action');
  assert.deepEqual(rec1.toolCallsCreated, [[call.id, 'function', 'get_weather']]);
  assert.deepEqual(rec1.toolCallsDone.map((tc) => [tc.id, tc.function.name]), [[call.id, 'get_weather']]);
  const [pendingStep] = await first.finalRunSteps();
  assert.equal(pendingStep.type, 'tool_calls');
  assert.equal(pendingStep.status, 'in_progress');
  assert.deepEqual(pendingStep.step_details.tool_calls.map((x) => x.id), [call.id]);
  if (MERGES_TOOL_CALL_DELTAS) {
    assert.deepEqual(JSON.parse(rec1.toolCallsDone[0].function.arguments), { city: 'Paris' });
    assert.deepEqual(JSON.parse(pendingStep.step_details.tool_calls[0].function.arguments), { city: 'Paris' });
  }
  assert.deepEqual(rec1.deltas, []);

  const second = runs.submitToolOutputsStream(thread.id, run.id, {
    tool_outputs: [{ tool_call_id: call.id, output: '22C' }],
  });
  const rec2 = record(second);
  const messages = await second.finalMessages();
  const final = await second.finalRun();

  assert.deepEqual(collapse(rec2.events), AFTER_TOOL_OUTPUTS_EVENTS);
  assert.equal(final.id, run.id);
  assert.equal(final.status, 'completed');
  assertUsage(final.usage);
  assert.equal(rec2.deltas.join('').trimEnd(), 'Tool said: 22C');
  assert.deepEqual(messages.map(replyText), ['Tool said: 22C']);
  assert.deepEqual(rec2.stepsDone.map((s) => s.type), ['tool_calls', 'message_creation']);
  const toolStep = rec2.stepsDone[0];
  assert.equal(toolStep.status, 'completed');
  assert.deepEqual(
    toolStep.step_details.tool_calls.map((x) => [x.id, x.function.output]),
    [[call.id, '22C']],
  );
});

t('runs: the thread is locked while a run requires action', async () => {
  const asst = await weatherAsst();
  const thread = await weatherThread();
  const run = await runsApi.createAndPoll(thread.id, { assistant_id: asst.id });
  const call = pendingWeatherCall(run);

  const { inner } = await expectApiError(
    client.beta.threads.messages.create(thread.id, { role: 'user', content: 'one more thing' }),
    BadRequestError,
    400,
  );
  assert.ok(inner.message.includes(run.id), inner.message);
  await expectApiError(runsApi.create(thread.id, { assistant_id: asst.id }), BadRequestError, 400);
  assert.equal((await client.beta.threads.messages.list(thread.id)).data.length, 1, 'the refused message was stored');

  const done = await runs.submitToolOutputsAndPoll(thread.id, run.id, {
    tool_outputs: [{ tool_call_id: call.id, output: '22C' }],
  });
  assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
  // The lock ends with the run.
  await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'one more thing' });
});

t('runs: cancel a run that requires action', async () => {
  const asst = await weatherAsst();
  const echo = await echoAsst();
  const thread = await weatherThread();
  const run = await runsApi.createAndPoll(thread.id, { assistant_id: asst.id });
  pendingWeatherCall(run);

  const cancelled = await runs.cancel(thread.id, run.id);
  assert.equal(cancelled.id, run.id);
  assert.ok(['cancelling', 'cancelled'].includes(cancelled.status), cancelled.status);
  const final = await runs.poll(thread.id, run.id);
  assert.equal(final.status, 'cancelled');
  assertIntTs(final.cancelled_at, 'cancelled_at');
  assert.equal(final.completed_at, null);
  assert.equal(final.failed_at, null);
  assert.equal(final.expires_at, null, 'expires_at is null once the run is terminal');

  const steps = (await runs.listSteps(thread.id, run.id)).data;
  assert.deepEqual(steps.map((s) => [s.type, s.status]), [['tool_calls', 'cancelled']]);

  // A cancelled run cannot be cancelled again.
  await expectApiError(runs.cancel(thread.id, run.id), BadRequestError, 400);

  // The thread is free again: a message and a new run go through.
  await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'never mind' });
  const again = await runsApi.createAndPoll(thread.id, { assistant_id: echo.id });
  assert.equal(again.status, 'completed', JSON.stringify(again.last_error));
  const [latest] = (await client.beta.threads.messages.list(thread.id, { limit: 1 })).data;
  assert.equal(replyText(latest), 'echo: never mind');

  // Spec: usage is null only while the run is not terminal; cancelled is terminal.
  assertUsage(final.usage);
});

t('runs: list, retrieve, update metadata, steps.retrieve', async () => {
  const asst = await echoAsst();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'first' }] });
  const r1 = await runsApi.createAndPoll(thread.id, { assistant_id: asst.id, metadata: { n: '1' } });
  assert.equal(r1.status, 'completed', JSON.stringify(r1.last_error));
  assert.deepEqual(r1.metadata, { n: '1' });
  await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'second' });
  const r2 = await runsApi.createAndPoll(thread.id, { assistant_id: asst.id, metadata: { n: '2' } });
  assert.equal(r2.status, 'completed', JSON.stringify(r2.last_error));
  assert.equal(replyText((await client.beta.threads.messages.list(thread.id, { limit: 1 })).data[0]), 'echo: second');

  assert.deepEqual(await ids(runsApi.list(thread.id)), [r2.id, r1.id], 'desc (default) must be newest first');
  assert.deepEqual(await ids(runsApi.list(thread.id, { order: 'asc', limit: 1 })), [r1.id, r2.id]);
  assert.deepEqual((await runsApi.list(thread.id, { order: 'asc', after: r2.id })).data, []);

  const got = await runs.retrieve(thread.id, r1.id);
  assert.equal(got.id, r1.id);
  assert.equal(got.object, 'thread.run');
  assert.equal(got.status, 'completed');
  assert.equal(got.created_at, r1.created_at);
  assert.equal(got.completed_at, r1.completed_at);
  assert.deepEqual(got.metadata, { n: '1' });
  assert.deepEqual(got.usage, r1.usage);

  const updated = await runs.update(thread.id, r1.id, { metadata: { reviewed: 'yes' } });
  assert.equal(updated.id, r1.id);
  assert.deepEqual(updated.metadata, { reviewed: 'yes' }, 'metadata update must replace the whole map');
  assert.equal(updated.status, 'completed');
  assert.deepEqual((await runs.retrieve(thread.id, r1.id)).metadata, { reviewed: 'yes' });

  const [listed] = (await runs.listSteps(thread.id, r1.id)).data;
  const step = await runs.retrieveStep(thread.id, r1.id, listed.id);
  assert.equal(step.id, listed.id);
  assert.equal(step.object, 'thread.run.step');
  assert.equal(step.run_id, r1.id);
  assert.equal(step.assistant_id, asst.id);
  assert.equal(step.type, 'message_creation');
  assert.equal(step.step_details.message_creation.message_id, listed.step_details.message_creation.message_id);
  assert.equal(step.created_at, listed.created_at);

  await expectApiError(runs.retrieve(thread.id, 'run_doesnotexist000'), NotFoundError, 404);
  await expectApiError(runs.retrieveStep(thread.id, r1.id, 'step_doesnotexist000'), NotFoundError, 404);
});

// ---------------------------------------------------------------------------------------------
// file_search runs
//
// The server runs the built-in file_search tool itself: the fake upstream calls `file_search`
// with the user's question, the server searches the assistant's vector store, records the hits in
// a file_search tool call step and hands the model passages labelled 【n:m†file】; the label the
// model quotes in its answer becomes a file_citation annotation.
// ---------------------------------------------------------------------------------------------

const FS_FILE_NAME = 'glimmerfrost.txt';
const FS_DOC =
  'Field guide entry: the glimmerfrost tortoise. The glimmerfrost tortoise lives on the basalt cliffs of ' +
  'Skerry Nine and eats lichen dusted with sea salt. Its shell glows a faint blue in winter.\n';
const FS_QUESTION = 'What does the glimmerfrost tortoise eat?';
const FS_INCLUDE = 'step_details.tool_calls[*].file_search.results[*].content';
const FS_LABEL = /\u3010\d+:\d+\u2020([^\u3011]*)\u3011/; // 【0:0†glimmerfrost.txt】

// runs.create/stream and runs.steps.list/retrieve take `include` (an array query parameter) in
// newer SDKs. 4.42 has no such parameter, and its query encoder throws on arrays, so there the
// check goes over raw fetch.
const HAS_INCLUDE = (() => {
  try {
    client.stringifyQuery({ include: [FS_INCLUDE] });
    return PARAMS_STYLE;
  } catch {
    return false;
  }
})();

// A file_search run on the wire, consecutive duplicates collapsed: the tool step is created,
// names its call in a delta and completes (with results) without requires_action, then the
// answer is written; its annotations delta is one more thread.message.delta.
const FILE_SEARCH_RUN_EVENTS = [
  'thread.run.created',
  'thread.run.queued',
  'thread.run.in_progress',
  'thread.run.step.created',
  'thread.run.step.in_progress',
  'thread.run.step.delta',
  'thread.run.step.completed',
  'thread.run.step.created',
  'thread.run.step.in_progress',
  'thread.message.created',
  'thread.message.in_progress',
  'thread.message.delta',
  'thread.message.completed',
  'thread.run.step.completed',
  'thread.run.completed',
];

/** Plain HTTP (no SDK) for wire-level assertions. */
async function rawGet(path) {
  const res = await fetch(BASE_URL + path, {
    headers: { Authorization: 'Bearer test', 'OpenAI-Beta': 'assistants=v2' },
  });
  return { status: res.status, body: await res.json() };
}

function fsStepsPath(threadId, runId, { stepId, include = false } = {}) {
  const query = new URLSearchParams(stepId ? [] : [['order', 'asc']]);
  if (include) query.append('include[]', FS_INCLUDE);
  const qs = query.toString();
  return `/threads/${threadId}/runs/${runId}/steps${stepId ? `/${stepId}` : ''}${qs ? `?${qs}` : ''}`;
}

let fileSearchSetup;
/** One uploaded file in an ingested vector store, and an assistant searching that store. */
const fsSetup = () =>
  (fileSearchSetup ??= (async () => {
    const f = await uploadText(FS_FILE_NAME, FS_DOC);
    const vs = await vectorStores.create({ name: unique('vs-fs-runs-'), file_ids: [f.id] });
    const store = await waitVsIdle(vs.id);
    assert.equal(store.file_counts.completed, 1, JSON.stringify(store.file_counts));
    const assistant = await client.beta.assistants.create({
      model: MODEL,
      name: 'sdk-runs-file-search',
      instructions: 'Search the files and cite what you use.',
      tools: [{ type: 'file_search', file_search: { max_num_results: 5 } }],
      tool_resources: { file_search: { vector_store_ids: [vs.id] } },
    });
    return { file: f, vectorStore: vs, assistant };
  })());

const fsThread = () => client.beta.threads.create({ messages: [{ role: 'user', content: FS_QUESTION }] });

/** The answer quotes one label of our file, annotated as a file_citation slicing exactly it. */
function assertCitesFile(message, fileId) {
  const texts = message.content.filter((c) => c.type === 'text').map((c) => c.text);
  assert.equal(texts.length, 1, JSON.stringify(message.content));
  const [text] = texts;
  const found = FS_LABEL.exec(text.value);
  assert.ok(found, `no 【n:m†file】 label in ${JSON.stringify(text.value)}`);
  const label = found[0];
  assert.equal(found[1], FS_FILE_NAME, label);
  assert.equal(text.value.trimEnd(), `Found it ${label}.`);
  assert.equal(text.annotations?.length, 1, JSON.stringify(text.annotations));
  const [ann] = text.annotations;
  assert.equal(ann.type, 'file_citation', JSON.stringify(ann));
  assert.equal(ann.text, label);
  assert.equal(ann.file_citation?.file_id, fileId);
  assert.ok(Number.isInteger(ann.start_index) && Number.isInteger(ann.end_index), JSON.stringify(ann));
  assert.equal(text.value.slice(ann.start_index, ann.end_index), label, JSON.stringify([ann, text.value]));
  return label;
}

/** The single file_search call of a completed tool_calls step. */
function fileSearchCall(step, fileId) {
  assert.equal(step.type, 'tool_calls');
  assert.equal(step.status, 'completed', JSON.stringify(step.last_error));
  assert.equal(step.step_details.type, 'tool_calls');
  assert.equal(step.step_details.tool_calls.length, 1, JSON.stringify(step.step_details));
  const [call] = step.step_details.tool_calls;
  assert.equal(call.type, 'file_search', JSON.stringify(call));
  assert.match(call.id, /^call_/);
  const details = call.file_search;
  const ranking = details?.ranking_options;
  assert.ok(ranking, `no ranking_options in ${JSON.stringify(details)}`);
  assert.ok(['auto', 'default_2024_08_21'].includes(ranking.ranker), JSON.stringify(ranking));
  assert.ok(ranking.score_threshold >= 0 && ranking.score_threshold <= 1, JSON.stringify(ranking));
  const results = details.results;
  assert.ok(results?.length > 0, `the search found nothing: ${JSON.stringify(details)}`);
  const [top] = results;
  assert.equal(top.file_id, fileId);
  assert.equal(top.file_name, FS_FILE_NAME);
  assert.ok(typeof top.score === 'number' && top.score > 0 && top.score <= 1, JSON.stringify(top));
  return details;
}

t('file_search run: createAndPoll answers with a file_citation slicing the label', async () => {
  const fs = await fsSetup();
  const thread = await fsThread();
  const run = await runsApi.createAndPoll(thread.id, { assistant_id: fs.assistant.id });
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.equal(run.required_action, null, 'file_search runs on the server, never as requires_action');
  assert.deepEqual(run.tools.map((x) => x.type), ['file_search']);
  assertUsage(run.usage);

  const msgs = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
  assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant']);
  const reply = msgs[1];
  assert.equal(reply.run_id, run.id);
  assert.equal(reply.status, 'completed');
  assertCitesFile(reply, fs.file.id);
  assertCitesFile(await sdk.messages.retrieve(thread.id, reply.id), fs.file.id);
});

t('file_search run: steps record the results, content only with include[]', async () => {
  const fs = await fsSetup();
  const thread = await fsThread();
  const run = await runsApi.createAndPoll(thread.id, { assistant_id: fs.assistant.id });
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));

  const steps = await collect(runs.listSteps(thread.id, run.id, { order: 'asc' }));
  assert.deepEqual(steps.map((s) => s.type), ['tool_calls', 'message_creation']);
  const [toolStep, messageStep] = steps;
  const details = fileSearchCall(toolStep, fs.file.id);
  assert.ok(details.results.every((r) => !('content' in r)), 'content only with include[]');
  const [reply] = (await client.beta.threads.messages.list(thread.id, { limit: 1 })).data;
  assert.equal(messageStep.step_details.message_creation.message_id, reply.id);
  const got = await runs.retrieveStep(thread.id, run.id, toolStep.id);
  assert.deepEqual(fileSearchCall(got, fs.file.id).results, details.results);

  // On the wire (any SDK): the passage text with include[], on list and retrieve.
  for (const path of [
    fsStepsPath(thread.id, run.id, { include: true }),
    fsStepsPath(thread.id, run.id, { stepId: toolStep.id, include: true }),
  ]) {
    const { status, body } = await rawGet(path);
    assert.equal(status, 200, `${path}: ${JSON.stringify(body)}`);
    const step = body.object === 'list' ? body.data[0] : body;
    const [top] = step.step_details.tool_calls[0].file_search.results;
    assert.equal(top.file_id, fs.file.id);
    assert.equal(top.content?.[0]?.type, 'text', JSON.stringify(top));
    assert.ok(top.content[0].text.includes('lichen dusted with sea salt'), JSON.stringify(top));
  }
});

t(
  'file_search run: steps list/retrieve with the SDK include parameter',
  { skip: !HAS_INCLUDE && `openai ${VERSION} runs.steps has no include parameter (checked over raw fetch instead)` },
  async () => {
    const fs = await fsSetup();
    const thread = await fsThread();
    const run = await runsApi.createAndPoll(thread.id, { assistant_id: fs.assistant.id });
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));

    const listed = (await runs.listSteps(thread.id, run.id, { order: 'asc', include: [FS_INCLUDE] })).data;
    assert.deepEqual(listed.map((s) => s.type), ['tool_calls', 'message_creation']);
    const [top] = fileSearchCall(listed[0], fs.file.id).results;
    assert.equal(top.content?.[0]?.type, 'text', JSON.stringify(top));
    assert.ok(top.content[0].text.includes('lichen dusted with sea salt'));

    const got = await runs.retrieveStep(thread.id, run.id, listed[0].id, { include: [FS_INCLUDE] });
    assert.deepEqual(fileSearchCall(got, fs.file.id).results[0].content, top.content);
    const plain = await runs.retrieveStep(thread.id, run.id, listed[0].id);
    assert.ok(!('content' in fileSearchCall(plain, fs.file.id).results[0]));
  },
);

t('file_search run: stream finalMessages() carries the streamed annotation', async () => {
  const fs = await fsSetup();
  const thread = await fsThread();
  const stream = runsApi.stream(thread.id, { assistant_id: fs.assistant.id });
  const rec = record(stream);
  const annotationDeltas = [];
  const annotatedSnapshots = [];
  stream.on('textDelta', (delta, snapshot) => {
    if (delta.annotations?.length) {
      annotationDeltas.push(structuredClone(delta.annotations));
      annotatedSnapshots.push(structuredClone(snapshot.annotations ?? []));
    }
  });
  const messages = await stream.finalMessages();
  const run = await stream.finalRun();

  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.deepEqual(collapse(rec.events), FILE_SEARCH_RUN_EVENTS);
  assert.equal(rec.toolCallsCreated.length, 1, JSON.stringify(rec.toolCallsCreated));
  const [[callId, callType, functionName]] = rec.toolCallsCreated;
  assert.equal(callType, 'file_search');
  assert.match(callId, /^call_/);
  assert.equal(functionName, undefined);
  assert.deepEqual(rec.stepsDone.map((s) => s.type), ['tool_calls', 'message_creation']);
  const details = fileSearchCall(rec.stepsDone[0], fs.file.id);
  assert.equal(rec.stepsDone[0].step_details.tool_calls[0].id, callId);
  assert.ok(details.results.every((r) => !('content' in r)));

  assert.equal(messages.length, 1);
  const label = assertCitesFile(messages[0], fs.file.id);
  assert.equal(rec.deltas.filter((d) => d !== undefined).join('').trimEnd(), `Found it ${label}.`);
  // The annotations came in one delta before thread.message.completed, and the SDK merged them
  // into its message snapshot.
  assert.equal(annotationDeltas.length, 1, JSON.stringify(annotationDeltas));
  const [[streamed]] = annotationDeltas;
  assert.equal(streamed.index, 0);
  assert.equal(streamed.type, 'file_citation');
  assert.equal(streamed.text, label);
  assert.equal(streamed.file_citation?.file_id, fs.file.id);
  const ann = messages[0].content[0].text.annotations[0];
  assert.deepEqual([streamed.start_index, streamed.end_index], [ann.start_index, ann.end_index]);
  assert.equal(annotatedSnapshots[0].length, 1, JSON.stringify(annotatedSnapshots[0]));
  assert.equal(annotatedSnapshots[0][0].text, label);
  assert.equal(annotatedSnapshots[0][0].file_citation?.file_id, fs.file.id);

  // What was streamed is what was stored.
  const [stored] = (await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data;
  assert.equal(stored.id, messages[0].id);
  assert.equal(assertCitesFile(stored, fs.file.id), label);
});

t(
  'file_search run: stream with include sends the result content in the completed step',
  { skip: !HAS_INCLUDE && `openai ${VERSION} runs.stream has no include parameter` },
  async () => {
    const fs = await fsSetup();
    const thread = await fsThread();
    const stream = runsApi.stream(thread.id, { assistant_id: fs.assistant.id, include: [FS_INCLUDE] });
    const rec = record(stream);
    const run = await stream.finalRun();
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.deepEqual(rec.stepsDone.map((s) => s.type), ['tool_calls', 'message_creation']);
    const [top] = fileSearchCall(rec.stepsDone[0], fs.file.id).results;
    assert.equal(top.content?.[0]?.type, 'text', JSON.stringify(top));
    assert.ok(top.content[0].text.includes('lichen dusted with sea salt'));
    // include[] shapes that response only: the stored step lists content on request, as before.
    const [stored] = (await runs.listSteps(thread.id, run.id, { order: 'asc' })).data;
    assert.ok(!('content' in fileSearchCall(stored, fs.file.id).results[0]));
  },
);

// ---------------------------------------------------------------------------------------------
// web_retrieval runs (url_citation)
//
// tests/sdk/run.sh grants the built-in web_retrieval tool one host, a static web server of its
// own, and names its test page in ASSISTANTS_SDK_WEB_URL. Offered `web_fetch`, the fake upstream
// fetches the URL in the user's message; the server reads the page (HTML to text, scripts
// dropped), hands the model a passage labelled 【n:m†<page title>】 and the answer quoting that
// label gets our extension annotation:
//   { type: 'url_citation', text: label, start_index, end_index, url, title }
// The Node SDKs type no such annotation but pass the JSON through as it came.
// ---------------------------------------------------------------------------------------------

const WEB_URL = process.env.ASSISTANTS_SDK_WEB_URL;
const noWeb =
  !WEB_URL &&
  'ASSISTANTS_SDK_WEB_URL is not set: no page the server under test may fetch ' +
    '(tests/sdk/run.sh serves one and grants web_retrieval when it starts its own server)';
const WEB_LABEL = /\u3010\d+:\d+\u2020([^\u3011]*)\u3011/; // 【0:0†Page Title】
const URL_CITATION_KEYS = ['end_index', 'start_index', 'text', 'title', 'type', 'url'];

/** The test page's title, paragraphs and script text, read straight from the page. */
async function readWebPage(url) {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  const html = await res.text();
  const title = /<title>([^<]+)<\/title>/.exec(html);
  const paragraphs = [...html.matchAll(/<p>([^<]+)<\/p>/g)].map((m) => m[1].trim());
  const script = /<script[^>]*>([^<]+)<\/script>/.exec(html);
  assert.ok(title && paragraphs.length && script, `${url} needs a <title>, <p> paragraphs and a <script>: ${html}`);
  return { title: title[1].trim(), paragraphs, script: script[1].trim() };
}

let webSetupPromise;
const webSetup = () =>
  (webSetupPromise ??= (async () => {
    const page = await readWebPage(WEB_URL);
    const assistant = await client.beta.assistants.create({
      model: MODEL,
      name: 'sdk-runs-web',
      instructions: 'Read the pages you are given and cite them.',
      tools: [{ type: 'web_retrieval' }],
    });
    assert.deepEqual(assistant.tools.map((x) => x.type), ['web_retrieval']);
    return { page, assistant };
  })());

const webThread = () => client.beta.threads.create({ messages: [{ role: 'user', content: `Please read ${WEB_URL}` }] });

/** The answer quotes the page's label, annotated as a url_citation slicing exactly it. */
function assertCitesPage(message, page) {
  const texts = message.content.filter((c) => c.type === 'text').map((c) => c.text);
  assert.equal(texts.length, 1, JSON.stringify(message.content));
  const [text] = texts;
  const found = WEB_LABEL.exec(text.value);
  assert.ok(found, `no 【n:m†title】 label in ${JSON.stringify(text.value)}`);
  const label = found[0];
  assert.equal(found[1], page.title, label);
  assert.equal(text.value.trimEnd(), `Found it ${label}.`);
  assert.equal(text.annotations?.length, 1, JSON.stringify(text.annotations));
  const [ann] = text.annotations;
  assert.equal(ann.type, 'url_citation', JSON.stringify(ann));
  assert.equal(ann.text, label);
  assert.equal(ann.url, WEB_URL);
  assert.equal(ann.title, page.title);
  assert.ok(Number.isInteger(ann.start_index) && Number.isInteger(ann.end_index), JSON.stringify(ann));
  assert.equal(text.value.slice(ann.start_index, ann.end_index), label, JSON.stringify([ann, text.value]));
  return label;
}

/** The single web_fetch function call of a completed tool_calls step, with the page's text. */
function webFetchCall(step, page) {
  assert.equal(step.type, 'tool_calls');
  assert.equal(step.status, 'completed', JSON.stringify(step.last_error));
  assert.equal(step.step_details.tool_calls.length, 1, JSON.stringify(step.step_details));
  const [call] = step.step_details.tool_calls;
  assert.equal(call.type, 'function', JSON.stringify(call));
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, 'web_fetch');
  assert.deepEqual(JSON.parse(call.function.arguments), { url: WEB_URL });
  const { output } = call.function;
  assert.equal(typeof output, 'string', JSON.stringify(call));
  const label = WEB_LABEL.exec(output);
  assert.ok(label && label.index === 0 && label[1] === page.title, output);
  assert.ok(output.includes(WEB_URL), output);
  for (const paragraph of page.paragraphs) assert.ok(output.includes(paragraph), `${paragraph} not in ${output}`);
  assert.ok(!output.includes(page.script), `the <script> text leaked into the tool output: ${output}`);
  return call;
}

t('web_retrieval run: createAndPoll answers with a url_citation slicing the label', { skip: noWeb }, async () => {
  const web = await webSetup();
  const thread = await webThread();
  const run = await runsApi.createAndPoll(thread.id, { assistant_id: web.assistant.id });
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.equal(run.required_action, null, 'web_retrieval runs on the server, never as requires_action');
  assert.deepEqual(run.tools.map((x) => x.type), ['web_retrieval']);
  assertUsage(run.usage);

  const msgs = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
  assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant']);
  const reply = msgs[1];
  assert.equal(reply.run_id, run.id);
  assert.equal(reply.status, 'completed');
  const label = assertCitesPage(reply, web.page);
  assert.equal(assertCitesPage(await sdk.messages.retrieve(thread.id, reply.id), web.page), label);
  // Exactly the url_citation shape, nothing of file_citation.
  assert.deepEqual(Object.keys(reply.content[0].text.annotations[0]).sort(), URL_CITATION_KEYS);

  const steps = await collect(runs.listSteps(thread.id, run.id, { order: 'asc' }));
  assert.deepEqual(steps.map((s) => s.type), ['tool_calls', 'message_creation']);
  const [toolStep, messageStep] = steps;
  const call = webFetchCall(toolStep, web.page);
  assert.ok(call.function.output.startsWith(label), JSON.stringify([label, call.function.output]));
  assert.equal(messageStep.step_details.message_creation.message_id, reply.id);
});

t('web_retrieval run: stream finalMessages() carries the streamed url_citation', { skip: noWeb }, async () => {
  const web = await webSetup();
  const thread = await webThread();
  const stream = runsApi.stream(thread.id, { assistant_id: web.assistant.id });
  const rec = record(stream);
  const annotationDeltas = [];
  const annotatedSnapshots = [];
  stream.on('textDelta', (delta, snapshot) => {
    if (delta.annotations?.length) {
      annotationDeltas.push(structuredClone(delta.annotations));
      annotatedSnapshots.push(structuredClone(snapshot.annotations ?? []));
    }
  });
  const messages = await stream.finalMessages();
  const run = await stream.finalRun();

  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  // Same shape as a file_search run: a tool step completed on the server, then the answer,
  // whose annotations arrive in one more thread.message.delta before thread.message.completed.
  assert.deepEqual(collapse(rec.events), FILE_SEARCH_RUN_EVENTS);
  assert.equal(rec.toolCallsCreated.length, 1, JSON.stringify(rec.toolCallsCreated));
  const [[callId, callType, functionName]] = rec.toolCallsCreated;
  assert.deepEqual([callType, functionName], ['function', 'web_fetch']);
  assert.deepEqual(rec.stepsDone.map((s) => s.type), ['tool_calls', 'message_creation']);
  assert.equal(webFetchCall(rec.stepsDone[0], web.page).id, callId);

  assert.equal(messages.length, 1);
  const label = assertCitesPage(messages[0], web.page);
  assert.equal(rec.deltas.filter((d) => d !== undefined).join('').trimEnd(), `Found it ${label}.`);
  assert.equal(annotationDeltas.length, 1, JSON.stringify(annotationDeltas));
  const [[streamed]] = annotationDeltas;
  assert.equal(streamed.index, 0);
  assert.equal(streamed.type, 'url_citation');
  assert.deepEqual([streamed.text, streamed.url, streamed.title], [label, WEB_URL, web.page.title]);
  const ann = messages[0].content[0].text.annotations[0];
  assert.deepEqual([streamed.start_index, streamed.end_index], [ann.start_index, ann.end_index]);
  assert.equal(annotatedSnapshots[0].length, 1, JSON.stringify(annotatedSnapshots[0]));
  const [accumulated] = annotatedSnapshots[0];
  assert.deepEqual(
    [accumulated.type, accumulated.text, accumulated.url, accumulated.title],
    ['url_citation', label, WEB_URL, web.page.title],
  );

  // What was streamed is what was stored.
  const [stored] = (await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data;
  assert.equal(stored.id, messages[0].id);
  assert.equal(assertCitesPage(stored, web.page), label);
});

// ---------------------------------------------------------------------------------------------
// code_interpreter (the server's sandboxed Python; CI installs it before these suites)
// ---------------------------------------------------------------------------------------------

const CODE = "x = 6 * 7\nprint(f'x = {x}')\nx + 1";
let codeAssistant;

async function codeSetup() {
  if (codeAssistant) return codeAssistant;
  // The server loads the interpreter in the background at start.
  const deadline = Date.now() + 180_000;
  for (;;) {
    const { status, body } = await rawGet('/plugins/code_interpreter');
    assert.equal(status, 200, JSON.stringify(body));
    assert.notEqual(body.status, 'unavailable', `code_interpreter is unavailable: ${body.status_reason}`);
    if (body.status === 'ready') break;
    assert.ok(Date.now() < deadline, 'code_interpreter did not become ready');
    await new Promise((r) => setTimeout(r, 500));
  }
  codeAssistant = await client.beta.assistants.create({ model: 'sdk-test-model', tools: [{ type: 'code_interpreter' }] });
  return codeAssistant;
}

t('code_interpreter run streamed: the code as it is written, then its logs', async () => {
  const asst = await codeSetup();
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `python: ${CODE}` }] });
  const stream = runsApi.stream(thread.id, { assistant_id: asst.id });
  const rec = record(stream);
  const inputs = [];
  stream.on('toolCallDelta', (delta) => {
    if (delta.type === 'code_interpreter' && delta.code_interpreter?.input) inputs.push(delta.code_interpreter.input);
  });
  const messages = await stream.finalMessages();
  const run = await stream.finalRun();

  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.equal(rec.toolCallsCreated.length, 1, JSON.stringify(rec.toolCallsCreated));
  const [callId, callType, functionName] = rec.toolCallsCreated[0];
  assert.deepEqual([callType, functionName], ['code_interpreter', undefined]);
  assert.ok(inputs.length >= 2, JSON.stringify(inputs));
  assert.equal(inputs.join(''), CODE);
  assert.deepEqual(rec.stepsDone.map((s) => s.type), ['tool_calls', 'message_creation']);
  const [done] = rec.stepsDone[0].step_details.tool_calls;
  assert.equal(done.id, callId);
  assert.equal(done.code_interpreter.input, CODE);
  assert.deepEqual(done.code_interpreter.outputs, [{ type: 'logs', logs: 'x = 42\n43\n' }]);
  assert.equal(replyText(messages[0]), 'Tool said: x = 42\n43');

  const steps = (await runs.listSteps(thread.id, run.id, { order: 'asc' })).data;
  const [stored] = steps.find((s) => s.type === 'tool_calls').step_details.tool_calls;
  assert.deepEqual(stored.code_interpreter, done.code_interpreter);
});

t('code_interpreter: a sandbox link in the answer is a file_path annotation, streamed and stored', async () => {
  const asst = await codeSetup();
  // The code writes a file and prints a link to it; the fake model's answer repeats the output.
  const code = "open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')\nprint('[out](sandbox:/mnt/data/out.csv)')";
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `python: ${code}` }] });
  const stream = runsApi.stream(thread.id, { assistant_id: asst.id });
  const messages = await stream.finalMessages();
  const run = await stream.finalRun();
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  const [streamed] = messages[0].content[0].text.annotations;
  assert.equal(streamed.type, 'file_path', JSON.stringify(streamed));
  assert.equal(streamed.text, 'sandbox:/mnt/data/out.csv');
  const [stored] = (await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data;
  const text = stored.content[0].text;
  const [ann] = text.annotations;
  // The streamed one also carries its delta `index`, as the SDK accumulates it.
  const fields = (a) => [a.type, a.text, a.start_index, a.end_index, a.file_path.file_id];
  assert.deepEqual(fields(streamed), fields(ann));
  assert.equal(text.value.slice(ann.start_index, ann.end_index), ann.text);
  const file = await client.files.retrieve(ann.file_path.file_id);
  assert.equal(file.purpose, 'assistants_output');
  const body = await (await client.files.content(file.id)).text();
  assert.equal(body, 'a,b\n1,2\n');
});

// ---------------------------------------------------------------------------------------------
// conversations (the Responses surface)
// ---------------------------------------------------------------------------------------------

const noConversations = !HAS_CONVERSATIONS && `openai ${VERSION} has no conversations resource`;

t('conversations: create with items, list, add, retrieve, update, delete', { skip: noConversations }, async () => {
  const conv = await client.conversations.create({
    metadata: { topic: 'demo' },
    items: [
      { type: 'message', role: 'user', content: 'Hello!' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hi.' }] },
    ],
  });
  assert.match(conv.id, /^conv_/);
  assert.equal(conv.object, 'conversation');
  assert.deepEqual(conv.metadata, { topic: 'demo' });
  assertIntTs(conv.created_at);
  assert.equal((await client.conversations.retrieve(conv.id)).id, conv.id);

  const items = await collect(client.conversations.items.list(conv.id, { order: 'asc' }));
  assert.deepEqual(items.map((i) => i.role), ['user', 'assistant']);
  assert.deepEqual(items[0].content, [{ type: 'input_text', text: 'Hello!' }]);

  const added = await client.conversations.items.create(conv.id, {
    items: [
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { type: 'function_call_output', call_id: 'call_1', output: 'sunny' },
    ],
  });
  assert.deepEqual(added.data.map((i) => i.type), ['function_call', 'function_call_output']);
  const call = await client.conversations.items.retrieve(added.data[0].id, { conversation_id: conv.id });
  assert.equal(call.name, 'get_weather');
  const newest = await collect(client.conversations.items.list(conv.id, { limit: 1 }));
  assert.deepEqual(newest.map((i) => i.id), [added.data[1].id, added.data[0].id, items[1].id, items[0].id]);

  const updated = await client.conversations.update(conv.id, { metadata: { topic: 'weather' } });
  assert.deepEqual(updated.metadata, { topic: 'weather' });
  const after = await client.conversations.items.delete(items[0].id, { conversation_id: conv.id });
  assert.equal(after.id, conv.id);

  await expectApiError(
    client.conversations.items.create(conv.id, { items: [{ type: 'message', role: 'robot', content: 'x' }] }),
    OpenAI.BadRequestError,
    400,
  );
  const deleted = await client.conversations.delete(conv.id);
  assert.equal(deleted.deleted, true);
  await expectApiError(client.conversations.retrieve(conv.id), OpenAI.NotFoundError, 404);
});

const noInputTokens =
  typeof client.responses?.inputTokens?.count !== 'function' && `openai ${VERSION} has no responses.inputTokens`;

t('responses: input token counts', { skip: noInputTokens }, async () => {
  const one = await client.responses.inputTokens.count({ model: MODEL, input: 'hello' });
  assert.equal(one.object, 'response.input_tokens');
  assert.equal(one.input_tokens, 5);
  const more = await client.responses.inputTokens.count({
    model: MODEL,
    instructions: 'Answer in French.',
    input: [{ role: 'user', content: 'hello' }],
    tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: {} } }],
  });
  assert.ok(more.input_tokens > one.input_tokens);
  await expectApiError(
    client.responses.inputTokens.count({ model: MODEL, input: 'x', conversation: 'conv_missing' }),
    OpenAI.NotFoundError,
    404,
  );
});

const noResponses = typeof client.responses?.create !== 'function' && `openai ${VERSION} has no responses resource`;
const RESPONSES_WEATHER = {
  type: 'function',
  name: 'get_weather',
  description: 'Look up the weather for a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

t('responses: create, retrieve, input items, delete', { skip: noResponses }, async () => {
  const r = await client.responses.create({ model: MODEL, input: 'hello there', instructions: 'Be brief.' });
  assert.match(r.id, /^resp_/);
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.output_text.trim(), 'echo: hello there');
  assert.equal(r.output[0].type, 'message');
  assertIntTs(r.created_at);
  const again = await client.responses.retrieve(r.id);
  assert.equal(again.output_text, r.output_text);
  const items = await collect(client.responses.inputItems.list(r.id));
  assert.deepEqual(items.map((i) => [i.type, i.role]), [['message', 'user']]);
  await client.responses.delete(r.id);
  await expectApiError(client.responses.retrieve(r.id), OpenAI.NotFoundError, 404);
});

t('responses: function call answered through previous_response_id', { skip: noResponses }, async () => {
  const first = await client.responses.create({
    model: MODEL,
    input: 'What is the weather in Paris?',
    tools: [RESPONSES_WEATHER],
  });
  const call = first.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(first.output));
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
  const second = await client.responses.create({
    model: MODEL,
    previous_response_id: first.id,
    tools: [RESPONSES_WEATHER],
    input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny, 24 C' }],
  });
  assert.equal(second.output_text.trim(), 'Tool said: sunny, 24 C');
});

t('responses: stream events accumulate to the final response', { skip: noResponses }, async () => {
  const stream = client.responses.stream({ model: MODEL, input: 'stream me' });
  const types = [];
  let text = '';
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'response.output_text.delta') text += event.delta;
  }
  const final = await stream.finalResponse();
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  assert.equal(text, final.output_text);
  assert.equal(final.output_text.trim(), 'echo: stream me');

  const calls = client.responses.stream({ model: MODEL, input: 'weather in Paris please', tools: [RESPONSES_WEATHER] });
  let args = '';
  for await (const event of calls) {
    if (event.type === 'response.function_call_arguments.delta') args += event.delta;
  }
  const withCall = await calls.finalResponse();
  assert.equal(withCall.output[0].type, 'function_call');
  assert.equal(args, withCall.output[0].arguments);
});

t('responses: background, polled, and cancel refused for a foreground one', { skip: noResponses }, async () => {
  let r = await client.responses.create({ model: MODEL, input: 'in the background', background: true });
  const deadline = Date.now() + 30_000;
  while (['queued', 'in_progress'].includes(r.status) && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    r = await client.responses.retrieve(r.id);
  }
  assert.equal(r.status, 'completed');
  assert.equal(r.output_text.trim(), 'echo: in the background');
  const fg = await client.responses.create({ model: MODEL, input: 'foreground' });
  await expectApiError(client.responses.cancel(fg.id), OpenAI.BadRequestError, 400);
});

t('responses: a background stream resumed from a sequence number', { skip: noResponses }, async () => {
  const stream = await client.responses.create({ model: MODEL, input: 'resume me', background: true, stream: true });
  const first = [];
  for await (const event of stream) first.push(event);
  assert.equal(first[0].type, 'response.created');
  assert.equal(first.at(-1).type, 'response.completed');
  const again = [];
  for await (const event of await client.responses.retrieve(first[0].response.id, { stream: true, starting_after: 2 })) {
    again.push(event);
  }
  assert.deepEqual(
    again.map((e) => [e.type, e.sequence_number]),
    first.slice(3).map((e) => [e.type, e.sequence_number]),
  );
});

const noCompact = typeof client.responses?.compact !== 'function' && `openai ${VERSION} has no responses.compact`;

t('responses: compact a history, then continue from it', { skip: noCompact }, async () => {
  const first = await client.responses.create({ model: MODEL, input: 'remember the number 42' });
  const compacted = await client.responses.compact({ model: MODEL, previous_response_id: first.id });
  assert.equal(compacted.object, 'response.compaction');
  assert.deepEqual(compacted.output.map((o) => o.type), ['message', 'compaction']);
  const next = await client.responses.create({
    model: MODEL,
    input: [...compacted.output, { role: 'user', content: 'go on' }],
  });
  assert.equal(next.output_text.trim(), 'echo: go on');
});

t('responses: streamed reasoning becomes a reasoning item', { skip: noResponses }, async () => {
  const stream = client.responses.stream({ model: MODEL, input: 'think: the sky' });
  let reasoning = '';
  for await (const event of stream) {
    if (event.type === 'response.reasoning_text.delta') reasoning += event.delta;
  }
  const final = await stream.finalResponse();
  assert.deepEqual(final.output.map((o) => o.type), ['reasoning', 'message']);
  assert.equal(reasoning.trim(), 'Thinking about the sky.');
  assert.equal(final.output[0].content[0].text, reasoning);
  assert.equal(final.output_text.trim(), 'echo: think: the sky');
});

// Remote MCP servers (the `mcp` tool): run.sh starts a fake MCP server (rmcp, streamable HTTP)
// and grants it; the fake upstream calls "mcp: NAME {json}".
const MCP_URL = process.env.ASSISTANTS_SDK_MCP_URL;
const noMcp =
  noResponses ||
  (!MCP_URL && 'ASSISTANTS_SDK_MCP_URL is not set (tests/sdk/run.sh starts and grants an MCP server)');
const mcpTool = (extra = {}) => ({ type: 'mcp', server_label: 'calc', server_url: MCP_URL, ...extra });

t('responses: an MCP server\'s tools listed and called, streamed', { skip: noMcp }, async () => {
  const stream = client.responses.stream({
    model: MODEL,
    input: 'mcp: add {"a": 2, "b": 3}',
    tools: [mcpTool({ require_approval: 'never', headers: { Authorization: 'Bearer sk-node-0123456789' } })],
  });
  const seen = [];
  let args = '';
  for await (const event of stream) {
    seen.push(event.type);
    if (event.type === 'response.mcp_call_arguments.delta') args += event.delta;
  }
  const final = await stream.finalResponse();
  for (const expected of [
    'response.mcp_list_tools.in_progress',
    'response.mcp_list_tools.completed',
    'response.mcp_call.in_progress',
    'response.mcp_call_arguments.done',
    'response.mcp_call.completed',
  ]) {
    assert.ok(seen.includes(expected), `${expected} in ${seen}`);
  }
  assert.deepEqual(JSON.parse(args), { a: 2, b: 3 });
  assert.deepEqual(final.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message']);
  assert.equal(final.output[1].output, '5');
  assert.equal(final.output_text.trim(), 'Tool said: 5');
  assert.ok(!JSON.stringify(final).includes('sk-node'));
});

t('responses: an MCP call approved in the next response', { skip: noMcp }, async () => {
  const tools = [mcpTool()];
  const first = await client.responses.create({ model: MODEL, input: 'mcp: delete_file {"path": "/tmp/node.txt"}', tools });
  assert.deepEqual(first.output.map((o) => o.type), ['mcp_list_tools', 'mcp_approval_request']);
  const request = first.output[1];
  const second = await client.responses.create({
    model: MODEL,
    previous_response_id: first.id,
    tools,
    input: [{ type: 'mcp_approval_response', approval_request_id: request.id, approve: true }],
  });
  assert.deepEqual(second.output.map((o) => o.type), ['mcp_call', 'message']);
  assert.equal(second.output[0].approval_request_id, request.id);
  assert.equal(second.output[0].output, 'deleted /tmp/node.txt');
});
