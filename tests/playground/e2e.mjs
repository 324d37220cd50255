// /playground end to end in the system's Chromium (playwright-core drives it; no browser is
// downloaded): a keyed server, a file uploaded with its progress, a vector store searched, an
// assistant created with file_search and a function tool, a streamed answer with a citation
// that opens the cited file, a function-tool round trip, the run-steps timeline, a plugin tool
// tried, a response, and the page at 360 px and in dark mode. Screenshots go to SHOTS.
//
// Usage: node e2e.mjs BASE_URL API_KEY SHOTS_DIR   (CHROMIUM: the browser, default
// /usr/bin/chromium). Prints `ok <check>` per check; exits non-zero on the first failure.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, key, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("response", (r) => r.status() >= 400 && r.status() !== 401 && problems.push(`HTTP ${r.status()} for ${r.url()}`));
// The first request is refused until the key is entered (401): the only failure expected.
page.on("console", (m) => m.type() === "error" && !/status of 401/.test(m.text()) && problems.push(`console: ${m.text()}`));

let current = "start";
function ok(name) {
  console.log(`ok   ${name}`);
}
async function check(name, fn) {
  current = name;
  await fn();
  ok(name);
}
async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}
async function ready(view) {
  await page.waitForSelector(`.view[data-view="${view}"][data-ready]`, { timeout: 30000 });
}
async function go(view) {
  await page.click(`nav a[href="#/${view}"]`);
  await ready(view);
}
/// Every form control and button on the page has an accessible name.
async function labelled(where) {
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea, button")]
      .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || (el.tagName === "BUTTON" && el.textContent.trim())))
      .map((el) => el.name || el.id || el.outerHTML.slice(0, 60)),
  );
  expect(unnamed.length === 0, `${where}: ${unnamed.join(", ")}`);
}

/// Records the lengths the streaming text under `selector` had, as the page showed them.
async function watchStreaming(selector = ".message.streaming .live") {
  await page.evaluate((selector) => {
    window.streamedLengths = [];
    window.streamWatch?.disconnect();
    window.streamWatch = new MutationObserver(() => {
      const live = document.querySelector(selector);
      if (live && live.textContent) window.streamedLengths.push(live.textContent.length);
    });
    window.streamWatch.observe(document.body, { subtree: true, childList: true, characterData: true });
  }, selector);
}
async function streamedInSteps(what) {
  const seen = await page.evaluate(() => window.streamedLengths);
  expect(new Set(seen).size >= 3, `${what} appeared at once: ${JSON.stringify(seen)}`);
}
function expect(cond, detail) {
  if (!cond) throw new Error(detail);
}

try {
  await check("a keyed server asks for the key", async () => {
    await page.goto(`${base}/playground`);
    await page.waitForSelector("#notice:not([hidden])");
    expect((await page.textContent("#notice")).includes("API key"), await page.textContent("#notice"));
    await shot("01-no-key");
  });

  await check("with the key, the assistants list loads", async () => {
    await page.fill("#api-key", key);
    await page.click("#key-form button");
    await ready("assistants");
    expect(await page.isHidden("#notice"), "the notice stays");
  });

  await check("every control has a label", async () => {
    for (const view of ["assistants", "files", "vector-stores", "plugins", "responses", "chat"]) {
      await go(view);
      await labelled(view);
    }
  });

  await check("a file uploads with its progress", async () => {
    await go("files");
    await page.setInputFiles("input[type=file]", {
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from(
        "Field notes. The zanzibarquokka is a small marsupial that eats mango peel near the harbor lighthouse.\n",
      ),
    });
    await page.click('form[aria-label="Upload a file"] button[type=submit]');
    await page.waitForSelector('td:text("notes.txt")');
    expect((await page.getAttribute("progress", "value")) === "1", "the progress bar is full");
    await shot("02-files");
  });

  await check("a vector store ingests the file and its search ranks chunks", async () => {
    await go("vector-stores");
    await page.fill('form[aria-label="New vector store"] input[name=name]', "notes");
    await page.selectOption("select[name=files]", { label: "notes.txt" });
    await page.click('form[aria-label="New vector store"] button');
    await page.waitForSelector("section[aria-label^='Vector store notes']");
    for (let i = 0; i < 60; i++) {
      const status = await page.textContent("section[aria-label^='Vector store notes'] p.muted");
      if (status.includes("1/1 ready")) break;
      await page.waitForTimeout(250);
      await page.click("text=Refresh status");
      await ready("vector-stores");
    }
    expect((await page.textContent("section[aria-label^='Vector store notes'] p.muted")).includes("1/1 ready"), "ingested");
    await page.fill("input[type=search]", "mango peel");
    await page.click("form[role=search] button");
    await page.waitForSelector(".results .result");
    const first = await page.textContent(".results .result");
    expect(first.includes("notes.txt") && first.includes("score"), first);
    await shot("03-vector-store-search");
  });

  await check("an assistant is created with file_search, the store and a function tool", async () => {
    await go("assistants");
    await page.click("text=New assistant");
    await labelled("the assistant form");
    const form = "form[aria-label='New assistant']";
    await page.fill(`${form} input[name=name]`, "Helper");
    await page.fill(`${form} input[name=model]`, "fake-model");
    await page.fill(`${form} textarea[name=instructions]`, "Answer briefly.");
    await page.check(`${form} input[name=tool-file_search]`);
    await page.fill(
      `${form} textarea[name=functions]`,
      JSON.stringify([{ name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }]),
    );
    await page.selectOption(`${form} select[name=vector_stores]`, { label: "notes" });
    await page.click(`${form} button[type=submit]`);
    await ready("assistants");
    const card = await page.textContent(".card:has(h3:text('Helper'))");
    expect(card.includes("file_search") && card.includes("function get_weather"), card);
    await shot("04-assistants");
  });

  await check("an answer streams in with a citation that opens the cited file", async () => {
    await page.click(".card:has(h3:text('Helper')) a:text('Chat')");
    await ready("chat");
    await watchStreaming();
    await page.fill("textarea[name=message]", "What does the zanzibarquokka eat?");
    await page.click("form.composer button[type=submit]");
    await page.waitForSelector(".message.assistant:not(.streaming) sup button.cite", { timeout: 30000 });
    const text = await page.textContent(".message.assistant:not(.streaming)");
    expect(text.includes("Found it"), text);
    await page.waitForSelector(".footnotes button:text('notes.txt')");
    await page.click(".footnotes button:text('notes.txt')");
    await page.waitForSelector("#file-dialog[open]");
    expect((await page.textContent("#file-dialog-body")).includes("zanzibarquokka"), "the file's content");
    await shot("05-citation");
    await page.click("#file-dialog button");
  });

  await check("the run-steps timeline shows the file_search call and its results", async () => {
    await page.waitForSelector(".steps .step:has-text('file_search')");
    const steps = await page.textContent(".steps");
    expect(steps.includes("notes.txt") && steps.includes("score"), steps);
  });

  await check("a function tool is answered in the page, and the answer streams in", async () => {
    await page.fill("textarea[name=message]", "What is the weather in Paris?");
    await page.click("form.composer button[type=submit]");
    await page.waitForSelector("form[aria-label='Function outputs']");
    expect((await page.textContent("form[aria-label='Function outputs']")).includes("get_weather"), "the call is shown");
    await labelled("the outputs form");
    expect(await page.isEnabled("text=Cancel run"), "a waiting run can be cancelled");
    expect(await page.isDisabled("form.composer button[type=submit]"), "no message while a run waits");
    await shot("06-requires-action");
    await page.fill("form[aria-label='Function outputs'] textarea", "20C and sunny");
    await watchStreaming();
    await page.click("form[aria-label='Function outputs'] button");
    await page.waitForSelector(".message.assistant:not(.streaming):has-text('Tool said: 20C and sunny')", { timeout: 30000 });
    // Streamed: the answer grew on the page, delta by delta, before the run ended.
    await streamedInSteps("the answer");
    expect(await page.isEnabled("form.composer button[type=submit]"), "the composer is free again");
    await page.waitForSelector(".steps .step:has-text('function get_weather')");
    const steps = await page.textContent(".steps");
    expect(steps.includes("Paris") && steps.includes("20C and sunny"), steps);
    await shot("07-run-steps");
  });

  await check("a plugin's tool is tried from its card", async () => {
    await go("plugins");
    const card = ".card[data-id=calculator]";
    await page.click(`${card} summary:has-text('calculate')`);
    await page.fill(`${card} textarea[name=args-calculate]`, '{"expression": "(2 + 3) * 4"}');
    await page.click(`${card} form button:has-text('Try calculate')`);
    await page.waitForSelector(`${card} pre[role=status]:text-is("20")`);
    await shot("08-plugins");
  });

  await check("a response streams in", async () => {
    await go("responses");
    const form = "form[aria-label='Create a response']";
    await page.fill(`${form} textarea[name=input]`, "hello playground");
    await watchStreaming("[aria-label='Response output'] .live");
    await page.click(`${form} button[type=submit]`);
    await page.waitForSelector(".live:text('echo: hello playground')");
    await streamedInSteps("the response");
    await shot("09-responses");
  });

  await check("dark mode", async () => {
    await page.click("#theme");
    expect((await page.getAttribute("html", "data-theme")) === "dark", "the theme switched");
    expect((await page.getAttribute("#theme", "aria-pressed")) === "true", "the toggle says so");
    await go("chat");
    await shot("10-dark");
  });

  await check("usable at 360 px wide", async () => {
    await page.setViewportSize({ width: 360, height: 800 });
    for (const view of ["assistants", "chat", "files", "vector-stores", "plugins", "responses"]) {
      await go(view);
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(wide <= 360, `${view} is ${wide} px wide`);
    }
    await go("chat");
    await shot("11-narrow-chat");
  });

  await check("the page holds to its own origin", async () => {
    const resp = await page.request.get(`${base}/playground`);
    const csp = resp.headers()["content-security-policy"] || "";
    expect(csp.includes("default-src 'none'") && csp.includes("connect-src 'self'"), csp);
  });

  expect(problems.length === 0, problems.join("\n"));
  ok("no script errors");
} catch (e) {
  console.log(`FAIL ${current}: ${e.message}`);
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
