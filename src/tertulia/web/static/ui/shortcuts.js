// Keyboard shortcuts of the meeting screen and their help dialog (id="shortcuts-dialog", "?").
// Shortcuts never fire while typing (inputs, textareas, selects, contenteditable), with a
// modifier held, or while a dialog is open.
import { h } from './dom.js';
import { Modal } from './dialog.js';

export const SHORTCUTS = [
  ['M', 'mic', 'Mute or unmute your microphone'],
  ['V', 'camera', 'Turn your camera on or off'],
  ['D', 'screen', 'Start or stop sharing your screen'],
  ['C', 'chat', 'Open or close the chat'],
  ['R', 'hand', 'Raise or lower your hand'],
  ['T', 'layout', 'Switch between tile view and stage view'],
  ['?', 'help', 'Show these keyboard shortcuts'],
];

export class ShortcutsDialog {
  constructor() {
    const rows = SHORTCUTS.map(([key, , text]) => h('div', { class: 'shortcut-row' },
      h('dt', {}, h('kbd', {}, key)), h('dd', {}, text)));
    this.list = h('dl', { id: 'shortcuts-list', class: 'shortcut-list' }, rows);
    this.modal = new Modal({
      id: 'shortcuts-dialog', title: 'Keyboard shortcuts', describedBy: 'shortcuts-desc',
      body: h('section', { class: 'dialog-section' },
        h('p', { id: 'shortcuts-desc', class: 'dialog-text' }, 'Press a key anywhere in the meeting, except while typing.'),
        this.list),
    });
    this.el = this.modal.el;
  }

  get open() { return this.modal.open; }
  show() { this.modal.show(this.modal.closeBtn); }
  close() { this.modal.close(); }
  destroy() { this.modal.destroy(); }
}

function typing(target) {
  return !!target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

/**
 * Listen on the document; handlers: {mic, camera, screen, chat, hand, layout, help}.
 * Returns a function that removes the listener.
 */
export function bindShortcuts(handlers) {
  const byKey = new Map(SHORTCUTS.map(([key, action]) => [key.toLowerCase(), action]));
  const onKey = (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat || ev.defaultPrevented) return;
    if (typing(ev.target) || document.querySelector('dialog[open]')) return;
    const action = byKey.get(ev.key.toLowerCase());
    if (!action || !handlers[action]) return;
    ev.preventDefault();
    handlers[action]();
  };
  document.addEventListener('keydown', onKey);
  return () => document.removeEventListener('keydown', onKey);
}
