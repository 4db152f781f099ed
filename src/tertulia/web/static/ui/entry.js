// Screens between prejoin and the meeting: the password prompt and the lobby waiting room.
import { h } from './dom.js';
import { icons } from './icons.js';

const PASSWORD_ERRORS = {
  'password-required': '',
  'wrong-password': 'That password is not right. Check it and try again.',
  'rate-limited': 'Too many attempts. Wait a minute, then try again.',
};

/**
 * Password prompt (id="password-screen"). `code`: the refusal that brought us here
 * (password-required | wrong-password | rate-limited). onSubmit(password) is called with a
 * non-empty password; the returned object's busy(bool) shows that a join is under way.
 */
export function renderPassword(root, { room, code = 'password-required', onSubmit, onCancel }) {
  const error = h('p', { id: 'password-error', class: 'field-error', role: 'alert' });
  const message = PASSWORD_ERRORS[code] ?? (code ? `Could not join (${code}).` : '');
  error.textContent = message;
  const input = h('input', {
    id: 'password-input', type: 'password', autocomplete: 'current-password', maxlength: '64',
    'aria-describedby': 'password-help password-error', 'aria-invalid': code === 'wrong-password' ? 'true' : null,
  });
  const submitBtn = h('button', { id: 'password-submit', type: 'submit', class: 'btn btn-primary btn-wide' }, 'Join meeting');
  const cancelBtn = h('button', { id: 'password-cancel', type: 'button', class: 'btn btn-secondary btn-wide', onclick: onCancel }, 'Cancel');
  const form = h('form', { class: 'entry-form', novalidate: true },
    h('label', { class: 'field-label', for: 'password-input' }, 'Meeting password'),
    input, error, submitBtn, cancelBtn);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = input.value;
    if (!value) {
      error.textContent = 'Enter the password.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    onSubmit(value);
  });
  input.addEventListener('input', () => {
    if (code !== 'rate-limited') error.textContent = '';
    input.removeAttribute('aria-invalid');
  });
  root.replaceChildren(
    h('section', { id: 'password-screen', class: 'screen message-screen', 'data-code': code || null },
      h('div', { class: 'message-card entry-card' },
        h('div', { class: 'brand small', html: icons.lock }),
        h('h1', { class: 'message-title' }, 'This meeting is locked'),
        h('p', { id: 'password-help', class: 'message-text' },
          'Enter the password to join ', h('strong', { class: 'room-name' }, room), '.'),
        form)),
  );
  input.focus();
  return {
    busy(on) {
      submitBtn.disabled = on;
      input.disabled = on;
      submitBtn.textContent = on ? 'Joining…' : 'Join meeting';
      if (on) error.textContent = '';
    },
  };
}

/** Lobby waiting screen (id="lobby-screen"): "Asking to join…" with a cancel button. */
export function renderLobby(root, { room, name, onCancel }) {
  root.replaceChildren(
    h('section', { id: 'lobby-screen', class: 'screen message-screen', 'aria-busy': 'true' },
      h('div', { class: 'message-card' },
        h('div', { class: 'spinner', 'aria-hidden': 'true' }),
        h('h1', { class: 'message-title', role: 'status' }, 'Asking to join…'),
        h('p', { class: 'message-text' }, 'A moderator will let you in.'),
        h('p', { class: 'message-text' },
          'Meeting ', h('strong', { id: 'lobby-room', class: 'room-name' }, room),
          name ? ` · you are ${name}` : ''),
        h('div', { class: 'message-actions' },
          h('button', { id: 'lobby-cancel', type: 'button', class: 'btn btn-secondary', onclick: onCancel }, 'Cancel')))),
  );
  root.querySelector('#lobby-cancel').focus();
}
