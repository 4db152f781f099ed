// A side panel of the meeting screen (chat, participants): a sidebar on wide screens, a
// full-screen sheet on narrow ones. Header with title and close button; Escape closes.
import { h } from './dom.js';
import { icons } from './icons.js';

export class SidePanel {
  /** content: the panel's body element; onClose(): the close button or Escape was used. */
  constructor({ id, title, content, onClose }) {
    const titleId = `${id}-title`;
    this.closeBtn = h('button', {
      type: 'button', class: 'chip panel-close', 'aria-label': `Close ${title.toLowerCase()}`,
      title: 'Close (Esc)', html: icons.close, onclick: () => onClose(),
    });
    this.el = h('aside', { id, class: 'side-panel', role: 'region', 'aria-labelledby': titleId, hidden: true },
      h('header', { class: 'panel-header' },
        h('h2', { id: titleId, class: 'panel-title' }, title),
        this.closeBtn),
      content);
    this.el.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !ev.defaultPrevented) {
        ev.preventDefault();
        ev.stopPropagation();
        onClose();
      }
    });
  }

  get open() {
    return !this.el.hidden;
  }

  setOpen(on) {
    this.el.hidden = !on;
  }
}
