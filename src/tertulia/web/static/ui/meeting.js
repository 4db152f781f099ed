// Meeting screen: header with participant count, tile grid, side panels (chat, participants),
// toolbar, security dialog and lobby knocks.
import { h } from './dom.js';
import { icons } from './icons.js';
import { Tile } from './tile.js';
import { bestLayout } from './grid.js';
import { setToggle } from './prejoin.js';
import { showStatus } from './status.js';
import { ChatPanel } from './chat.js';
import { ParticipantsPanel } from './participants.js';
import { SecurityDialog } from './security.js';
import { KnockList } from './knocks.js';

const CONF_EVENTS = ['participants', 'slots', 'local', 'media', 'hands', 'role', 'room'];

function toolButton(id, icon, label) {
  return h('button', { id, type: 'button', class: 'round-btn tool-btn', 'aria-label': label, title: label, html: icon });
}

const GAP = 8;

export class MeetingView {
  constructor(root, conference, { onLeave, onPasswordSet }) {
    this.conf = conference;
    this.onLeave = onLeave;
    this.tiles = new Map(); // participant id (or 'local') → Tile
    this._blocked = false;
    this._busy = { audio: false, video: false };

    this.count = h('span', { id: 'participant-count', class: 'count', title: 'Participants' });
    this.grid = h('div', { id: 'grid', class: 'grid' });
    this.stage = h('main', { class: 'stage' }, this.grid);
    this.audioBtn = h('button', { id: 'toggle-audio', type: 'button', class: 'round-btn', title: 'Microphone (M)' });
    this.videoBtn = h('button', { id: 'toggle-video', type: 'button', class: 'round-btn', title: 'Camera (V)' });
    this.leaveBtn = h('button', {
      id: 'leave-button', type: 'button', class: 'round-btn danger', 'aria-label': 'Leave meeting',
      title: 'Leave meeting', html: icons.hangup,
    });
    this.copyBtn = h('button', {
      id: 'copy-link', type: 'button', class: 'chip', title: 'Copy meeting link', 'aria-label': 'Copy meeting link',
      html: icons.link,
    });
    this.handBtn = toolButton('raise-hand-button', icons.hand, 'Raise hand (R)');
    this.chatUnread = h('span', { id: 'chat-unread', class: 'badge', 'aria-hidden': 'true', hidden: true });
    this.chatBtn = toolButton('chat-button', icons.chat, 'Open chat (C)');
    this.chatBtn.append(this.chatUnread);
    this.peopleBtn = toolButton('participants-button', icons.people, 'Participants');
    this.securityBtn = toolButton('security-button', icons.shield, 'Security options');
    for (const b of [this.handBtn, this.chatBtn, this.peopleBtn]) b.setAttribute('aria-pressed', 'false');
    this.securityBtn.setAttribute('aria-haspopup', 'dialog');

    this.chat = new ChatPanel(conference, { onClose: () => this.showPanel(null), onUnread: () => this.renderChatButton() });
    this.people = new ParticipantsPanel(conference, { onClose: () => this.showPanel(null) });
    this.security = new SecurityDialog(conference, { returnFocus: this.securityBtn, onPasswordSet });
    this.knocks = new KnockList(conference);
    this.panels = { chat: this.chat, participants: this.people };
    this.panelButtons = { chat: this.chatBtn, participants: this.peopleBtn };

    this.el = h('section', { id: 'meeting', class: 'screen meeting' },
      h('header', { class: 'meeting-header' },
        h('div', { class: 'room-info' },
          h('span', { id: 'meeting-room', class: 'room-label' }, conference.room),
          this.copyBtn),
        this.count),
      h('div', { class: 'meeting-body' }, this.stage, this.chat.el, this.people.el),
      h('footer', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Meeting controls' },
        this.audioBtn, this.videoBtn, this.handBtn, this.chatBtn, this.peopleBtn, this.securityBtn, this.leaveBtn),
      this.knocks.el,
      this.security.el);

    this.audioBtn.addEventListener('click', () => this.toggle('audio'));
    this.videoBtn.addEventListener('click', () => this.toggle('video'));
    this.leaveBtn.addEventListener('click', () => this.onLeave());
    this.copyBtn.addEventListener('click', () => this.copyLink());
    this.handBtn.addEventListener('click', () => conference.controls.raiseHand());
    this.chatBtn.addEventListener('click', () => this.togglePanel('chat'));
    this.peopleBtn.addEventListener('click', () => this.togglePanel('participants'));
    this.securityBtn.addEventListener('click', () => this.security.show());

    this._onKey = (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
      const t = ev.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      if (this.security.open) return;
      const k = ev.key.toLowerCase();
      if (k === 'm') { ev.preventDefault(); this.toggle('audio'); }
      else if (k === 'v') { ev.preventDefault(); this.toggle('video'); }
      else if (k === 'c') { ev.preventDefault(); this.togglePanel('chat'); }
      else if (k === 'r') { ev.preventDefault(); this.conf.controls.raiseHand(); }
    };
    this._onModeration = (ev) => this.onModeration(ev.detail);
    this._onRole = () => {
      if (this.conf.controls.isModerator) showStatus({ text: 'You are now a moderator', level: 'info' });
    };
    this._onUnblock = () => {
      if (!this._blocked) return;
      this._blocked = false;
      for (const tile of this.tiles.values()) tile.replay();
      showStatus({ text: '' });
    };
    this._render = () => this.render();
    document.addEventListener('keydown', this._onKey);
    document.addEventListener('pointerdown', this._onUnblock, true);
    for (const type of CONF_EVENTS) conference.addEventListener(type, this._render);
    conference.addEventListener('moderation', this._onModeration);
    conference.addEventListener('role', this._onRole);
    this._resizeObs = new ResizeObserver(() => this.layout());
    this._resizeObs.observe(this.stage);
    this._speakTimer = setInterval(() => this.updateSpeakers(), 400);

    root.replaceChildren(this.el);
    this.render();
  }

  onBlocked() {
    if (this._blocked) return;
    this._blocked = true;
    showStatus({ text: 'Click anywhere to turn on the sound', level: 'info', sticky: true });
  }

  async toggle(kind) {
    if (this._busy[kind]) return;
    this._busy[kind] = true;
    const btn = kind === 'audio' ? this.audioBtn : this.videoBtn;
    btn.disabled = true;
    try {
      if (kind === 'audio') await this.conf.setAudioMuted(!this.conf.audioMuted);
      else await this.conf.setVideoMuted(!this.conf.videoMuted);
    } finally {
      this._busy[kind] = false;
      btn.disabled = false;
      this.render();
    }
  }

  /** Open one side panel (or none); focus goes into it, and back to its button on close. */
  showPanel(name) {
    const before = Object.keys(this.panels).find((k) => this.panels[k].open) || null;
    for (const [key, panel] of Object.entries(this.panels)) {
      panel.setOpen(key === name);
      this.panelButtons[key].setAttribute('aria-pressed', key === name ? 'true' : 'false');
    }
    this.el.classList.toggle('panel-open', !!name);
    if (!name && before) this.panelButtons[before].focus();
    this.renderChatButton();
    this.layout();
  }

  togglePanel(name) {
    this.showPanel(this.panels[name].open ? null : name);
  }

  renderChatButton() {
    const n = this.chat.unread;
    this.chatUnread.textContent = n > 99 ? '99+' : String(n);
    this.chatUnread.hidden = n === 0;
    const open = this.chat.open;
    const label = `${open ? 'Close' : 'Open'} chat (C)${n ? `, ${n} unread ${n === 1 ? 'message' : 'messages'}` : ''}`;
    this.chatBtn.setAttribute('aria-label', label);
    this.chatBtn.title = label;
  }

  onModeration(m) {
    if (m.type === 'muted-by-moderator') {
      showStatus({ text: m.kind === 'video' ? 'A moderator turned off your camera' : 'A moderator muted you', level: 'info' });
    } else if (m.type === 'unmute-requested' && this.conf.audioMuted) {
      showStatus({
        text: 'A moderator asks you to unmute',
        level: 'info',
        action: { label: 'Unmute', onclick: () => { if (this.conf.audioMuted) this.toggle('audio'); } },
      });
    }
  }

  async copyLink() {
    const url = `${location.origin}/${this.conf.room}`;
    try {
      await navigator.clipboard.writeText(url);
      showStatus({ text: 'Meeting link copied', level: 'info' });
    } catch {
      showStatus({ text: url, level: 'info' });
    }
  }

  render() {
    const c = this.conf;
    const session = c.session;
    const slotOf = new Map();
    c.slots.forEach((pid, i) => { if (pid) slotOf.set(pid, i); });

    const wanted = [['local', null], ...[...c.participants.keys()].map((id) => [id, c.participants.get(id)])];
    const keep = new Set(wanted.map(([id]) => id));
    for (const [id, tile] of this.tiles) {
      if (!keep.has(id)) { tile.destroy(); this.tiles.delete(id); }
    }
    let prev = null;
    for (const [id, p] of wanted) {
      let tile = this.tiles.get(id);
      if (!tile) {
        tile = new Tile({ id: id === 'local' ? (c.me || 'local') : id, local: id === 'local', onBlocked: () => this.onBlocked() });
        this.tiles.set(id, tile);
      }
      if (id === 'local') {
        if (c.me) tile.el.dataset.participant = c.me;
        tile.update({ name: c.name, audioMuted: c.audioMuted, videoMuted: c.videoMuted, stream: c.localStream, slot: null, hand: c.me ? c.hands.indexOf(c.me) + 1 : 0 });
      } else {
        const slot = slotOf.has(id) ? slotOf.get(id) : null;
        const stream = slot !== null && session ? session.slotStream(slot) : null;
        tile.update({ name: p.name, audioMuted: !!p.audioMuted, videoMuted: !!p.videoMuted, stream, slot, hand: c.hands.indexOf(id) + 1 });
      }
      // keep DOM order: local first, then join order
      const expectedNext = prev ? prev.el.nextSibling : this.grid.firstChild;
      if (expectedNext !== tile.el) this.grid.insertBefore(tile.el, expectedNext);
      prev = tile;
    }

    const n = c.participants.size + 1;
    this.count.replaceChildren(
      h('span', { class: 'count-icon', html: icons.people }),
      h('span', { class: 'count-num' }, String(n)),
      h('span', { class: 'sr-only' }, n === 1 ? ' participant' : ' participants'));
    this.count.dataset.count = String(n);
    this.count.setAttribute('aria-label', `${n} ${n === 1 ? 'participant' : 'participants'}`);
    setToggle(this.audioBtn, 'audio', c.audioMuted);
    setToggle(this.videoBtn, 'video', c.videoMuted);
    const raised = c.controls.handRaised;
    this.handBtn.setAttribute('aria-pressed', raised ? 'true' : 'false');
    this.handBtn.classList.toggle('active', raised);
    const handLabel = raised ? 'Lower hand (R)' : 'Raise hand (R)';
    this.handBtn.setAttribute('aria-label', handLabel);
    this.handBtn.title = handLabel;
    const { lobby, locked } = c.roomState;
    this.securityBtn.classList.toggle('secured', lobby || locked);
    const secLabel = `Security options${locked ? ', password set' : ''}${lobby ? ', lobby on' : ''}`;
    this.securityBtn.setAttribute('aria-label', secLabel);
    this.securityBtn.title = secLabel;
    this.peopleBtn.classList.toggle('attention', c.hands.length > 0);
    this.layout();
  }

  layout() {
    const n = this.tiles.size;
    const style = getComputedStyle(this.stage);
    const w = this.stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const hgt = this.stage.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom) - 2;
    if (w <= 0 || hgt <= 0) return;
    const { cols, tileW } = bestLayout(n, w, hgt, GAP);
    this.grid.style.setProperty('--cols', String(cols));
    this.grid.style.setProperty('--tile-w', `${tileW}px`);
    this.grid.style.setProperty('--gap', `${GAP}px`);
    this.grid.dataset.cols = String(cols);
  }

  updateSpeakers() {
    const c = this.conf;
    const session = c.session;
    if (!session) return;
    const now = performance.timeOrigin + performance.now();
    c.slots.forEach((pid, i) => {
      if (!pid) return;
      const tile = this.tiles.get(pid);
      const tr = session.slotTransceivers[i];
      if (!tile || !tr) return;
      let speaking = false;
      try {
        for (const s of tr.audio.receiver.getSynchronizationSources()) {
          if (s.audioLevel > 0.05 && now - s.timestamp < 1000) speaking = true;
        }
      } catch { /* unsupported */ }
      tile.setSpeaking(speaking && !c.participants.get(pid)?.audioMuted);
    });
  }

  destroy() {
    document.removeEventListener('keydown', this._onKey);
    document.removeEventListener('pointerdown', this._onUnblock, true);
    for (const type of CONF_EVENTS) this.conf.removeEventListener(type, this._render);
    this.conf.removeEventListener('moderation', this._onModeration);
    this.conf.removeEventListener('role', this._onRole);
    this.chat.destroy();
    this.people.destroy();
    this.security.destroy();
    this.knocks.destroy();
    this._resizeObs.disconnect();
    clearInterval(this._speakTimer);
    for (const tile of this.tiles.values()) tile.destroy();
    this.tiles.clear();
  }
}
