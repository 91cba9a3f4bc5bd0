// Debian's headless Chromium, driven by playwright-core (which never downloads a browser
// here: it is launched from /usr/bin/chromium), and the helpers every step shares.

import { chromium } from 'playwright-core';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Where Debian's `chromium` package puts the browser (override with CHROMIUM). */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium, or says plainly how to install it. */
export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: install Debian's package with \`apt-get install -y chromium\` ` +
        '(scripts/test does this), or set CHROMIUM to a Chromium binary',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}

/** Full-page PNG screenshots, numbered in the order the story visits the pages. */
export class Shots {
  /** @param {string} dir */
  constructor(dir) {
    this.dir = dir;
    this.n = 0;
    this.taken = [];
    mkdirSync(dir, { recursive: true });
  }

  /**
   * @param {import('playwright-core').Page} page
   * @param {string} name
   * @param {boolean} fullPage the whole page (else what the screen shows)
   */
  async take(page, name, fullPage = true) {
    this.n += 1;
    const path = join(this.dir, `${String(this.n).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path, fullPage });
    this.taken.push(path);
    return path;
  }
}

/**
 * Polls `check` until it returns a truthy value (errors count as "not yet").
 * @template T
 * @param {string} what what is awaited, for the failure message
 * @param {() => Promise<T>} check
 * @returns {Promise<T>}
 */
export async function until(what, check, timeoutMs = 60_000, everyMs = 500) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting until ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The visible text of the page's main content, whitespace collapsed. */
export async function mainText(page) {
  return (await page.locator('main').innerText()).replace(/\s+/g, ' ');
}

/** The flash message the page shows after an action (a status or an alert). */
export async function flash(page) {
  return (await page.locator('main p.flash').first().innerText()).trim();
}

/**
 * Every form field on the page that has no label (by <label for>, wrapping label,
 * aria-label or aria-labelledby); hidden inputs excluded.
 */
export async function unlabelledFields(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
      .filter((el) => {
        const labels = el.labels ? [...el.labels].filter((l) => l.innerText.trim() !== '') : [];
        return labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby');
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

/** Buttons and links without an accessible name (text or aria-label). */
export async function unnamedControls(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('button, a[href]')]
      .filter((el) => !(el.innerText.trim() || el.getAttribute('aria-label')))
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

/** The page's horizontal overflow in CSS pixels (0 when nothing sticks out). */
export async function overflowX(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/** The innermost elements that stick out past the right edge, for a failure message. */
export async function overflowing(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    return [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > width + 0.5)
      .filter((el) => ![...el.children].some((c) => c.getBoundingClientRect().right > width + 0.5))
      .slice(0, 5)
      .map((el) => `${el.outerHTML.slice(0, 100)} (right edge ${Math.round(el.getBoundingClientRect().right)} px)`);
  });
}

/**
 * Presses Tab up to `max` times from the top of the page and records what takes the
 * focus: its name and whether a focus outline is visible.
 */
export async function tabThrough(page, max = 40) {
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  const seen = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const style = getComputedStyle(el);
      const label = el.labels && el.labels[0] ? el.labels[0].innerText : '';
      return {
        tag: el.tagName.toLowerCase(),
        name: (el.getAttribute('aria-label') || label || el.innerText || el.value || '').replace(/\s+/g, ' ').trim(),
        outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
        // A date field's focus sits in its parts (day, month, year), not on the field.
        focusVisible: el.matches(':focus-visible') || el.matches('input[type=date]:focus-within'),
      };
    });
    if (f) seen.push(f);
  }
  return seen;
}

/**
 * Visible text whose contrast with its background is below WCAG AA (4.5:1, or 3:1 for
 * large text: 24 px, or 18.66 px bold), backgrounds read through transparent ancestors.
 */
export async function lowContrast(page) {
  return page.evaluate(() => {
    const rgba = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return [0, 0, 0, 0];
      const [r, g, b, a = '1'] = m[1].split(/[ ,/]+/).filter(Boolean);
      return [Number(r), Number(g), Number(b), Number(a)];
    };
    const lum = ([r, g, b]) => {
      const f = (v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c[3] > 0.5) return c;
      }
      return [255, 255, 255, 1];
    };
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
      if (!own || el.closest('[hidden]') || el.getClientRects().length === 0) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || el.closest('.skip, .visually-hidden')) continue;
      const fg = rgba(el instanceof SVGElement ? style.fill : style.color);
      const [a, b] = [lum(fg), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1`);
    }
    return out;
  });
}
