// Full-screen messages: connecting, left, errors.
import { h } from './dom.js';
import { icons } from './icons.js';

/**
 * actions: [{id, label, primary, onclick}] — rendered as buttons; an action with `href` is a link.
 */
export function renderMessage(root, { id, title, text, detail, code, actions = [], busy = false }) {
  const buttons = actions.map((a) => (a.href
    ? h('a', { id: a.id, class: `btn ${a.primary ? 'btn-primary' : 'btn-secondary'}`, href: a.href }, a.label)
    : h('button', { id: a.id, type: 'button', class: `btn ${a.primary ? 'btn-primary' : 'btn-secondary'}`, onclick: a.onclick }, a.label)));
  root.replaceChildren(
    h('section', { id, class: 'screen message-screen', 'data-code': code || null },
      h('div', { class: 'message-card' },
        busy ? h('div', { class: 'spinner', 'aria-hidden': 'true' }) : h('div', { class: 'brand small', html: icons.logo }),
        h('h1', { class: 'message-title' }, title),
        text ? h('p', { class: 'message-text' }, text) : null,
        detail ? h('p', { class: 'message-detail' }, detail) : null,
        buttons.length ? h('div', { class: 'message-actions' }, buttons) : null)),
  );
  const primary = root.querySelector('.btn-primary');
  if (primary) primary.focus();
}
