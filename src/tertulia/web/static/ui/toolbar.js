// The meeting toolbar. On narrow screens the less used buttons (screen share, layout, security,
// settings) move into a "More" pop-up (id="more-menu", opened by id="more-button"); they keep
// their ids and handlers, and show a text label there.
import { h } from './dom.js';
import { icons } from './icons.js';

const NARROW = '(max-width: 560px)';

function toolButton(id, icon, label, key = null) {
  const b = h('button', {
    id, type: 'button', class: 'round-btn tool-btn', 'aria-label': label, title: label, html: icon,
    'aria-keyshortcuts': key,
  });
  b.append(h('span', { class: 'tool-text', 'aria-hidden': 'true' }, label));
  return b;
}

/** aria-label, tooltip and (in the More pop-up) visible text of a toolbar button. */
export function setLabel(button, label) {
  if (button.getAttribute('aria-label') === label) return;
  button.setAttribute('aria-label', label);
  button.title = label;
  const text = button.querySelector('.tool-text');
  if (text) text.textContent = label.replace(/ \([A-Z?]\)$/, '');
}

/** Replace a button's icon (keeps its text label and badges). */
export function setIcon(button, icon) {
  if (button.dataset.icon === icon) return;
  button.dataset.icon = icon;
  const old = button.querySelector('svg');
  const tmp = document.createElement('span');
  tmp.innerHTML = icon;
  if (old) old.replaceWith(tmp.firstChild);
  else button.prepend(tmp.firstChild);
}

export class Toolbar {
  constructor() {
    const b = {
      audio: h('button', { id: 'toggle-audio', type: 'button', class: 'round-btn', title: 'Microphone (M)', 'aria-keyshortcuts': 'M' }),
      video: h('button', { id: 'toggle-video', type: 'button', class: 'round-btn', title: 'Camera (V)', 'aria-keyshortcuts': 'V' }),
      screen: toolButton('screen-button', icons.screen, 'Share your screen (D)', 'D'),
      hand: toolButton('raise-hand-button', icons.hand, 'Raise hand (R)', 'R'),
      chat: toolButton('chat-button', icons.chat, 'Open chat (C)', 'C'),
      people: toolButton('participants-button', icons.people, 'Participants'),
      layout: toolButton('layout-button', icons.tiles, 'Tile view (T)', 'T'),
      security: toolButton('security-button', icons.shield, 'Security options'),
      settings: toolButton('settings-button', icons.settings, 'Settings'),
      more: h('button', {
        id: 'more-button', type: 'button', class: 'round-btn tool-btn', 'aria-label': 'More actions', title: 'More actions',
        'aria-expanded': 'false', 'aria-controls': 'more-menu', html: icons.more,
      }),
      leave: h('button', {
        id: 'leave-button', type: 'button', class: 'round-btn danger', 'aria-label': 'Leave meeting',
        title: 'Leave meeting', html: icons.hangup,
      }),
    };
    this.buttons = b;
    this.chatUnread = h('span', { id: 'chat-unread', class: 'badge', 'aria-hidden': 'true', hidden: true });
    b.chat.append(this.chatUnread);
    for (const k of ['screen', 'hand', 'chat', 'people', 'layout']) b[k].setAttribute('aria-pressed', 'false');
    b.security.setAttribute('aria-haspopup', 'dialog');
    b.settings.setAttribute('aria-haspopup', 'dialog');
    this.menu = h('div', { id: 'more-menu', class: 'more-menu', role: 'group', 'aria-label': 'More actions', hidden: true });
    this.moreWrap = h('div', { class: 'more-wrap' }, this.menu, b.more);
    this.el = h('footer', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Meeting controls' });
    b.more.addEventListener('click', () => this.setMenu(this.menu.hidden));
    this.menu.addEventListener('click', (ev) => { if (ev.target.closest('button')) this.setMenu(false); });
    this.menu.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { ev.preventDefault(); this.setMenu(false); b.more.focus(); }
    });
    this._outside = (ev) => {
      if (!this.menu.hidden && !this.moreWrap.contains(ev.target)) this.setMenu(false);
    };
    document.addEventListener('pointerdown', this._outside, true);
    this.mq = window.matchMedia(NARROW);
    this._place = () => this.place();
    this.mq.addEventListener('change', this._place);
    this.place();
  }

  get narrow() {
    return this.mq.matches;
  }

  place() {
    const b = this.buttons;
    const focused = document.activeElement;
    if (this.narrow) {
      this.el.replaceChildren(b.audio, b.video, b.hand, b.chat, b.people, this.moreWrap, b.leave);
      this.menu.replaceChildren(b.screen, b.layout, b.security, b.settings);
    } else {
      this.setMenu(false);
      this.el.replaceChildren(b.audio, b.video, b.screen, b.hand, b.chat, b.people, b.layout, b.security, b.settings, b.leave);
      this.menu.replaceChildren();
    }
    this.el.classList.toggle('narrow', this.narrow);
    if (focused instanceof HTMLElement && this.el.contains(focused) && document.activeElement !== focused) focused.focus();
  }

  setMenu(open) {
    this.menu.hidden = !open;
    this.buttons.more.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) (this.menu.querySelector('button:not([hidden])') || this.buttons.more).focus();
  }

  destroy() {
    document.removeEventListener('pointerdown', this._outside, true);
    this.mq.removeEventListener('change', this._place);
  }
}
