/**
 * Opens a report page in headless Chromium (playwright-core, the system's /usr/bin/chromium) with
 * all network refused, waits for every chart, and says what rendered.
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

/** The Chromium the tests use (Debian's package). */
export const CHROMIUM = '/usr/bin/chromium';

/** Whether the browser tests can run here. */
export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

/** What one chart rendered. */
export interface ChartCheck {
  id: string;
  /** An <svg> or <canvas> is in the chart's container. */
  hasGraphic: boolean;
  /** Items of the view's data marks (role `mark`), walking its scenegraph. */
  marks: number;
  /** Chart title text from the scenegraph, if any. */
  title: string;
}

/** What {@link checkReportInBrowser} found. */
export interface BrowserCheck {
  /** Chart containers on the page. */
  containers: number;
  charts: ChartCheck[];
  consoleErrors: string[];
  /** Requests the page tried to make to anything but its own file. */
  networkRequests: string[];
  chartErrors: number;
}

/**
 * Loads `htmlFile`, waits until the page reports its charts done, checks each, saves a full-page
 * screenshot to `screenshot`.
 */
export async function checkReportInBrowser(htmlFile: string, screenshot: string): Promise<BrowserCheck> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const consoleErrors: string[] = [];
    const networkRequests: string[] = [];
    const url = pathToFileURL(htmlFile).href;
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    await page.route('**/*', (route) => {
      const u = route.request().url();
      if (u === url) return route.continue();
      networkRequests.push(u);
      return route.abort();
    });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector('html[data-charts-ready]', { timeout: 30_000 });
    const result = (await page.evaluate(`(() => {
      const views = window.__reportViews || {};
      const boxes = Array.from(document.querySelectorAll('.vega-chart'));
      const count = (item) => {
        let n = 0;
        const walk = (mark) => {
          if (!mark || !mark.items) return;
          if (mark.role === 'mark' && mark.marktype !== 'group') n += mark.items.length;
          for (const it of mark.items) if (it && it.items) for (const sub of it.items) walk(sub);
        };
        walk(item);
        return n;
      };
      const titleOf = (root) => {
        const texts = [];
        const walk = (mark) => {
          if (!mark || !mark.items) return;
          if (mark.role === 'title-text') for (const it of mark.items) texts.push(String(it.text));
          for (const it of mark.items) if (it && it.items) for (const sub of it.items) walk(sub);
        };
        walk(root);
        return texts.join(' ');
      };
      return {
        containers: boxes.length,
        chartErrors: Number(document.documentElement.getAttribute('data-chart-errors') || '0'),
        charts: boxes.map((b) => {
          const v = views[b.id];
          const root = v ? v.scenegraph().root : null;
          return { id: b.id, hasGraphic: !!b.querySelector('svg, canvas'), marks: root ? count(root) : 0, title: root ? titleOf(root) : '' };
        }),
      };
    })()`)) as Omit<BrowserCheck, 'consoleErrors' | 'networkRequests'>;
    await page.screenshot({ path: screenshot, fullPage: true });
    return { ...result, consoleErrors, networkRequests };
  } finally {
    await browser.close();
  }
}
