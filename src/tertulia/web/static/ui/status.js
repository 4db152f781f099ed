// The #status line: errors and info ("Reconnecting…", server errors), optionally with one action
// button (id="status-action", e.g. "Unmute"). Lives outside the screens.
let timer = 0;

/** action: {label, onclick} — a button after the text; the status hides once it is used. */
export function showStatus({ text = '', level = 'info', sticky = false, action = null } = {}) {
  const el = document.getElementById('status');
  if (!el) return;
  clearTimeout(timer);
  const hide = () => {
    el.replaceChildren();
    el.dataset.level = '';
    el.hidden = true;
  };
  el.replaceChildren();
  if (text) {
    const span = document.createElement('span');
    span.className = 'status-text';
    span.textContent = text;
    el.append(span);
  }
  if (text && action) {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.id = 'status-action';
    btn.className = 'status-action';
    btn.textContent = action.label;
    btn.addEventListener('click', () => {
      hide();
      action.onclick();
    });
    el.append(btn);
  }
  el.dataset.level = text ? level : '';
  el.hidden = !text;
  if (text && !sticky) {
    timer = setTimeout(hide, action ? 15000 : level === 'error' ? 8000 : 4000);
  }
}

export function clearStatus() {
  showStatus({ text: '' });
}
