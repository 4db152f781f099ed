// Meeting screen: header (room, copy link, invite, shortcuts, participant count), the stage
// (tile / stage / lonely layouts, screen share), side panels (chat, participants), toolbar,
// dialogs (security, invite, keyboard shortcuts, settings) and lobby knocks. Also keeps the
// bridge told what we show (receiver constraints) and rates each participant's connection.
import { h } from './dom.js';
import { icons } from './icons.js';
import { Tile } from './tile.js';
import { setToggle } from './prejoin.js';
import { showStatus } from './status.js';
import { ChatPanel } from './chat.js';
import { ParticipantsPanel } from './participants.js';
import { SecurityDialog } from './security.js';
import { KnockList } from './knocks.js';
import { Toolbar, setLabel, setIcon } from './toolbar.js';
import { Stage, chooseLayout, SCREEN } from './stage.js';
import { InviteDialog, lonelyPanel, copyLink } from './invite.js';
import { ShortcutsDialog, bindShortcuts } from './shortcuts.js';
import { ConstraintsReporter } from './constraints.js';
import { QualityMonitor } from './quality.js';
import { preferredDevice } from './devices.js';
import { SettingsDialog } from './settings.js';

const CONF_EVENTS = ['participants', 'slots', 'local', 'media', 'hands', 'role', 'room', 'sharing', 'speaker'];
const SHEETS = '(max-width: 720px)'; // side panels cover the whole screen

function headerChip(id, icon, text, label) {
  const b = h('button', { id, type: 'button', class: 'chip chip-text', 'aria-label': label, title: label, html: icon });
  if (text) b.append(h('span', { class: 'chip-label', 'aria-hidden': 'true' }, text));
  return b;
}

export class MeetingView {
  constructor(root, conference, { onLeave, onPasswordSet }) {
    this.conf = conference;
    this.onLeave = onLeave;
    this.tiles = new Map(); // 'local' or participant id → Tile
    this.pinned = null; // tile key pinned to the stage
    this.override = null; // 'tile' | 'stage' chosen by the user, else automatic
    this.current = { mode: 'lonely', main: null };
    this._blocked = false;
    this._busy = { audio: false, video: false, screen: false };
    this._screenWas = conference.screen;

    this.count = h('span', { id: 'participant-count', class: 'count', title: 'Participants' });
    this.copyBtn = headerChip('copy-link', icons.link, 'Copy link', 'Copy meeting link');
    this.inviteBtn = headerChip('invite-button', icons.invite, 'Invite', 'Invite people');
    this.inviteBtn.setAttribute('aria-haspopup', 'dialog');
    this.helpBtn = headerChip('shortcuts-button', icons.keyboard, null, 'Keyboard shortcuts (?)');
    this.helpBtn.setAttribute('aria-haspopup', 'dialog');
    this.helpBtn.setAttribute('aria-keyshortcuts', 'Shift+?');
    this.toolbar = new Toolbar();
    const b = this.toolbar.buttons;
    if (!navigator.mediaDevices || typeof navigator.mediaDevices.getDisplayMedia !== 'function') b.screen.hidden = true;

    this.chat = new ChatPanel(conference, { onClose: () => this.showPanel(null), onUnread: () => this.renderChatButton() });
    this.people = new ParticipantsPanel(conference, { onClose: () => this.showPanel(null) });
    this.security = new SecurityDialog(conference, { returnFocus: b.security, onPasswordSet });
    this.invite = new InviteDialog(conference);
    this.shortcuts = new ShortcutsDialog();
    this.settings = new SettingsDialog(conference, { onSpeaker: () => this.render() });
    this.knocks = new KnockList(conference);
    this.panels = { chat: this.chat, participants: this.people };
    this.panelButtons = { chat: b.chat, participants: b.people };
    this.stage = new Stage({
      lonely: lonelyPanel(conference.room, { onInvite: () => this.invite.show() }),
      onStopSharing: () => this.conf.stopScreenShare(),
      onScreenClick: () => { if (this.pinned) this.togglePin(this.pinned); },
    });

    this.el = h('section', { id: 'meeting', class: 'screen meeting' },
      h('header', { class: 'meeting-header' },
        h('div', { class: 'room-info' },
          h('span', { id: 'meeting-room', class: 'room-label' }, conference.room),
          this.copyBtn),
        h('div', { class: 'header-actions' }, this.inviteBtn, this.helpBtn, this.count)),
      h('div', { class: 'meeting-body' }, this.stage.el, this.chat.el, this.people.el),
      this.toolbar.el,
      this.knocks.el,
      this.security.el,
      this.invite.el,
      this.shortcuts.el,
      this.settings.el);

    b.audio.addEventListener('click', () => this.toggle('audio'));
    b.video.addEventListener('click', () => this.toggle('video'));
    b.screen.addEventListener('click', () => this.toggleScreen());
    b.leave.addEventListener('click', () => this.onLeave());
    b.hand.addEventListener('click', () => conference.controls.raiseHand());
    b.chat.addEventListener('click', () => this.togglePanel('chat'));
    b.people.addEventListener('click', () => this.togglePanel('participants'));
    b.layout.addEventListener('click', () => this.toggleLayout());
    b.security.addEventListener('click', () => this.security.show());
    b.settings.addEventListener('click', () => this.settings.show(this.toolbar.narrow ? b.more : b.settings));
    this.copyBtn.addEventListener('click', () => copyLink(conference.room));
    this.inviteBtn.addEventListener('click', () => this.invite.show());
    this.helpBtn.addEventListener('click', () => this.shortcuts.show());

    this._unbindKeys = bindShortcuts({
      mic: () => this.toggle('audio'),
      camera: () => this.toggle('video'),
      screen: () => this.toggleScreen(),
      chat: () => this.togglePanel('chat'),
      hand: () => this.conf.controls.raiseHand(),
      layout: () => this.toggleLayout(),
      help: () => this.shortcuts.show(),
    });
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
    this._onScreen = () => {
      // A screen share that starts or stops decides the layout again (stage while it lasts).
      if (this.conf.screen !== this._screenWas) this.override = null;
      this._screenWas = this.conf.screen;
      this.render();
    };
    this._render = () => this.render();
    document.addEventListener('pointerdown', this._onUnblock, true);
    for (const type of CONF_EVENTS) conference.addEventListener(type, this._render);
    conference.addEventListener('screen', this._onScreen);
    conference.addEventListener('moderation', this._onModeration);
    conference.addEventListener('role', this._onRole);
    this.sheets = window.matchMedia(SHEETS);
    this.constraints = new ConstraintsReporter(conference, () => ({
      ...this.current, pinned: this.pinned, tiles: this.tiles, covered: this.sheets.matches && this.panelOpen,
    }), this.stage.el);
    this.quality = new QualityMonitor(conference, (id) => this.tiles.get(id));
    this._resizeObs = new ResizeObserver(() => this.stage.layoutGrid());
    this._resizeObs.observe(this.stage.el);
    this._speakTimer = setInterval(() => this.updateSpeakers(), 400);

    root.replaceChildren(this.el);
    this.render();
  }

  get panelOpen() {
    return Object.values(this.panels).some((p) => p.open);
  }

  onBlocked() {
    if (this._blocked) return;
    this._blocked = true;
    showStatus({ text: 'Click anywhere to turn on the sound', level: 'info', sticky: true });
  }

  async toggle(kind) {
    if (this._busy[kind]) return;
    this._busy[kind] = true;
    const btn = kind === 'audio' ? this.toolbar.buttons.audio : this.toolbar.buttons.video;
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

  async toggleScreen() {
    const btn = this.toolbar.buttons.screen;
    if (btn.hidden) {
      showStatus({ text: 'This browser cannot share its screen.', level: 'error' });
      return;
    }
    if (this._busy.screen) return;
    this._busy.screen = true;
    btn.disabled = true;
    try {
      if (this.conf.sharing) await this.conf.stopScreenShare();
      else await this.conf.startScreenShare();
    } finally {
      this._busy.screen = false;
      btn.disabled = false;
      this.render();
    }
  }

  togglePin(key) {
    this.pinned = this.pinned === key ? null : key;
    this.override = null;
    this.render();
  }

  toggleLayout() {
    if (this.current.mode === 'lonely') {
      showStatus({ text: "You're the only one here: the layout changes once others join.", level: 'info' });
      return;
    }
    if (this.current.mode === 'tile') {
      this.override = 'stage';
    } else {
      this.override = 'tile';
      this.pinned = null;
    }
    this.render();
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
    this.stage.layoutGrid();
    this.constraints.schedule();
  }

  togglePanel(name) {
    this.showPanel(this.panels[name].open ? null : name);
  }

  renderChatButton() {
    const n = this.chat.unread;
    this.toolbar.chatUnread.textContent = n > 99 ? '99+' : String(n);
    this.toolbar.chatUnread.hidden = n === 0;
    const open = this.chat.open;
    setLabel(this.toolbar.buttons.chat, `${open ? 'Close' : 'Open'} chat (C)${n ? `, ${n} unread ${n === 1 ? 'message' : 'messages'}` : ''}`);
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

  renderTiles() {
    const c = this.conf;
    const session = c.session;
    const slotOf = new Map();
    c.slots.forEach((pid, i) => { if (pid) slotOf.set(pid, i); });
    const wanted = [['local', null], ...[...c.participants.entries()]];
    const keep = new Set(wanted.map(([id]) => id));
    for (const [id, tile] of this.tiles) {
      if (!keep.has(id)) { tile.destroy(); this.tiles.delete(id); }
    }
    if (this.pinned && !keep.has(this.pinned)) this.pinned = null;
    const sink = preferredDevice('speaker');
    for (const [id, p] of wanted) {
      let tile = this.tiles.get(id);
      if (!tile) {
        tile = new Tile({
          id: id === 'local' ? (c.me || 'local') : id, local: id === 'local',
          onBlocked: () => this.onBlocked(), onPin: () => this.togglePin(id),
        });
        this.tiles.set(id, tile);
      }
      if (id === 'local') {
        if (c.me) tile.el.dataset.participant = c.me;
        tile.update({ name: c.name, audioMuted: c.audioMuted, videoMuted: c.videoMuted, stream: c.localStream, slot: null, hand: c.me ? c.hands.indexOf(c.me) + 1 : 0 });
      } else {
        const slot = slotOf.has(id) ? slotOf.get(id) : null;
        const stream = slot !== null && session ? session.slotStream(slot) : null;
        tile.update({ name: p.name, audioMuted: !!p.audioMuted, videoMuted: !!p.videoMuted, stream, slot, hand: c.hands.indexOf(id) + 1 });
        tile.setSink(sink);
      }
      tile.setPinned(this.pinned === id);
    }
  }

  render() {
    const c = this.conf;
    this.renderTiles();
    const others = [...c.participants.keys()];
    const sharer = c.screen && c.participants.has(c.screen) ? c.screen : null;
    if (sharer && c.session) this.stage.screenTile.update(c.participants.get(sharer).name, c.session.screenStream);
    else this.stage.screenTile.clear();
    this.current = chooseLayout({
      others, pinned: this.pinned, screen: sharer, override: this.override,
      dominant: c.dominantSpeaker, order: c.speakerOrder,
    });
    const keys = [...(sharer ? [SCREEN] : []), 'local', ...others];
    this.stage.arrange(this.current, keys, (k) => (k === SCREEN ? this.stage.screenTile.el : this.tiles.get(k).el));
    this.stage.setSharing(c.sharing);
    this.el.dataset.layout = this.current.mode;
    this.renderToolbar();
    this.renderSpeaker();
    this.constraints.track([...this.tiles].filter(([k]) => k !== 'local').map(([, t]) => t.el));
    this.constraints.schedule();
  }

  renderToolbar() {
    const c = this.conf;
    const b = this.toolbar.buttons;
    const n = c.participants.size + 1;
    this.count.replaceChildren(
      h('span', { class: 'count-icon', html: icons.people }),
      h('span', { class: 'count-num' }, String(n)),
      h('span', { class: 'sr-only' }, n === 1 ? ' participant' : ' participants'));
    this.count.dataset.count = String(n);
    this.count.setAttribute('aria-label', `${n} ${n === 1 ? 'participant' : 'participants'}`);
    setToggle(b.audio, 'audio', c.audioMuted, 'M');
    setToggle(b.video, 'video', c.videoMuted, 'V');
    const raised = c.controls.handRaised;
    b.hand.setAttribute('aria-pressed', raised ? 'true' : 'false');
    b.hand.classList.toggle('active', raised);
    setLabel(b.hand, raised ? 'Lower hand (R)' : 'Raise hand (R)');
    b.screen.setAttribute('aria-pressed', c.sharing ? 'true' : 'false');
    b.screen.classList.toggle('active', c.sharing);
    setLabel(b.screen, c.sharing ? 'Stop sharing your screen (D)' : 'Share your screen (D)');
    setIcon(b.screen, c.sharing ? icons.screenOff : icons.screen);
    b.layout.setAttribute('aria-pressed', this.current.mode === 'tile' ? 'true' : 'false');
    const { lobby, locked } = c.roomState;
    b.security.classList.toggle('secured', lobby || locked);
    setLabel(b.security, `Security options${locked ? ', password set' : ''}${lobby ? ', lobby on' : ''}`);
    b.people.classList.toggle('attention', c.hands.length > 0);
    this.toolbar.buttons.more.classList.toggle('attention', c.sharing);
  }

  /** The bridge's dominant speaker, once it names one; until then local audio levels. */
  renderSpeaker() {
    const c = this.conf;
    if (!c.speakerKnown) return;
    for (const [key, tile] of this.tiles) {
      const id = key === 'local' ? c.me : key;
      tile.setSpeaking(!!id && id === c.dominantSpeaker);
    }
  }

  updateSpeakers() {
    const c = this.conf;
    const session = c.session;
    if (!session || c.speakerKnown) return;
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
    this._unbindKeys();
    document.removeEventListener('pointerdown', this._onUnblock, true);
    for (const type of CONF_EVENTS) this.conf.removeEventListener(type, this._render);
    this.conf.removeEventListener('screen', this._onScreen);
    this.conf.removeEventListener('moderation', this._onModeration);
    this.conf.removeEventListener('role', this._onRole);
    this.chat.destroy();
    this.people.destroy();
    this.security.destroy();
    this.invite.destroy();
    this.shortcuts.destroy();
    this.settings.destroy();
    this.knocks.destroy();
    this.toolbar.destroy();
    this.constraints.destroy();
    this.quality.destroy();
    this._resizeObs.disconnect();
    clearInterval(this._speakTimer);
    for (const tile of this.tiles.values()) tile.destroy();
    this.tiles.clear();
  }
}
