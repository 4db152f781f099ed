// In-meeting settings: a modal dialog (id="settings-dialog", from the toolbar's
// id="settings-button") with the display name (id="settings-name", saved by
// id="settings-name-save": `set-name`, remembered like the prejoin name) and the devices:
// camera, microphone and speaker (ids "settings-camera", "settings-mic", "settings-speaker";
// the speaker only where HTMLMediaElement.setSinkId exists), with a camera preview and a mic
// level. Another camera or microphone replaces the track on the sending transceiver (no
// renegotiation) and keeps the mute state; with the camera off (or no microphone open) the
// choice is only remembered, for when it turns on.
import { h, attachStream } from './dom.js';
import { Modal } from './dialog.js';
import { LevelMeter } from './meter.js';
import { icons } from './icons.js';
import { DevicePicker, storeDevice, preferredDevice } from './devices.js';
import { storeName } from './prejoin.js';

const IDS = { video: 'settings-camera', audio: 'settings-mic', speaker: 'settings-speaker' };

export class SettingsDialog {
  /** onSpeaker(): the output device changed (apply setSinkId to every remote media element). */
  constructor(conf, { onSpeaker }) {
    this.conf = conf;
    this.onSpeaker = onSpeaker;
    this.name = h('input', {
      id: 'settings-name', type: 'text', maxlength: '64', autocomplete: 'nickname', spellcheck: 'false',
      placeholder: 'Your name', 'aria-describedby': 'settings-name-note',
    });
    this.saveBtn = h('button', { id: 'settings-name-save', type: 'submit', class: 'btn btn-primary' }, 'Save');
    this.nameNote = h('p', { id: 'settings-name-note', class: 'settings-note', 'aria-live': 'polite' });
    this.name.addEventListener('input', () => this.renderName(false));
    const nameForm = h('form', {
      class: 'settings-name-row',
      onsubmit: (ev) => { ev.preventDefault(); this.saveName(); },
    }, this.name, this.saveBtn);

    this.preview = h('video', { id: 'settings-preview', autoplay: true, playsinline: true, class: 'mirror' });
    this.preview.muted = true;
    this.preview.setAttribute('muted', '');
    this.camOff = h('div', { class: 'settings-cam-off' }, h('span', { html: icons.camOff }), 'Camera off');
    this.camHint = h('p', { id: 'settings-camera-hint', class: 'settings-note' },
      'Used when you turn your camera on.');
    this.frame = h('div', { class: 'settings-preview' }, this.preview, this.camOff);

    this.meter = null; // a LevelMeter (its own AudioContext) only while the dialog is open
    this.meterWrap = h('div', { class: 'meter-wrap settings-meter' }, h('span', { class: 'meter-icon', html: icons.mic }));
    this.picker = new DevicePicker({
      ids: IDS,
      id: 'settings-devices',
      current: (kind) => this.deviceOf(kind),
      onSelect: (kind, id, select) => this.choose(kind, id, select),
    });
    this.picker.rows.video.append(this.camHint);
    this.picker.rows.audio.append(this.meterWrap);
    const devices = h('section', { class: 'dialog-section', 'aria-labelledby': 'settings-devices-title' },
      h('h3', { id: 'settings-devices-title', class: 'dialog-subtitle' }, 'Camera and audio'),
      h('div', { class: 'settings-devices' }, this.frame, this.picker.el));
    if (!window.isSecureContext) {
      devices.replaceChildren(devices.firstChild,
        h('p', { class: 'dialog-text' }, 'Camera and microphone need HTTPS (or localhost).'));
    }

    this.modal = new Modal({
      id: 'settings-dialog', title: 'Settings',
      body: [
        h('section', { class: 'dialog-section' },
          h('label', { class: 'dialog-subtitle settings-label', for: 'settings-name' }, 'Your name'),
          nameForm,
          this.nameNote),
        devices,
      ],
    });
    this.el = this.modal.el;
    this._local = () => { this.renderMedia(); this.renderName(false); };
    this.el.addEventListener('close', () => {
      if (this.el.open) return; // opened again before this event came
      conf.removeEventListener('local', this._local);
      this._dropMeter();
      attachStream(this.preview, null);
    });
  }

  get open() { return this.modal.open; }

  /** returnTo: where focus goes on close (the More button when this one sat in its menu). */
  show(returnTo = null) {
    if (this.modal.open) return;
    this.name.value = this.conf.name || '';
    this.renderName(true);
    this.conf.addEventListener('local', this._local);
    this._dropMeter();
    this.meter = new LevelMeter();
    this.meter.el.id = 'settings-audio-level';
    this.meterWrap.append(this.meter.el);
    this.modal.show(this.name, returnTo);
    this.renderMedia();
    this.picker.refresh();
  }

  close() { this.modal.close(); }

  _dropMeter() {
    if (!this.meter) return;
    this.meter.destroy();
    this.meter.el.remove();
    this.meter = null;
  }

  /** Save enabled only for a new, non-empty name; clear: forget the last note. */
  renderName(clear) {
    const value = this.name.value.trim();
    this.saveBtn.disabled = !value || value === this.conf.name;
    if (clear) this.say('');
  }

  say(text, error = false) {
    this.nameNote.textContent = text;
    this.nameNote.classList.toggle('error', error);
  }

  saveName() {
    const name = this.name.value.trim();
    if (!name) {
      this.say('Enter a name.', true);
      return;
    }
    if (!this.conf.controls.setName(name)) {
      this.say('Not connected to the server right now: try again in a moment.', true);
      return;
    }
    storeName(this.conf.name);
    this.name.value = this.conf.name;
    this.renderName(false);
    this.say(`Saved. Others now see you as “${this.conf.name}”.`);
  }

  _track(kind) {
    const s = this.conf.localStream;
    const track = (kind === 'audio' ? s.getAudioTracks() : s.getVideoTracks())[0];
    return track && track.readyState === 'live' ? track : null;
  }

  deviceOf(kind) {
    const track = this._track(kind);
    return (track && track.getSettings().deviceId) || preferredDevice(kind);
  }

  renderMedia() {
    if (!this.open || !this.meter) return;
    const video = this.conf.videoMuted ? null : this._track('video');
    this.frame.classList.toggle('show-video', !!video);
    this.camHint.hidden = !this.conf.videoMuted;
    attachStream(this.preview, video ? this.conf.localStream : null);
    const audio = this._track('audio');
    this.meter.setTrack(audio);
    this.meter.el.classList.toggle('muted', this.conf.audioMuted || !audio);
  }

  async choose(kind, id, select) {
    if (kind === 'speaker') {
      storeDevice('speaker', id);
      this.onSpeaker();
      return;
    }
    // Camera off, or no microphone open: remember it for the next time it turns on.
    if (!this._track(kind) || (kind === 'video' && this.conf.videoMuted)) {
      storeDevice(kind, id);
      return;
    }
    select.disabled = true;
    try {
      if (await this.conf.switchDevice(kind, id)) storeDevice(kind, id);
    } finally {
      select.disabled = false;
      this.renderMedia();
      this.picker.refresh();
    }
  }

  destroy() {
    this.conf.removeEventListener('local', this._local);
    this._dropMeter();
    this.picker.destroy();
    this.modal.destroy();
  }
}
