// Opens page.html in headless Chromium (the system's, through playwright-core: no browser
// download) for each page of the plan and prints what the SDK on it answered, the requests
// the page made and its console, as one JSON object (tests/e2e/test_revenuecat_sdk.py).
import { chromium } from "playwright-core";

const plan = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: plan.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const out = {};
try {
  for (const { name, url } of plan.pages) {
    const page = await browser.newPage();
    const requested = [];
    const logged = [];
    page.on("request", (r) => requested.push(`${r.method()} ${r.url()}`));
    page.on("console", (m) => logged.push(m.text()));
    page.on("pageerror", (e) => logged.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => window.sdkResult !== undefined, null, { timeout: 20000 });
    out[name] = { result: await page.evaluate(() => window.sdkResult), requested, logged };
    await page.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
