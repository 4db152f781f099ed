// Chat panel: history and live messages, a recipient select (everyone or one participant) and
// the message input. Message text is only ever set with textContent.
import { h } from './dom.js';
import { icons } from './icons.js';
import { SidePanel } from './panel.js';

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export class ChatPanel {
  /** onUnread(n): the number of messages received while the panel was closed changed. */
  constructor(conf, { onClose, onUnread }) {
    this.conf = conf;
    this.onUnread = onUnread;
    this.unread = 0;
    this.list = h('ol', { id: 'chat-messages', class: 'chat-messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Chat messages' });
    this.empty = h('p', { class: 'chat-empty' }, 'No messages yet. Say hello!');
    this.to = h('select', { id: 'chat-to', class: 'chat-to', 'aria-label': 'Send to' });
    this.input = h('input', {
      id: 'chat-input', type: 'text', class: 'chat-input', maxlength: '2000', autocomplete: 'off',
      placeholder: 'Type a message', 'aria-label': 'Message',
    });
    this.sendBtn = h('button', { id: 'chat-send', type: 'submit', class: 'round-btn send-btn', 'aria-label': 'Send message', title: 'Send', html: icons.send });
    const form = h('form', { class: 'chat-form' },
      h('label', { class: 'chat-to-row' }, h('span', { class: 'chat-to-label' }, 'To'), this.to),
      h('div', { class: 'chat-input-row' }, this.input, this.sendBtn));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.scroller = h('div', { class: 'chat-scroll' }, this.empty, this.list);
    this.panel = new SidePanel({
      id: 'chat-panel', title: 'Chat', onClose,
      content: h('div', { class: 'panel-body chat-body' }, this.scroller, form),
    });
    this.el = this.panel.el;
    this._onChat = (ev) => this.add(ev.detail.messages, ev.detail.live);
    this._onPeople = () => this.refreshRecipients();
    conf.addEventListener('chat', this._onChat);
    conf.addEventListener('participants', this._onPeople);
    this.add(conf.chat, false);
    this.refreshRecipients();
  }

  get open() {
    return this.panel.open;
  }

  setOpen(on) {
    this.panel.setOpen(on);
    if (on) {
      this.setUnread(0);
      this.scrollToEnd();
      this.input.focus();
    }
  }

  setUnread(n) {
    if (n === this.unread) return;
    this.unread = n;
    this.onUnread(n);
  }

  send() {
    const text = this.input.value.trim();
    if (!text) return;
    if (this.conf.controls.sendChat(text, this.to.value || null)) this.input.value = '';
    this.input.focus();
  }

  refreshRecipients() {
    const current = this.to.value;
    const options = [h('option', { value: '' }, 'Everyone')];
    for (const [id, p] of this.conf.participants) {
      options.push(h('option', { value: id }, `${p.name || 'Guest'} (private)`));
    }
    this.to.replaceChildren(...options);
    this.to.value = this.conf.participants.has(current) ? current : '';
  }

  add(messages, live) {
    if (!messages || !messages.length) return;
    const atEnd = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 40;
    // History (welcome) may interleave with what is shown: rebuild in the conference's order.
    const rebuild = !live && this.list.childElementCount > 0;
    if (rebuild) this.list.replaceChildren(...this.conf.chat.map((m) => this.render(m)));
    else for (const m of messages) this.list.append(this.render(m));
    this.empty.hidden = this.list.childElementCount > 0;
    if (live && !this.open) {
      const fromOthers = messages.filter((m) => m.from !== this.conf.me).length;
      if (fromOthers) this.setUnread(this.unread + fromOthers);
    }
    if (atEnd || this.open) this.scrollToEnd();
  }

  render(m) {
    const me = this.conf.me;
    const mine = m.from === me;
    let privateNote = null;
    if (m.private) {
      const other = mine ? this.conf.participants.get(m.to)?.name || 'someone' : null;
      privateNote = h('span', { class: 'chat-private', text: mine ? `Private · to ${other}` : 'Private · to you' });
    }
    const at = new Date(m.at);
    return h('li', {
      class: 'chat-msg', 'data-id': m.id, 'data-private': m.private ? 'true' : null, 'data-self': mine ? 'true' : null,
    },
    h('div', { class: 'chat-meta' },
      h('span', { class: 'chat-name', text: mine ? `${m.name} (you)` : m.name }),
      privateNote,
      h('time', { class: 'chat-time', datetime: at.toISOString() }, timeFormat.format(at))),
    h('p', { class: 'chat-text', text: m.text })); // textContent: chat is plain text, never HTML
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  destroy() {
    this.conf.removeEventListener('chat', this._onChat);
    this.conf.removeEventListener('participants', this._onPeople);
  }
}
