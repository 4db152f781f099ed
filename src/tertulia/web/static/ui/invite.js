// Inviting people: the meeting link (never with the URL fragment or a personal ?jwt token),
// copying it, the invite dialog (id="invite-dialog") and the "only one here" panel (id="lonely").
import { h } from './dom.js';
import { icons } from './icons.js';
import { Modal } from './dialog.js';
import { showStatus } from './status.js';

/** https://host/room — what others need to join. */
export function meetingUrl(room) {
  return `${location.origin}/${encodeURIComponent(room)}`;
}

/** Copy text to the clipboard; falls back to a selected textarea + execCommand. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* permission refused or no focus: try the old way */ }
  const area = h('textarea', { class: 'sr-only', readonly: true, 'aria-hidden': 'true' });
  area.value = text;
  const back = document.activeElement;
  (document.querySelector('dialog[open]') || document.body).append(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  area.remove();
  if (back instanceof HTMLElement) back.focus();
  return ok;
}

/** Copy the link and say so ("Link copied"); when copying is impossible, show the link. */
export async function copyLink(room, button = null) {
  const url = meetingUrl(room);
  const ok = await copyText(url);
  showStatus(ok ? { text: 'Link copied', level: 'info' } : { text: `Copy this link: ${url}`, level: 'info', sticky: false });
  if (ok && button) flash(button, 'Copied');
  return ok;
}

/** Briefly show `text` on a text button (e.g. "Copied"), then its label again. */
function flash(button, text) {
  const label = button.querySelector('.btn-label');
  if (!label) return;
  if (!button.dataset.label) button.dataset.label = label.textContent;
  label.textContent = text;
  clearTimeout(button._flash);
  button._flash = setTimeout(() => { label.textContent = button.dataset.label; }, 2000);
}

function linkRow(idPrefix, room) {
  const input = h('input', {
    id: `${idPrefix}-link`, type: 'text', readonly: true, class: 'link-input', value: meetingUrl(room),
    'aria-label': 'Meeting link', spellcheck: 'false',
  });
  input.addEventListener('focus', () => input.select());
  const copy = h('button', {
    id: `${idPrefix}-copy`, type: 'button', class: 'btn btn-primary', 'aria-label': 'Copy meeting link',
    html: icons.copy,
  });
  copy.append(h('span', { class: 'btn-label' }, 'Copy link'));
  copy.addEventListener('click', () => copyLink(room, copy));
  return { row: h('div', { class: 'link-row' }, input, copy), input, copy };
}

export class InviteDialog {
  constructor(conf) {
    this.conf = conf;
    const { row, copy } = linkRow('invite', conf.room);
    this.copyBtn = copy;
    this.shareBtn = h('button', {
      id: 'invite-share', type: 'button', class: 'btn btn-secondary', 'aria-label': 'Share meeting link', html: icons.share,
    });
    this.shareBtn.append(h('span', { class: 'btn-label' }, 'Share…'));
    this.shareBtn.hidden = typeof navigator.share !== 'function';
    this.shareBtn.addEventListener('click', () => this.share());
    this.note = h('p', { id: 'invite-note', class: 'dialog-text' });
    this.modal = new Modal({
      id: 'invite-dialog', title: 'Invite people', describedBy: 'invite-desc',
      body: h('section', { class: 'dialog-section' },
        h('p', { id: 'invite-desc', class: 'dialog-text' }, 'Send this link to the people you want to meet. Anyone with it can join.'),
        row,
        this.note),
      foot: [this.shareBtn],
    });
    this.el = this.modal.el;
    this._render = () => this.render();
    conf.addEventListener('room', this._render);
    this.render();
  }

  get open() { return this.modal.open; }

  render() {
    const { lobby, locked } = this.conf.roomState;
    const notes = [];
    if (locked) notes.push('This meeting has a password: give it to them separately.');
    if (lobby) notes.push('The lobby is on: a moderator lets them in.');
    this.note.textContent = notes.join(' ');
    this.note.hidden = !notes.length;
  }

  show() {
    this.render();
    this.modal.show(this.copyBtn);
  }

  close() { this.modal.close(); }

  async share() {
    try {
      await navigator.share({ title: `Join ${this.conf.room} on Tertulia`, url: meetingUrl(this.conf.room) });
    } catch (err) {
      if (err && err.name !== 'AbortError') copyLink(this.conf.room, this.copyBtn);
    }
  }

  destroy() {
    this.conf.removeEventListener('room', this._render);
    this.modal.destroy();
  }
}

/** "You're the only one here": the link front and centre, with a copy button. */
export function lonelyPanel(room, { onInvite }) {
  const { row } = linkRow('lonely', room);
  const more = h('button', { id: 'lonely-invite', type: 'button', class: 'link-btn', onclick: onInvite }, 'More ways to invite');
  more.hidden = typeof navigator.share !== 'function';
  return h('section', { id: 'lonely', class: 'lonely', 'aria-labelledby': 'lonely-title' },
    h('div', { class: 'lonely-icon', html: icons.invite }),
    h('h2', { id: 'lonely-title', class: 'lonely-title' }, "You're the only one here"),
    h('p', { class: 'lonely-text' }, 'Share this link to invite others. They can join from any browser, no account needed.'),
    row,
    more);
}
