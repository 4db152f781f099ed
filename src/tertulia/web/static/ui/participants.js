// Participants panel: everyone in the meeting (name, moderator badge, muted icons, raised hand
// with its place in the queue); moderators also get per-participant and meeting-wide actions.
import { h, initials, hueFor } from './dom.js';
import { icons } from './icons.js';
import { SidePanel } from './panel.js';

const ordinal = (n) => {
  const s = ['th', 'st', 'nd', 'rd'];
  const v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
};

export class ParticipantsPanel {
  constructor(conf, { onClose }) {
    this.conf = conf;
    this.list = h('ul', { id: 'participants-list', class: 'participants-list', 'aria-label': 'Participants' });
    this.muteAllBtn = h('button', { id: 'mute-all', type: 'button', class: 'btn btn-secondary', onclick: () => conf.controls.muteAll('audio') }, 'Mute everyone');
    this.askBtn = h('button', { id: 'ask-unmute', type: 'button', class: 'btn btn-secondary', onclick: () => conf.controls.askUnmute() }, 'Ask everyone to unmute');
    this.endBtn = h('button', {
      id: 'end-meeting', type: 'button', class: 'btn btn-danger',
      onclick: () => {
        if (confirm('End the meeting for everyone? Everybody will be disconnected.')) conf.controls.endMeeting();
      },
    }, 'End meeting for all');
    this.modActions = h('div', { class: 'panel-actions', role: 'group', 'aria-label': 'Moderator actions' },
      this.muteAllBtn, this.askBtn, this.endBtn);
    this.panel = new SidePanel({
      id: 'participants-panel', title: 'Participants', onClose,
      content: h('div', { class: 'panel-body' }, h('div', { class: 'panel-scroll' }, this.list), this.modActions),
    });
    this.el = this.panel.el;
    this.list.addEventListener('click', (ev) => this.onAction(ev));
    this._render = () => this.render();
    for (const type of ['participants', 'hands', 'role', 'local']) conf.addEventListener(type, this._render);
    this.render();
  }

  get open() {
    return this.panel.open;
  }

  setOpen(on) {
    this.panel.setOpen(on);
    if (on) (this.list.querySelector('button') || this.panel.closeBtn).focus();
  }

  onAction(ev) {
    const btn = ev.target.closest('button[data-participant]');
    if (!btn) return;
    const id = btn.dataset.participant;
    const c = this.conf.controls;
    if (btn.classList.contains('action-mute-audio')) c.muteParticipant(id, 'audio');
    else if (btn.classList.contains('action-mute-video')) c.muteParticipant(id, 'video');
    else if (btn.classList.contains('action-grant')) c.grantModerator(id);
    else if (btn.classList.contains('action-kick')) c.kick(id);
  }

  /** Raised hands first (in queue order), then the rest: ourselves first, then join order. */
  people() {
    const c = this.conf;
    const me = {
      id: c.me || 'local', name: c.name, role: c.role, audioMuted: c.audioMuted, videoMuted: c.videoMuted, self: true,
    };
    const all = [me, ...[...c.participants.values()].map((p) => ({ ...p, self: false }))];
    const pos = (p) => { const i = c.hands.indexOf(p.id); return i < 0 ? Infinity : i; };
    return all.map((p, i) => ({ p, i, hand: pos(p) }))
      .sort((a, b) => (a.hand - b.hand) || (a.i - b.i))
      .map(({ p, hand }) => ({ ...p, hand: hand === Infinity ? 0 : hand + 1 }));
  }

  render() {
    const c = this.conf;
    const moderator = c.controls.isModerator;
    // Keep keyboard focus on the same action across re-renders.
    const focused = this.list.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = focused && focused.dataset.participant
      ? `.${[...focused.classList].find((k) => k.startsWith('action-'))}[data-participant="${CSS.escape(focused.dataset.participant)}"]`
      : null;
    this.list.replaceChildren(...this.people().map((p) => this.item(p, moderator)));
    if (focusKey) {
      const again = this.list.querySelector(focusKey);
      if (again) again.focus();
      else this.panel.closeBtn.focus();
    }
    this.modActions.hidden = !moderator;
  }

  item(p, moderator) {
    const name = p.name || 'Guest';
    const status = [];
    if (p.hand) {
      status.push(h('span', { class: 'p-icon p-hand', title: `Hand raised (${ordinal(p.hand)})`, 'aria-label': `Hand raised, ${ordinal(p.hand)} in line` },
        h('span', { html: icons.hand }), h('span', { class: 'p-hand-pos', text: String(p.hand) })));
    }
    if (p.audioMuted) status.push(h('span', { class: 'p-icon p-muted icon-audio-muted', title: 'Microphone muted', 'aria-label': 'Microphone muted', html: icons.micOff }));
    if (p.videoMuted) status.push(h('span', { class: 'p-icon p-muted icon-video-muted', title: 'Camera off', 'aria-label': 'Camera off', html: icons.camOff }));
    const actions = [];
    if (moderator && !p.self) {
      const act = (cls, label, icon) => h('button', {
        type: 'button', class: `chip p-action ${cls}`, 'data-participant': p.id, 'aria-label': label, title: label, html: icon,
      });
      actions.push(
        act('action-mute-audio', `Mute ${name}`, icons.micOff),
        act('action-mute-video', `Turn off ${name}'s camera`, icons.camOff));
      if (p.role !== 'moderator') actions.push(act('action-grant', `Make ${name} a moderator`, icons.star));
      actions.push(act('action-kick', `Remove ${name} from the meeting`, icons.userX));
    }
    const avatar = h('span', { class: 'p-avatar', 'aria-hidden': 'true', text: initials(name) });
    avatar.style.setProperty('--hue', hueFor(p.self ? name : p.id));
    return h('li', {
      class: 'participant-item', 'data-participant': p.id, 'data-self': p.self ? 'true' : null,
      'data-role': p.role || 'participant', 'data-hand': p.hand ? String(p.hand) : null,
    },
    avatar,
    h('div', { class: 'p-main' },
      h('span', { class: 'p-name', text: p.self ? `${name} (you)` : name }),
      p.role === 'moderator' ? h('span', { class: 'badge-moderator', text: 'Moderator' }) : null),
    h('div', { class: 'p-status' }, status),
    actions.length ? h('div', { class: 'p-actions', role: 'group', 'aria-label': `Actions for ${name}` }, actions) : null);
  }

  destroy() {
    for (const type of ['participants', 'hands', 'role', 'local']) this.conf.removeEventListener(type, this._render);
  }
}
