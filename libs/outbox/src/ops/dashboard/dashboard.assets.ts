/** The page's only script: a form with `data-confirm` asks before it is sent. Served, not inline: a strict CSP. */
export const DASHBOARD_JS = `document.addEventListener('submit', function (event) {
  var message = event.target.getAttribute('data-confirm');
  if (message && !window.confirm(message)) event.preventDefault();
});
`;

export const DASHBOARD_CSS = `
:root { --ink: #1d232b; --muted: #5d6875; --line: #dde2e8; --bg: #f5f7fa; --card: #fff;
  --warn: #b3261e; --warn-bg: #fdecea; --ok: #1e6b34; --ok-bg: #e6f4ea; --accent: #2456a6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: var(--bg); }
body > header { display: flex; align-items: baseline; gap: 24px; padding: 14px 28px; background: #16202c; color: #fff; }
body > header h1 { margin: 0; font-size: 19px; font-weight: 600; }
body > header .service { color: #9cc3ff; }
body > header nav { display: flex; gap: 16px; }
body > header a { color: #cfe0ff; }
body > header .at { margin: 0 0 0 auto; color: #aab6c4; font-size: 12px; }
main { padding: 18px 28px 40px; max-width: 1280px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px;
  margin-bottom: 16px; }
h2 { margin: 0 0 10px; font-size: 16px; }
h2 small, h3 small { color: var(--muted); font-weight: normal; }
h3 { font-size: 14px; margin: 14px 0 8px; }
.figures { display: flex; flex-wrap: wrap; gap: 10px; }
.figure { min-width: 104px; padding: 8px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fafbfc; }
.figure span { display: block; color: var(--muted); font-size: 12px; }
.figure strong { font-size: 20px; font-weight: 600; }
.figures.small .figure strong { font-size: 16px; }
.figure.warn { border-color: #f1b8b3; background: var(--warn-bg); }
.figure.warn strong { color: var(--warn); }
.notice { padding: 8px 12px; border-radius: 6px; }
.notice.ok { background: var(--ok-bg); color: var(--ok); }
.notice.bad { background: var(--warn-bg); color: var(--warn); }
.processes { color: var(--muted); margin: 10px 0 0; }
.lookup form { display: flex; gap: 8px; align-items: center; }
.lookup input { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 4px; }
.trace ul { margin: 6px 0; padding-left: 18px; }
.trace li[data-state="completed"] { color: var(--ok); }
.trace li[data-state="failed"] { color: var(--warn); }
.dead-letter { border: 1px solid #f1b8b3; border-left: 4px solid var(--warn); border-radius: 6px; padding: 10px 14px;
  margin: 10px 0; }
.dead-letter > header { display: flex; justify-content: space-between; align-items: center; }
.dead-letter h4 { margin: 0; font-size: 14px; }
.reason { font-size: 11px; font-weight: 600; text-transform: uppercase; color: var(--warn); background: var(--warn-bg);
  padding: 2px 6px; border-radius: 4px; margin-left: 6px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dt { color: var(--muted); }
dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
td.error, p.error, span.error { color: var(--warn); font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
.actions { white-space: nowrap; }
.actions form { display: inline; }
button { font: inherit; font-size: 12px; padding: 3px 10px; border-radius: 4px; border: 1px solid var(--line);
  background: #fff; cursor: pointer; }
button.retry { border-color: var(--accent); color: var(--accent); }
button.discard { border-color: #c9a9a6; color: var(--warn); }
button:hover { filter: brightness(0.95); }
details { margin-top: 6px; }
summary { cursor: pointer; color: var(--accent); }
pre { background: #f3f5f8; border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px; overflow: auto;
  max-height: 360px; font-size: 12px; }
code { font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
`;
