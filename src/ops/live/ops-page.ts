import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PageWithPolicy {
  html: string;
  /**
   * Only the page's own inline script (by hash) may run; nothing is loaded
   * from elsewhere; no framing. Inline styles are allowed: the charts set
   * widths and colours in style attributes.
   */
  contentSecurityPolicy: string;
}

/** The live page: one self-contained HTML file (no external scripts, fonts or styles), read once. */
export function opsPage(): PageWithPolicy {
  return (cachedPage ??= withPolicy(readFileSync(join(__dirname, 'ops-page.html'), 'utf8')));
}
let cachedPage: PageWithPolicy | undefined;

/** Why the sign-in form is shown again: a wrong token, or too many wrong ones (seconds to wait). */
export type LoginNotice = { refused: true } | { throttledForSeconds: number } | null;

/** Shown instead of the page when OPS_TOKEN is set and not presented (or the session ended). */
export function opsLoginPage(notice: LoginNotice = null): PageWithPolicy {
  const alert =
    notice === null
      ? ''
      : 'refused' in notice
        ? '<p class="refused" role="alert">That token is not the operator token.</p>'
        : `<p class="refused" role="alert">Too many wrong tokens from this address: try again in ${Math.ceil(notice.throttledForSeconds)} s.</p>`;
  return withPolicy(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Absher bank gateway · operations · sign in</title>
<style>
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: #0f1720; color: #e6edf3; font-family: system-ui, sans-serif; }
  form { background: #17212c; border: 1px solid #263341; border-radius: 10px; padding: 24px; width: 340px; display: grid; gap: 12px; }
  h1 { font-size: 18px; margin: 0; } p { color: #8b9bab; font-size: 13px; margin: 0; } .refused { color: #f85149; }
  input, button { font-size: 14px; padding: 8px 10px; border-radius: 6px; border: 1px solid #263341; background: #0f1720; color: #e6edf3; }
  button { background: #238636; border-color: #2ea043; cursor: pointer; }
</style></head>
<body><form method="post" action="/ops/login">
  <h1>Operations</h1>
  <p>Enter the operator token (OPS_TOKEN) to open the live view.</p>
  ${alert}
  <input type="password" name="token" autocomplete="current-password" aria-label="Operator token" required autofocus>
  <button type="submit">Open the live view</button>
</form></body></html>`);
}

function withPolicy(html: string): PageWithPolicy {
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`);
  return {
    html,
    contentSecurityPolicy: `default-src 'none'; script-src ${scripts.join(' ') || "'none'"}; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  };
}
