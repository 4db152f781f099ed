// A small modal <dialog> (invite, keyboard shortcuts): title, close button, body, footer.
// showModal() moves focus in and traps it; Escape or a click on the backdrop closes; focus goes
// back to whatever had it before.
import { h } from './dom.js';
import { icons } from './icons.js';

export class Modal {
  /** body: element(s) for the dialog; foot: buttons for the footer (a Close button is added). */
  constructor({ id, title, body, foot = [], describedBy = null }) {
    const titleId = `${id}-title`;
    this.closeBtn = h('button', {
      id: `${id}-close`, type: 'button', class: 'btn btn-secondary', onclick: () => this.close(),
    }, 'Close');
    this.el = h('dialog', { id, class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': describedBy },
      h('div', { class: 'dialog-head' },
        h('h2', { id: titleId, class: 'dialog-title' }, title),
        h('button', {
          type: 'button', class: 'chip dialog-x', 'aria-label': `Close ${title.toLowerCase()}`, title: 'Close (Esc)',
          html: icons.close, onclick: () => this.close(),
        })),
      body,
      h('div', { class: 'dialog-foot' }, foot, this.closeBtn));
    this._returnTo = null;
    this.el.addEventListener('close', () => {
      const back = this._returnTo;
      this._returnTo = null;
      if (back && back.isConnected) back.focus();
    });
    this.el.addEventListener('click', (ev) => { if (ev.target === this.el) this.close(); });
  }

  get open() {
    return this.el.open;
  }

  /**
   * focus: the element to focus inside (default: the dialog's first control); returnTo: where
   * focus goes on close (default: whatever had it, e.g. a button in a menu that is gone by then).
   */
  show(focus = null, returnTo = null) {
    if (this.el.open) return;
    this._returnTo = returnTo || (document.activeElement instanceof HTMLElement ? document.activeElement : null);
    this.el.showModal();
    if (focus) focus.focus();
  }

  close() {
    if (this.el.open) this.el.close();
  }

  destroy() {
    this.close();
    this.el.remove();
  }
}
