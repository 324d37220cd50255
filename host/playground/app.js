// The playground: a single page over the server's own API (same origin, `/v1`), with no build
// step and nothing fetched from elsewhere. Every value from the API reaches the page through
// `textContent` or attributes, never as HTML.

const KEY = "assistants.playground.key";
const THREADS = "assistants.playground.threads";

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function headers(json = true) {
  const h = { "OpenAI-Beta": "assistants=v2" };
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = `Bearer ${key}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(method, path, body) {
  const resp = await fetch(`/v1${path}`, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: { message: text } };
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/// Every page of a list endpoint.
async function listAll(path, max = 500) {
  const out = [];
  let after = null;
  while (out.length < max) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=100${after ? `&after=${after}` : ""}`);
    out.push(...page.data);
    if (!page.has_more || !page.data.length) break;
    after = page.last_id || page.data[page.data.length - 1].id;
  }
  return out;
}

/// POSTs `body` and reads the answer as server-sent events, calling `onEvent(name, data)` for
/// each; resolves when the stream ends.
async function stream(path, body, onEvent, signal) {
  const resp = await fetch(`/v1${path}`, {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!resp.ok) {
    let data = null;
    try {
      data = await resp.json();
    } catch {}
    throw new ApiError(resp.status, data);
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      const text = data.join("\n");
      if (text === "[DONE]") continue;
      let parsed = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      onEvent(name, parsed);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Building the page
// ---------------------------------------------------------------------------------------------

/// `h("button", {class: "x", onclick}, "text", child)`: an element with attributes (functions
/// become listeners) and children (strings become text nodes).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let fieldIds = 0;
/// A labelled control: `field("Name", input)`.
function field(label, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", {}, hint) : null);
}

function notice(message) {
  const el = document.getElementById("notice");
  el.textContent = message || "";
  el.hidden = !message;
}

function shown(e) {
  if (e instanceof ApiError && e.status === 401) {
    return `${e.message} Enter an API key above.`;
  }
  return e.message || String(e);
}

/// Runs `fn`, showing its error instead of throwing.
async function guarded(fn) {
  try {
    notice("");
    return await fn();
  } catch (e) {
    notice(shown(e));
    return undefined;
  }
}

/// An image the API holds as a file: fetched with the key (an <img src> would go without it)
/// and shown from a blob URL.
function fileImage(fileId, alt) {
  const img = h("img", { alt: alt || `image ${fileId}`, class: "figure" });
  fetch(`/v1/files/${fileId}/content`, { headers: headers(false) })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((b) => {
      const url = URL.createObjectURL(b);
      img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
      img.src = url;
    })
    .catch(() => img.replaceWith(h("span", { class: "muted" }, `[image ${fileId} unavailable]`)));
  return img;
}

/// An id for a URL path: what the API or the page's own URL gave, encoded either way.
function seg(id) {
  return encodeURIComponent(id);
}

function json(v) {
  return JSON.stringify(v, null, 2);
}

function when(t) {
  return t ? new Date(t * 1000).toLocaleString() : "";
}

// ---------------------------------------------------------------------------------------------
// Assistants
// ---------------------------------------------------------------------------------------------

async function pluginsByKind() {
  const all = (await api("GET", "/plugins")).data;
  return {
    tools: all.filter((p) => p.kind === "tool" || p.kind === "retrieval-tool").filter((p) => p.id !== "mcp"),
    strategies: all.filter((p) => p.kind === "strategy"),
    all,
  };
}

async function assistantsView(view) {
  const list = h("ul", { class: "cards", "aria-label": "Assistants" });
  const formArea = h("section", { "aria-label": "Assistant form" });
  view.append(
    h("div", { class: "bar" }, h("h2", {}, "Assistants"), h("button", { onclick: () => edit(null) }, "New assistant")),
    formArea,
    list,
  );
  const [assistants, plugins, stores, files] = await Promise.all([
    listAll("/assistants?order=desc"),
    pluginsByKind(),
    listAll("/vector_stores"),
    listAll("/files"),
  ]);
  for (const a of assistants) {
    list.append(
      h(
        "li",
        { class: "card", "data-id": a.id },
        h("h3", {}, a.name || "(unnamed)"),
        h("p", { class: "muted" }, `${a.model} · ${a.id}`),
        h("p", {}, (a.tools || []).map((t) => t.type === "function" ? `function ${t.function.name}` : t.type).join(", ") || "no tools"),
        h(
          "div",
          { class: "row" },
          h("button", { onclick: () => edit(a), "aria-label": `Edit ${a.name || a.id}` }, "Edit"),
          h("a", { class: "button", href: `#/chat?assistant=${seg(a.id)}`, "aria-label": `Chat with ${a.name || a.id}` }, "Chat"),
          h("button", {
            class: "danger",
            "aria-label": `Delete ${a.name || a.id}`,
            onclick: () =>
              guarded(async () => {
                if (!confirm(`Delete ${a.name || a.id}?`)) return;
                await api("DELETE", `/assistants/${seg(a.id)}`);
                render();
              }),
          }, "Delete"),
        ),
      ),
    );
  }
  if (!assistants.length) list.append(h("li", { class: "muted" }, "No assistants yet."));

  function edit(a) {
    formArea.replaceChildren(assistantForm(a, plugins, stores, files));
    formArea.querySelector("input")?.focus();
  }
}

function assistantForm(a, plugins, stores, files) {
  const tools = a?.tools || [];
  const has = (type) => tools.some((t) => t.type === type);
  const name = h("input", { value: a?.name || "", name: "name" });
  const model = h("input", { value: a?.model || "gpt-4o-mini", name: "model", required: true });
  const instructions = h("textarea", { name: "instructions", rows: 3 });
  instructions.value = a?.instructions || "";
  const builtin = ["file_search", "code_interpreter"].map((type) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: `tool-${type}`, value: type, checked: has(type) }), type),
  );
  const pluginChecks = plugins.tools.map((p) =>
    h("label", { class: "check", title: p.description }, h("input", { type: "checkbox", name: `tool-${p.id}`, value: p.id, checked: has(p.id) }), p.id),
  );
  const functions = h("textarea", { name: "functions", rows: 4, spellcheck: "false" });
  functions.value = json(tools.filter((t) => t.type === "function").map((t) => t.function));
  const strategy = h("select", { name: "strategy" }, h("option", { value: "" }, "server default"),
    plugins.strategies.map((s) => h("option", { value: s.id, selected: a?.metadata?.strategy === s.id }, s.id)));
  const current = new Set(a?.tool_resources?.file_search?.vector_store_ids || []);
  const storeSelect = h("select", { name: "vector_stores", multiple: true, size: Math.min(4, Math.max(2, stores.length)) },
    stores.map((s) => h("option", { value: s.id, selected: current.has(s.id) }, s.name || s.id)));
  const codeFiles = new Set(a?.tool_resources?.code_interpreter?.file_ids || []);
  const fileSelect = h("select", { name: "code_files", multiple: true, size: Math.min(4, Math.max(2, files.length)) },
    files.map((f) => h("option", { value: f.id, selected: codeFiles.has(f.id) }, f.filename)));
  const temperature = h("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1, value: a?.temperature ?? 1 });
  const formatNow = a?.response_format?.type || a?.response_format || "auto";
  const formats = ["auto", "json_object", ...(formatNow === "json_schema" ? ["json_schema"] : [])];
  const format = h("select", { name: "response_format" },
    formats.map((f) => h("option", { value: f, selected: formatNow === f }, f === "json_schema" ? "json_schema (as set)" : f)));
  const status = h("p", { role: "status" });
  const form = h(
    "form",
    { class: "panel", "aria-label": a ? `Edit ${a.name || a.id}` : "New assistant" },
    h("h3", {}, a ? `Edit ${a.name || a.id}` : "New assistant"),
    field("Name", name),
    field("Model", model),
    field("Instructions", instructions),
    h("fieldset", {}, h("legend", {}, "Tools"), builtin, pluginChecks),
    field("Function tools (JSON array of function definitions)", functions),
    field("Strategy", strategy),
    field("Vector stores for file_search", storeSelect),
    field("Files for code_interpreter", fileSelect),
    field("Temperature", temperature),
    field("Response format", format),
    h("div", { class: "row" }, h("button", { type: "submit" }, a ? "Save" : "Create"), status),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      let fns;
      try {
        fns = JSON.parse(functions.value || "[]");
        if (!Array.isArray(fns)) throw new Error();
      } catch {
        throw new Error("Function tools must be a JSON array of function definitions.");
      }
      // A checked tool keeps the options it had (file_search's ranking, …); tools this form
      // does not show (remote MCP servers) stay as they were.
      const shownTypes = new Set(["function", "file_search", "code_interpreter", ...plugins.tools.map((p) => p.id)]);
      const chosen = [...form.querySelectorAll("fieldset input:checked")].map((i) => tools.find((t) => t.type === i.value) || { type: i.value });
      const kept = tools.filter((t) => !shownTypes.has(t.type));
      const body = {
        name: name.value || null,
        model: model.value,
        instructions: instructions.value || null,
        tools: [...chosen, ...kept, ...fns.map((f) => ({ type: "function", function: f }))],
        tool_resources: {
          file_search: { vector_store_ids: [...storeSelect.selectedOptions].map((o) => o.value) },
          code_interpreter: { file_ids: [...fileSelect.selectedOptions].map((o) => o.value) },
        },
        temperature: temperature.value === "" ? undefined : Number(temperature.value),
        response_format: format.value === "auto" ? "auto" : format.value === "json_schema" ? a.response_format : { type: format.value },
        metadata: { ...(a?.metadata || {}), ...(strategy.value ? { strategy: strategy.value } : {}) },
      };
      if (!strategy.value) delete body.metadata.strategy;
      await api("POST", a ? `/assistants/${seg(a.id)}` : "/assistants", body);
      render();
    });
  });
  return form;
}

// ---------------------------------------------------------------------------------------------
// Threads: chat, streaming, function tools, run steps, citations
// ---------------------------------------------------------------------------------------------

function knownThreads() {
  try {
    return JSON.parse(sessionStorage.getItem(THREADS) || "[]");
  } catch {
    return [];
  }
}

function rememberThread(id) {
  const list = knownThreads().filter((t) => t !== id);
  list.unshift(id);
  sessionStorage.setItem(THREADS, JSON.stringify(list.slice(0, 50)));
}

async function chatView(view, params) {
  const assistants = await listAll("/assistants?order=desc");
  const pick = h("select", { name: "assistant" }, assistants.map((a) =>
    h("option", { value: a.id, selected: params.get("assistant") === a.id }, a.name || a.id)));
  // The thread asked for, else (unless an assistant was picked to start with) the last one.
  const wanted = params.get("thread") || (params.get("assistant") ? null : knownThreads()[0]);
  const threadPick = h("select", { name: "thread" }, h("option", { value: "" }, "a new thread"),
    knownThreads().map((t) => h("option", { value: t, selected: wanted === t }, t)));
  const messages = h("ol", { class: "messages", "aria-label": "Messages" });
  const announce = h("p", { class: "visually-hidden", role: "status" });
  const steps = h("ol", { class: "steps", "aria-label": "Run steps" });
  const actions = h("div", { class: "actions" });
  const input = h("textarea", { name: "message", rows: 2, placeholder: "Message…" });
  const send = h("button", { type: "submit" }, "Send");
  const cancel = h("button", { type: "button", class: "danger", disabled: true }, "Cancel run");
  const composer = h("form", { class: "composer", "aria-label": "Send a message" }, field("Message", input), h("div", { class: "row" }, send, cancel));
  const footnotes = h("ol", { class: "footnotes", "aria-label": "Citations" });
  view.append(
    h("h2", {}, "Threads"),
    assistants.length ? "" : h("p", { class: "muted" }, "Create an assistant first."),
    h("div", { class: "row" }, field("Assistant", pick), field("Thread", threadPick)),
    h("div", { class: "chat" },
      h("section", { class: "conversation", "aria-label": "Conversation" }, messages, footnotes, actions, composer, announce),
      h("section", { class: "timeline", "aria-label": "Run steps timeline" }, h("h3", {}, "Run steps"), steps)),
  );

  let thread = threadPick.value || null;
  let run = null;
  let following = 0;
  threadPick.addEventListener("change", () => {
    thread = threadPick.value || null;
    run = null;
    actions.replaceChildren();
    steps.replaceChildren();
    showMessages();
    resume();
  });

  /// The controls as the run's status allows: one run at a time per thread, so while one is
  /// active the thread cannot change and no message is sent; it can be cancelled.
  function runState(status) {
    const active = ["queued", "in_progress", "requires_action", "cancelling"].includes(status);
    send.disabled = active;
    threadPick.disabled = active;
    pick.disabled = active;
    cancel.disabled = !active || status === "cancelling";
  }

  /// Picks up the thread's latest run where it is: waiting for outputs (the form again) or
  /// still running (followed by polling until it ends).
  async function resume() {
    runState(null);
    if (!thread) return;
    const latest = (await api("GET", `/threads/${seg(thread)}/runs?limit=1`)).data[0];
    if (!latest) return;
    run = latest.id;
    runState(latest.status);
    showSteps();
    if (latest.status === "requires_action") {
      askForOutputs(latest);
      return;
    }
    const mine = following;
    let current = latest;
    while (["queued", "in_progress", "cancelling"].includes(current.status) && mine === following && document.contains(view)) {
      await new Promise((r) => setTimeout(r, 1000));
      current = await api("GET", `/threads/${seg(thread)}/runs/${seg(run)}`);
      runState(current.status);
    }
    if (mine === following) {
      showMessages();
      showSteps();
    }
  }

  let listed = 0;
  async function showMessages() {
    const mine = ++listed;
    const all = thread ? await listAll(`/threads/${seg(thread)}/messages?order=asc`) : [];
    if (mine !== listed) return;
    footnotes.replaceChildren();
    messages.replaceChildren(...all.map(messageItem));
  }

  function messageItem(m) {
    const body = h("div", { class: "content" });
    for (const part of m.content || []) {
      if (part.type === "text") body.append(annotated(part.text));
      else if (part.type === "image_file") body.append(fileImage(part.image_file.file_id, "a figure from the code interpreter"));
    }
    return h("li", { class: `message ${m.role}`, "data-id": m.id }, h("strong", {}, m.role), body);
  }

  /// Text whose citation labels become numbered links to footnotes that open the cited file.
  function annotated(text) {
    const p = h("p", {});
    const anns = [...(text.annotations || [])].sort((x, y) => x.start_index - y.start_index);
    let at = 0;
    const value = text.value || "";
    for (const ann of anns) {
      p.append(value.slice(at, ann.start_index));
      const n = footnotes.children.length + 1;
      const target = ann.file_citation?.file_id || ann.file_path?.file_id;
      const url = ann.url ?? ann.url_citation?.url;
      const title = ann.title ?? ann.url_citation?.title;
      const note = h("li", { tabindex: -1 });
      // A button, not a `#` link: the page's routes live in the hash.
      const link = h("button", { type: "button", class: "link cite", "aria-label": `citation ${n}`,
        onclick: () => note.focus() }, `[${n}]`);
      p.append(h("sup", {}, link));
      if (target) {
        note.append(h("button", { type: "button", class: "link", onclick: () => openFile(target) }, `file ${target}`));
        api("GET", `/files/${seg(target)}`).then((f) => {
          note.querySelector("button").textContent = f.filename;
        }).catch(() => {});
      } else if (url && /^https?:\/\//i.test(url)) {
        note.append(h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, title || url));
      } else {
        note.append(ann.text);
      }
      footnotes.append(note);
      at = ann.end_index;
    }
    p.append(value.slice(at));
    return p;
  }

  // Step events come in bursts: only the newest refresh draws.
  let drawn = 0;
  async function showSteps() {
    const mine = ++drawn;
    if (!thread || !run) {
      steps.replaceChildren();
      return;
    }
    const all = await listAll(`/threads/${seg(thread)}/runs/${seg(run)}/steps?order=asc&include[]=step_details.tool_calls[*].file_search.results[*].content`);
    if (mine === drawn) steps.replaceChildren(...all.map(stepItem));
  }

  function stepItem(s) {
    const d = s.step_details || {};
    const li = h("li", { class: `step ${s.status}` }, h("strong", {}, `${d.type === "tool_calls" ? "Tool calls" : "Message"} · ${s.status}`));
    for (const c of d.tool_calls || []) {
      if (c.type === "function") {
        li.append(h("div", { class: "call" },
          h("p", {}, `function ${c.function.name}${c.mcp ? ` (MCP ${c.mcp.server_label})` : ""}`),
          h("pre", { "aria-label": "arguments" }, c.function.arguments),
          c.function.output != null ? h("pre", { "aria-label": "output" }, c.function.output) : null));
      } else if (c.type === "file_search") {
        const results = c.file_search?.results || [];
        li.append(h("div", { class: "call" }, h("p", {}, `file_search · ${results.length} results`),
          h("ol", {}, results.map((r) => h("li", {}, `${r.file_name} — score ${Number(r.score).toFixed(3)}`)))));
      } else if (c.type === "code_interpreter") {
        const ci = c.code_interpreter || {};
        li.append(h("div", { class: "call" }, h("p", {}, "code_interpreter"), h("pre", { "aria-label": "input" }, ci.input || ""),
          (ci.outputs || []).map((o) => o.type === "logs" ? h("pre", { "aria-label": "logs" }, o.logs) : fileImage(o.image?.file_id, "a figure the code drew"))));
      }
    }
    return li;
  }

  async function openFile(id) {
    await guarded(async () => {
      const f = await api("GET", `/files/${seg(id)}`);
      const resp = await fetch(`/v1/files/${seg(id)}/content`, { headers: headers(false) });
      const text = await resp.text();
      document.getElementById("file-dialog-title").textContent = f.filename;
      document.getElementById("file-dialog-body").textContent = text.slice(0, 100000);
      document.getElementById("file-dialog").showModal();
    });
  }

  /// Follows a run's stream on `on` (the thread it belongs to): text deltas shown as they come,
  /// tool calls asked of the page.
  async function follow(on, path, body) {
    const mine = ++following;
    let live = null;
    let status = "queued";
    runState(status);
    announce.textContent = "The assistant is answering…";
    try {
      await stream(path, body, (name, data) => {
        if (mine !== following || on !== thread) return;
        if (name.startsWith("thread.run.") && !name.startsWith("thread.run.step.") && data?.status) {
          run = data.id;
          status = data.status;
          runState(status);
        }
        if (name === "thread.message.created") {
          live = h("p", { class: "live" });
          messages.append(h("li", { class: "message assistant streaming", "aria-busy": "true" }, h("strong", {}, "assistant"), h("div", { class: "content" }, live)));
        } else if (name === "thread.message.delta") {
          for (const part of data.delta?.content || []) {
            if (part.type === "text" && part.text?.value && live) live.append(part.text.value);
          }
        } else if (name.startsWith("thread.run.step.")) {
          if (name !== "thread.run.step.delta") showSteps();
        } else if (name === "thread.run.requires_action") {
          announce.textContent = "The run needs your function outputs.";
          askForOutputs(data);
        } else if (["thread.run.completed", "thread.run.failed", "thread.run.cancelled", "thread.run.expired", "thread.run.incomplete"].includes(name)) {
          announce.textContent = `The run ${data.status}.`;
          if (data.last_error) notice(`Run ${data.status}: ${data.last_error.message}`);
          showMessages();
          showSteps();
        } else if (name === "error") {
          notice(data?.error?.message ?? data?.message ?? "The stream failed.");
        }
      });
    } finally {
      if (mine === following) runState(status);
    }
  }

  function askForOutputs(r) {
    const calls = r.required_action?.submit_tool_outputs?.tool_calls || [];
    const outputs = calls.map((c) => h("textarea", { rows: 2, name: `output-${c.id}` }));
    const form = h("form", { class: "panel", "aria-label": "Function outputs" },
      h("h3", {}, "The run needs your function outputs"),
      calls.map((c, i) => h("div", {}, h("p", {}, `${c.function.name}(${c.function.arguments})`), field(`Output of ${c.function.name}`, outputs[i]))),
      h("button", { type: "submit" }, "Submit outputs"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const tool_outputs = calls.map((c, i) => ({ tool_call_id: c.id, output: outputs[i].value }));
      actions.replaceChildren();
      input.focus();
      guarded(() => follow(thread, `/threads/${seg(thread)}/runs/${seg(r.id)}/submit_tool_outputs`, { tool_outputs }));
    });
    actions.replaceChildren(form);
    outputs[0]?.focus();
  }

  composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content || !pick.value || send.disabled) return;
    // Off at once: a second click must not make a second thread or message.
    runState("queued");
    guarded(async () => {
      try {
        if (!thread) {
          thread = (await api("POST", "/threads", {})).id;
          rememberThread(thread);
          threadPick.append(h("option", { value: thread, selected: true }, thread));
        }
        await api("POST", `/threads/${seg(thread)}/messages`, { role: "user", content });
      } catch (e) {
        runState(null);
        throw e;
      }
      input.value = "";
      await showMessages();
      await follow(thread, `/threads/${seg(thread)}/runs`, { assistant_id: pick.value });
    });
  });
  cancel.addEventListener("click", () =>
    guarded(async () => {
      if (run) runState((await api("POST", `/threads/${seg(thread)}/runs/${seg(run)}/cancel`)).status);
    }));
  await showMessages();
  await resume();
}

// ---------------------------------------------------------------------------------------------
// Files and vector stores
// ---------------------------------------------------------------------------------------------

function upload(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/files");
    const key = sessionStorage.getItem(KEY);
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {}
      if (xhr.status === 200) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new Error("The upload failed."));
    xhr.send(form);
  });
}

async function filesView(view) {
  const chooser = h("input", { type: "file", name: "file" });
  const purpose = h("select", { name: "purpose" }, ["assistants", "user_data", "vision"].map((p) => h("option", { value: p }, p)));
  const progress = h("progress", { max: 1, value: 0, "aria-label": "Upload progress" });
  const list = h("table", { class: "table" });
  const form = h("form", { class: "panel", "aria-label": "Upload a file" }, field("File", chooser), field("Purpose", purpose),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Upload"), progress));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = chooser.files[0];
    if (!file) return;
    guarded(async () => {
      progress.value = 0;
      await upload(file, purpose.value, (f) => (progress.value = f));
      progress.value = 1;
      chooser.value = "";
      await refresh();
    });
  });
  view.append(h("h2", {}, "Files"), form, list);

  async function refresh() {
    const files = await listAll("/files");
    list.replaceChildren(
      h("thead", {}, h("tr", {}, ["Name", "Id", "Bytes", "Purpose", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, files.map((f) => h("tr", { "data-id": f.id },
        h("td", {}, f.filename), h("td", {}, f.id), h("td", {}, f.bytes), h("td", {}, f.purpose),
        h("td", {}, h("button", { class: "danger", "aria-label": `Delete ${f.filename}`, onclick: () => guarded(async () => {
          await api("DELETE", `/files/${seg(f.id)}`);
          await refresh();
        }) }, "Delete"))))),
    );
  }
  await refresh();
}

async function vectorStoresView(view, params) {
  const [stores, files] = await Promise.all([listAll("/vector_stores"), listAll("/files")]);
  const name = h("input", { name: "name" });
  const fileSelect = h("select", { name: "files", multiple: true, size: Math.min(5, Math.max(2, files.length)) },
    files.filter((f) => f.purpose === "assistants").map((f) => h("option", { value: f.id }, f.filename)));
  const form = h("form", { class: "panel", "aria-label": "New vector store" }, field("Name", name), field("Files", fileSelect),
    h("button", { type: "submit" }, "Create vector store"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const vs = await api("POST", "/vector_stores", { name: name.value || null, file_ids: [...fileSelect.selectedOptions].map((o) => o.value) });
      location.hash = `#/vector-stores?store=${vs.id}`;
    });
  });
  const list = h("ul", { class: "cards", "aria-label": "Vector stores" }, stores.map((s) =>
    h("li", { class: "card", "data-id": s.id }, h("h3", {}, h("a", { href: `#/vector-stores?store=${s.id}` }, s.name || s.id)),
      h("p", { class: "muted" }, `${s.status} · ${s.file_counts.completed}/${s.file_counts.total} files ready`))));
  view.append(h("h2", {}, "Vector stores"), form, list);
  const open = params.get("store");
  if (open) view.append(await storeDetail(open));
}

async function storeDetail(id) {
  const vs = await api("GET", `/vector_stores/${seg(id)}`);
  const files = await listAll(`/vector_stores/${seg(id)}/files`);
  const query = h("input", { type: "search", name: "query" });
  const results = h("ol", { class: "results", "aria-label": "Search results" });
  const status = h("ul", { "aria-label": "Ingestion status" }, files.map((f) =>
    h("li", {}, `${f.id}: ${f.status}${f.last_error ? ` (${f.last_error.message})` : ""}`)));
  const search = h("form", { role: "search", "aria-label": "Search this store" }, field("Search", query), h("button", { type: "submit" }, "Search"));
  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const found = await api("POST", `/vector_stores/${seg(id)}/search`, { query: query.value, max_num_results: 10 });
      results.replaceChildren(...found.data.map((r) => h("li", { class: "result" },
        h("p", {}, h("strong", {}, r.filename), ` — score ${Number(r.score).toFixed(3)}`),
        h("pre", {}, (r.content || []).map((c) => c.text).join("\n")))));
      if (!found.data.length) results.append(h("li", { class: "muted" }, "No results."));
    });
  });
  const refresh = h("button", { type: "button", onclick: () => render() }, "Refresh status");
  return h("section", { class: "panel", "aria-label": `Vector store ${vs.name || vs.id}` },
    h("h3", {}, vs.name || vs.id), h("p", { class: "muted" }, `${vs.id} · ${vs.status} · ${vs.file_counts.completed}/${vs.file_counts.total} ready`),
    status, refresh, search, results);
}

// ---------------------------------------------------------------------------------------------
// Plugins
// ---------------------------------------------------------------------------------------------

async function mcp(method, params) {
  const resp = await fetch("/mcp", {
    method: "POST",
    headers: { ...headers(), Accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await resp.json();
  if (!resp.ok) throw new ApiError(resp.status, body);
  if (body.error) throw new Error(body.error.message);
  return body.result;
}

async function pluginsView(view) {
  const plugins = (await api("GET", "/plugins")).data;
  let offered = [];
  try {
    offered = (await mcp("tools/list", {})).tools;
  } catch {}
  view.append(h("h2", {}, "Plugins"));
  const list = h("ul", { class: "cards wide", "aria-label": "Plugins" });
  for (const p of plugins) {
    const card = h("li", { class: "card", "data-id": p.id }, h("h3", {}, p.id), h("p", { class: "muted" },
      [p.kind || p.object, p.version, p.builtin ? "built-in" : null, p.status].filter(Boolean).join(" · ")), h("p", {}, p.description || ""));
    if (p.update_refused) card.append(h("p", { class: "warn" }, `Update refused: ${p.update_refused}`));
    if (p.limits) card.append(h("details", {}, h("summary", {}, "Limits"), h("pre", {}, json(p.limits))));
    for (const t of p.tools || []) {
      const args = h("textarea", { rows: 3, spellcheck: "false", name: `args-${t.name}` });
      args.value = "{}";
      const out = h("pre", { "aria-label": `Result of ${t.name}`, role: "status" });
      // /mcp names a tool as a run offering them all would: its own name, or
      // `<plugin>__<tool>` where two plugins share it.
      const name = (offered.find((o) => o.name === `${p.id}__${t.name}`) || offered.find((o) => o.name === t.name))?.name;
      const tryForm = name
        ? h("form", { "aria-label": `Try ${t.name}` }, field(`Arguments for ${t.name} (JSON)`, args), h("button", { type: "submit" }, `Try ${t.name}`), out)
        : null;
      tryForm?.addEventListener("submit", (ev) => {
        ev.preventDefault();
        guarded(async () => {
          const result = await mcp("tools/call", { name, arguments: JSON.parse(args.value || "{}") });
          out.textContent = (result.content || []).map((c) => c.text).join("\n") + (result.isError ? "\n(error)" : "");
        });
      });
      card.append(h("details", {}, h("summary", {}, `${t.name} — ${t.description}`), h("pre", {}, json(t.parameters)), tryForm));
    }
    list.append(card);
  }
  view.append(list);
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

async function responsesView(view) {
  const model = h("input", { name: "model", value: "gpt-4o-mini" });
  const input = h("textarea", { name: "input", rows: 3 });
  const instructions = h("input", { name: "instructions" });
  const output = h("div", { class: "panel", "aria-label": "Response output" });
  const announce = h("p", { class: "visually-hidden", role: "status" });
  const items = h("pre", { "aria-label": "Output items" });
  let previous = null;
  const form = h("form", { class: "panel", "aria-label": "Create a response" }, field("Model", model), field("Instructions", instructions),
    field("Input", input), h("button", { type: "submit" }, "Send"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const text = h("p", { class: "live" });
      output.replaceChildren(text);
      await stream("/responses", { model: model.value, input: input.value, instructions: instructions.value || undefined, previous_response_id: previous || undefined },
        (name, data) => {
          if (name === "response.output_text.delta") text.append(data.delta);
          else if (name === "response.completed" || name === "response.failed" || name === "response.incomplete") {
            announce.textContent = `The response ${data.response.status}.`;
            previous = data.response.id;
            items.textContent = json(data.response.output);
            if (data.response.error) notice(data.response.error.message);
          }
        });
    });
  });
  view.append(h("h2", {}, "Responses"), form, output, announce, h("details", {}, h("summary", {}, "Output items"), items));
}

// ---------------------------------------------------------------------------------------------
// Shell: routing, key, theme
// ---------------------------------------------------------------------------------------------

const VIEWS = {
  assistants: assistantsView,
  chat: chatView,
  files: filesView,
  "vector-stores": vectorStoresView,
  plugins: pluginsView,
  responses: responsesView,
};

let rendering = 0;
async function render() {
  const [route, query] = (location.hash.replace(/^#\/?/, "") || "assistants").split("?");
  const viewFn = VIEWS[route] || assistantsView;
  const view = document.getElementById("view");
  const mine = ++rendering;
  const fresh = h("div", { class: "view", "data-view": route });
  view.replaceChildren(fresh);
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#/${route}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  await guarded(() => viewFn(fresh, new URLSearchParams(query || "")));
  if (mine === rendering) {
    fresh.setAttribute("data-ready", "");
    // After a route change or a re-render that removed the focused control, focus goes to
    // the view's heading, so keyboard and screen-reader users stay in the page.
    const heading = fresh.querySelector("h2");
    const active = document.activeElement;
    if (heading && (!active || active === document.body || active.closest("nav"))) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }
}

function setTheme(dark) {
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  document.getElementById("theme").setAttribute("aria-pressed", String(dark));
  localStorage.setItem("assistants.playground.theme", dark ? "dark" : "light");
}

window.addEventListener("hashchange", render);
document.addEventListener("DOMContentLoaded", () => {
  const stored = localStorage.getItem("assistants.playground.theme");
  setTheme(stored ? stored === "dark" : matchMedia("(prefers-color-scheme: dark)").matches);
  document.getElementById("theme").addEventListener("click", () => setTheme(document.documentElement.dataset.theme !== "dark"));
  const keyInput = document.getElementById("api-key");
  keyInput.value = sessionStorage.getItem(KEY) || "";
  document.getElementById("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (keyInput.value) sessionStorage.setItem(KEY, keyInput.value.trim());
    else sessionStorage.removeItem(KEY);
    render();
  });
  render();
});
