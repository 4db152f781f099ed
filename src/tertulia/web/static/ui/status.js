// The #status line: errors and info ("Reconnecting…", server errors). Lives outside the screens.
let timer = 0;

export function showStatus({ text = '', level = 'info', sticky = false } = {}) {
  const el = document.getElementById('status');
  if (!el) return;
  clearTimeout(timer);
  el.textContent = text;
  el.dataset.level = text ? level : '';
  el.hidden = !text;
  if (text && !sticky) {
    timer = setTimeout(() => {
      el.textContent = '';
      el.dataset.level = '';
      el.hidden = true;
    }, level === 'error' ? 8000 : 4000);
  }
}

export function clearStatus() {
  showStatus({ text: '' });
}
