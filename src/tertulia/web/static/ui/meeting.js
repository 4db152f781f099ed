// Meeting screen: header with participant count, tile grid, toolbar.
import { h } from './dom.js';
import { icons } from './icons.js';
import { Tile } from './tile.js';
import { bestLayout } from './grid.js';
import { setToggle } from './prejoin.js';
import { showStatus } from './status.js';

const GAP = 8;

export class MeetingView {
  constructor(root, conference, { onLeave }) {
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
    this.el = h('section', { id: 'meeting', class: 'screen meeting' },
      h('header', { class: 'meeting-header' },
        h('div', { class: 'room-info' },
          h('span', { id: 'meeting-room', class: 'room-label' }, conference.room),
          this.copyBtn),
        this.count),
      this.stage,
      h('footer', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Meeting controls' },
        this.audioBtn, this.videoBtn, this.leaveBtn));

    this.audioBtn.addEventListener('click', () => this.toggle('audio'));
    this.videoBtn.addEventListener('click', () => this.toggle('video'));
    this.leaveBtn.addEventListener('click', () => this.onLeave());
    this.copyBtn.addEventListener('click', () => this.copyLink());

    this._onKey = (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
      const t = ev.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      const k = ev.key.toLowerCase();
      if (k === 'm') { ev.preventDefault(); this.toggle('audio'); }
      else if (k === 'v') { ev.preventDefault(); this.toggle('video'); }
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
    for (const type of ['participants', 'slots', 'local', 'media']) conference.addEventListener(type, this._render);
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
        tile.update({ name: c.name, audioMuted: c.audioMuted, videoMuted: c.videoMuted, stream: c.localStream, slot: null });
      } else {
        const slot = slotOf.has(id) ? slotOf.get(id) : null;
        const stream = slot !== null && session ? session.slotStream(slot) : null;
        tile.update({ name: p.name, audioMuted: !!p.audioMuted, videoMuted: !!p.videoMuted, stream, slot });
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
    for (const type of ['participants', 'slots', 'local', 'media']) this.conf.removeEventListener(type, this._render);
    this._resizeObs.disconnect();
    clearInterval(this._speakTimer);
    for (const tile of this.tiles.values()) tile.destroy();
    this.tiles.clear();
  }
}
