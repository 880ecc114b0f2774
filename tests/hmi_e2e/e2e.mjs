// End-to-end walk through the linectl operator HMI in headless Chromium, started by
// tests/hmi_e2e.rs with the HMI in front of a real-time simulated line:
//   node e2e.mjs <base-url> <screenshot-dir> <password> <case-sscc>
// Logs in as the operator, resets the line and starts a batch, sees the counts rise,
// logs in as the supervisor, resolves an exception with a reason, finds the resolution
// in the audit trail, opens a case for rework at the aggregation page, and saves a
// screenshot of every page. Prints one JSON line with
// what it saw; exits non-zero (with the reason) on any failure.
import { chromium } from 'playwright-core';

const [base, shots, pw, caseSscc] = process.argv.slice(2);
if (!base || !shots || !pw || !caseSscc) {
  console.error('usage: node e2e.mjs <base-url> <screenshot-dir> <password> <case-sscc>');
  process.exit(2);
}
const REASON = 'e2e: carton re-inspected, code re-printed';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seen = {};

async function login(page, user) {
  await page.goto(base + '/login');
  await page.fill('#user', user);
  await page.fill('#password', pw);
  await Promise.all([page.waitForNavigation(), page.click('#login')]);
  if (!page.url().endsWith('/')) throw new Error(`login as ${user} failed: ${page.url()}`);
}

async function logout(page) {
  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
}

async function num(page, sel) {
  return Number((await page.textContent(sel)).trim());
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(base + '/login');
  await page.screenshot({ path: `${shots}/login.png`, fullPage: true });
  await login(page, 'op');

  // Batch setup: wait for the devices, reset, start a batch by hand.
  let started = false;
  for (let i = 0; i < 60 && !started; i++) {
    await page.goto(base + '/batch');
    const checks = await page.textContent('#checks');
    if (checks.includes('✘ PLC')) { await sleep(1000); continue; }
    if (!checks.includes('✔ line is Idle')) {
      await Promise.all([page.waitForNavigation(), page.click('#cmd-reset')]);
      continue;
    }
    await page.screenshot({ path: `${shots}/batch.png`, fullPage: true });
    await page.fill('#lot', 'E2E-LOT-1');
    await page.fill('#expiry', '301231');
    await page.fill('#quantity', '100000');
    await Promise.all([page.waitForNavigation(), page.click('#start')]);
    const err = await page.$('#error');
    if (err) { seen.start_error = await err.textContent(); await sleep(1000); continue; }
    started = true;
  }
  if (!started) throw new Error(`batch not started: ${seen.start_error}`);

  // Overview: the counts rise (live over SSE, no reload).
  await page.goto(base + '/');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'Execute', null, { timeout: 60000 });
  await page.waitForFunction(() => Number(document.getElementById('passed').textContent) >= 3, null, { timeout: 120000 });
  seen.inspected_first = await num(page, '#inspected');
  const first = await num(page, '#passed');
  await page.waitForFunction((n) => Number(document.getElementById('passed').textContent) > n + 3, first, { timeout: 120000 });
  seen.passed_first = first;
  seen.passed_later = await num(page, '#passed');
  seen.inspected_later = await num(page, '#inspected');
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // The operator may not resolve exceptions: a supervisor does.
  await logout(page);
  await login(page, 'sup');
  let form = null;
  for (let i = 0; i < 120 && !form; i++) {
    await page.goto(base + '/exceptions');
    form = await page.$('form.resolve');
    if (!form) await sleep(1000);
  }
  if (!form) throw new Error('no exception to resolve within two minutes');
  await page.screenshot({ path: `${shots}/exceptions.png`, fullPage: true });
  const action = await form.getAttribute('action');
  seen.exception = Number(action.split('/')[2]);
  const reason = await form.$('textarea[name=reason]');
  await reason.fill(REASON);
  const button = await form.$('button[type=submit]');
  await Promise.all([page.waitForNavigation(), button.click()]);
  const flash = await page.textContent('#flash');
  if (!flash.includes(`exception ${seen.exception} resolved`)) throw new Error(`resolve: ${flash}`);
  const row = await page.textContent(`#exception-${seen.exception}`);
  if (!row.includes(REASON)) throw new Error(`resolution not shown: ${row}`);

  // The trail shows it: who, what, why, old -> new.
  await page.goto(base + `/audit?object=exception:${seen.exception}`);
  const trail = await page.textContent('#audit');
  for (const want of ['exception_resolved', REASON, 'sup', 'open → resolved']) {
    if (!trail.includes(want)) throw new Error(`audit trail lacks ${want}: ${trail}`);
  }
  await page.goto(base + '/audit');
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });

  await page.goto(base + '/trends');
  const trends = await page.textContent('#trends');
  if (!trends.includes('E2E-LOT-1')) throw new Error(`trends lack the batch: ${trends}`);
  await page.screenshot({ path: `${shots}/trends.png`, fullPage: true });

  // Aggregation: the held case with its reason; scan a case, open it for rework.
  await page.goto(base + '/aggregation');
  const holds = await page.textContent('#holds');
  if (!holds.includes('not commissioned in batch E2E-LOT-1')) throw new Error(`holds: ${holds}`);
  await page.screenshot({ path: `${shots}/aggregation.png`, fullPage: true });
  await page.fill('#code', caseSscc);
  await Promise.all([page.waitForNavigation(), page.click('#show')]);
  const tree = await page.textContent('#tree');
  if ((tree.match(/ unit \(01\)/g) || []).length !== 4) throw new Error(`case tree: ${tree}`);
  await page.fill('#step-open input[name=reason]', 'e2e: carton dented');
  await Promise.all([page.waitForNavigation(), page.click('#step-open button')]);
  const opened = await page.textContent('#flash');
  if (!opened.includes(`case ${caseSscc} opened`)) throw new Error(`open: ${opened}`);
  await page.screenshot({ path: `${shots}/aggregation-case.png`, fullPage: true });

  // User administration (admin only).
  await logout(page);
  await login(page, 'admin');
  await page.goto(base + '/users');
  await page.screenshot({ path: `${shots}/users.png`, fullPage: true });
  // A kiosk-size view of the overview.
  await page.setViewportSize({ width: 1024, height: 768 });
  await page.goto(base + '/');
  await page.waitForFunction(() => document.getElementById('live').textContent.includes(':'), null, { timeout: 10000 });
  await page.screenshot({ path: `${shots}/overview-1024.png` });
  seen.reason = REASON;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
