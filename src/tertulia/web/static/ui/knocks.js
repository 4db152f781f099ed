// Live lobby knocks for moderators: one card per person waiting, with Admit and Deny.
import { h, initials, hueFor } from './dom.js';

export class KnockList {
  constructor(conf) {
    this.conf = conf;
    this.el = h('div', { id: 'knock-list', class: 'knock-list', role: 'region', 'aria-label': 'People waiting to join', 'aria-live': 'polite', hidden: true });
    this.el.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-knock]');
      if (!btn) return;
      btn.disabled = true;
      if (btn.classList.contains('knock-admit')) conf.controls.admit(btn.dataset.knock);
      else if (btn.classList.contains('knock-deny')) conf.controls.deny(btn.dataset.knock);
    });
    this._render = () => this.render();
    conf.addEventListener('knocks', this._render);
    conf.addEventListener('role', this._render);
    this.render();
  }

  render() {
    const knocks = this.conf.controls.isModerator ? this.conf.knocks : [];
    const hadFocus = this.el.contains(document.activeElement);
    const byId = new Map([...this.el.children].map((el) => [el.dataset.knock, el]));
    const items = knocks.map((k) => byId.get(k.id) || this.item(k));
    this.el.replaceChildren(...items);
    this.el.hidden = items.length === 0;
    if (hadFocus && !this.el.contains(document.activeElement)) {
      const next = this.el.querySelector('.knock-admit');
      if (next) next.focus();
      else document.getElementById('participants-button')?.focus();
    }
  }

  item(k) {
    const avatar = h('span', { class: 'p-avatar', 'aria-hidden': 'true', text: initials(k.name) });
    avatar.style.setProperty('--hue', hueFor(k.id));
    return h('div', { class: 'knock-item', 'data-knock': k.id },
      avatar,
      h('p', { class: 'knock-text' },
        h('span', { class: 'knock-name', text: k.name }),
        h('span', { class: 'knock-sub', text: 'wants to join' })),
      h('div', { class: 'knock-actions' },
        h('button', { type: 'button', class: 'btn btn-primary btn-small knock-admit', 'data-knock': k.id, 'aria-label': `Admit ${k.name}` }, 'Admit'),
        h('button', { type: 'button', class: 'btn btn-secondary btn-small knock-deny', 'data-knock': k.id, 'aria-label': `Deny ${k.name}` }, 'Deny')));
  }

  destroy() {
    this.conf.removeEventListener('knocks', this._render);
    this.conf.removeEventListener('role', this._render);
  }
}
