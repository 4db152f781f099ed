// One participant tile: video, avatar, name, mute icons, raised hand, pin button and (remote
// tiles) a connection quality dot. Clicking the tile (or its pin button) calls onPin().
import { h, initials, hueFor, attachStream } from './dom.js';
import { icons } from './icons.js';

export class Tile {
  constructor({ id, local = false, onBlocked, onPin }) {
    this.id = id;
    this.local = local;
    this.onBlocked = onBlocked;
    this.video = h('video', { autoplay: true, playsinline: true });
    this.video.setAttribute('autoplay', '');
    this.video.setAttribute('playsinline', '');
    if (local) {
      this.video.setAttribute('muted', '');
      this.video.muted = true;
      this.video.classList.add('mirror');
    }
    this.avatar = h('div', { class: 'avatar' });
    this.nameEl = h('span', { class: 'tile-name' });
    this.audioIcon = h('span', { class: 'tile-icon icon-audio-muted', title: 'Microphone muted', html: icons.micOff });
    this.videoIcon = h('span', { class: 'tile-icon icon-video-muted', title: 'Camera off', html: icons.camOff });
    this.handPos = h('span', { class: 'tile-hand-pos' });
    this.hand = h('span', { class: 'tile-hand', role: 'img', hidden: true }, h('span', { html: icons.hand }), this.handPos);
    this.pinBtn = h('button', { type: 'button', class: 'chip tile-pin', 'aria-pressed': 'false', html: icons.pin });
    this.quality = local ? null : h('span', { class: 'tile-quality', role: 'img', hidden: true });
    this.el = h('div', { class: 'tile', role: 'group', 'data-participant': id, 'data-local': local ? 'true' : null },
      this.video,
      h('div', { class: 'avatar-layer' }, this.avatar),
      this.hand,
      this.pinBtn,
      h('div', { class: 'tile-label' }, this.quality, this.audioIcon, this.videoIcon, this.nameEl));
    this._name = null;
    this._sink = '';
    this.pinned = false;
    if (onPin) {
      this.pinBtn.addEventListener('click', (ev) => { ev.stopPropagation(); onPin(); });
      this.el.addEventListener('click', (ev) => { if (!ev.target.closest('button')) onPin(); });
    }
  }

  get label() {
    return this._name || '';
  }

  /** Whether the tile shows video now (not the avatar). */
  get showsVideo() {
    return this.el.classList.contains('show-video');
  }

  setPinned(on) {
    this.pinned = on;
    this.el.classList.toggle('pinned', on);
    this.pinBtn.setAttribute('aria-pressed', on ? 'true' : 'false');
    const name = this._name || 'this participant';
    const label = on ? `Unpin ${name}` : `Pin ${name} to the stage`;
    this.pinBtn.setAttribute('aria-label', label);
    this.pinBtn.title = label;
  }

  /** level: 'good' | 'fair' | 'poor' | null (unknown: no dot). */
  setQuality(level, text = '') {
    if (!this.quality) return;
    for (const l of ['good', 'fair', 'poor']) this.quality.classList.toggle(`quality-${l}`, level === l);
    this.el.dataset.quality = level || '';
    this.quality.hidden = !level;
    const label = level ? `Connection ${level}${text ? ` (${text})` : ''}` : '';
    this.quality.setAttribute('aria-label', label);
    this.quality.title = label;
  }

  /** Play remote audio on this output device (setSinkId, where supported). */
  setSink(id) {
    const sink = id || '';
    if (this.local || sink === this._sink || typeof this.video.setSinkId !== 'function') return;
    this._sink = sink;
    this.video.setSinkId(sink).catch((err) => console.warn('tertulia: cannot use that speaker', err));
  }

  /** {name, audioMuted, videoMuted, stream (MediaStream|null), slot (int|null), hand (queue position, 0 = none)} */
  update({ name, audioMuted, videoMuted, stream, slot, hand = 0 }) {
    const label = this.local ? `${name || 'Me'} (you)` : name || 'Guest';
    if (this._name !== label) {
      this._name = label;
      this.nameEl.textContent = label;
      this.avatar.textContent = initials(name || (this.local ? 'Me' : 'Guest'));
      this.avatar.style.setProperty('--hue', hueFor(this.local ? name : this.id));
      this.el.setAttribute('aria-label', label);
      this.setPinned(this.pinned);
    }
    const d = this.el.dataset;
    d.audioMuted = audioMuted ? 'true' : 'false';
    d.videoMuted = videoMuted ? 'true' : 'false';
    if (this.local) delete d.slot;
    else d.slot = slot === null || slot === undefined ? '' : String(slot);
    if (hand) {
      d.hand = String(hand);
      this.handPos.textContent = String(hand);
      this.hand.title = `Hand raised (${hand === 1 ? 'first' : `#${hand}`} in line)`;
      this.hand.setAttribute('aria-label', this.hand.title);
    } else {
      delete d.hand;
    }
    this.hand.hidden = !hand;
    this.audioIcon.hidden = !audioMuted;
    this.videoIcon.hidden = !videoMuted;
    const hasVideo = !!stream && !videoMuted && (!this.local || stream.getVideoTracks().length > 0);
    this.el.classList.toggle('show-video', hasVideo);
    this.el.classList.toggle('no-slot', !this.local && (slot === null || slot === undefined));
    // Remote audio plays through this same element, so keep the stream even when the camera is off.
    const src = this.local ? (hasVideo ? stream : null) : stream || null;
    if (this.video.srcObject !== src) attachStream(this.video, src, this.onBlocked);
  }

  replay() {
    if (this.video.srcObject && this.video.paused) attachStream(this.video, this.video.srcObject, this.onBlocked);
  }

  setSpeaking(on) {
    this.el.classList.toggle('speaking', on);
  }

  destroy() {
    this.video.srcObject = null;
    this.el.remove();
  }
}
