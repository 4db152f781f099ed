// Security dialog: lobby on/off and the room password. Moderators change them; everyone else
// sees the current state read-only. A modal <dialog>: focus moves in, Escape closes, focus
// returns to the button that opened it.
import { h } from './dom.js';
import { icons } from './icons.js';

export class SecurityDialog {
  constructor(conf, { returnFocus, onPasswordSet }) {
    this.conf = conf;
    this.returnFocus = returnFocus;
    this.onPasswordSet = onPasswordSet;
    this.lobby = h('input', {
      id: 'lobby-toggle', type: 'checkbox', role: 'switch', class: 'switch',
      'aria-describedby': 'lobby-desc',
    });
    this.lobby.addEventListener('change', () => {
      if (!conf.controls.isModerator) { this.render(); return; }
      conf.controls.setLobby(this.lobby.checked);
    });
    this.passwordState = h('p', { id: 'password-state', class: 'dialog-text' });
    this.password = h('input', {
      id: 'room-password', type: 'text', maxlength: '64', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'New password', 'aria-label': 'Meeting password', 'aria-describedby': 'password-state room-password-error',
    });
    this.error = h('p', { id: 'room-password-error', class: 'field-error', role: 'alert' });
    this.setBtn = h('button', { id: 'password-set', type: 'button', class: 'btn btn-primary', onclick: () => this.setPassword() }, 'Set password');
    this.clearBtn = h('button', { id: 'password-clear', type: 'button', class: 'btn btn-secondary', onclick: () => this.clearPassword() }, 'Remove password');
    this.password.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') { ev.preventDefault(); this.setPassword(); }
    });
    this.password.addEventListener('input', () => { this.error.textContent = ''; });
    // Moderators only; others see the state (and a note) instead.
    this.editor = h('div', { class: 'password-editor' },
      this.password, this.error, h('div', { class: 'dialog-buttons' }, this.setBtn, this.clearBtn));
    this.note = h('p', { id: 'security-note', class: 'notice' }, 'Only moderators can change these settings.');
    this.el = h('dialog', { id: 'security-dialog', class: 'dialog', 'aria-labelledby': 'security-title', 'aria-describedby': 'security-note' },
      h('div', { class: 'dialog-head' },
        h('h2', { id: 'security-title', class: 'dialog-title' }, 'Security options'),
        h('button', {
          type: 'button', class: 'chip dialog-x', 'aria-label': 'Close security options', title: 'Close (Esc)',
          html: icons.close, onclick: () => this.close(),
        })),
      this.note,
      h('section', { class: 'dialog-section' },
        h('div', { class: 'switch-row' },
          h('label', { for: 'lobby-toggle', class: 'switch-label' }, 'Lobby'),
          this.lobby),
        h('p', { id: 'lobby-desc', class: 'dialog-text' },
          'When the lobby is on, people who join wait until a moderator lets them in.')),
      h('section', { class: 'dialog-section' },
        h('h3', { class: 'dialog-subtitle' }, 'Password'),
        this.passwordState,
        this.editor),
      h('div', { class: 'dialog-foot' },
        h('button', { id: 'security-close', type: 'button', class: 'btn btn-secondary', onclick: () => this.close() }, 'Close')));
    this.el.addEventListener('close', () => {
      if (this.returnFocus) this.returnFocus.focus();
    });
    // Click on the backdrop (outside the dialog box) closes it.
    this.el.addEventListener('click', (ev) => { if (ev.target === this.el) this.close(); });
    this._render = () => this.render();
    conf.addEventListener('room', this._render);
    conf.addEventListener('role', this._render);
    this.render();
  }

  get open() {
    return this.el.open;
  }

  show() {
    if (this.el.open) return;
    this.error.textContent = '';
    this.render();
    this.el.showModal();
    (this.conf.controls.isModerator ? this.lobby : this.el.querySelector('#security-close')).focus();
  }

  close() {
    if (this.el.open) this.el.close();
  }

  render() {
    const mod = this.conf.controls.isModerator;
    const { lobby, locked } = this.conf.roomState;
    this.lobby.checked = lobby;
    this.lobby.disabled = !mod;
    this.note.hidden = mod;
    this.passwordState.textContent = locked
      ? 'This meeting has a password: people need it to join.'
      : 'No password: anyone with the link can join.';
    this.passwordState.dataset.locked = locked ? 'true' : 'false';
    this.editor.hidden = !mod;
    this.password.disabled = !mod;
    this.setBtn.disabled = !mod;
    this.clearBtn.disabled = !mod || !locked;
    this.setBtn.textContent = locked ? 'Change password' : 'Set password';
  }

  setPassword() {
    if (!this.conf.controls.isModerator) return;
    const value = this.password.value;
    if (!value.trim()) {
      this.error.textContent = 'Enter a password (1–64 characters).';
      this.password.focus();
      return;
    }
    if (this.conf.controls.setPassword(value)) {
      this.conf.password = value; // so that our own fresh rejoin does not ask for it
      if (this.onPasswordSet) this.onPasswordSet(value);
      this.password.value = '';
    }
  }

  clearPassword() {
    if (!this.conf.controls.isModerator) return;
    if (this.conf.controls.setPassword(null)) {
      this.conf.password = null;
      if (this.onPasswordSet) this.onPasswordSet(null);
    }
  }

  destroy() {
    this.close();
    this.conf.removeEventListener('room', this._render);
    this.conf.removeEventListener('role', this._render);
    this.el.remove();
  }
}
