// The media half of a Conference: one MediaSession (the one offer/answer), the bridge channel,
// the slot mapping (with the screen slot), dominant speaker, own mute and screen-share state and
// receiver constraints. No DOM.
//
// Events besides conference.js's: 'screen' (who is in the screen slot, this.screen),
// 'sharing' (own screen share on/off, this.sharing), 'speaker' (this.dominantSpeaker,
// this.speakerOrder). Subclassed by Conference (conference.js), which
// owns the signalling connection (`this.signal`, generation `this._gen`) and `_lost()`.

import { BridgeChannel } from './protocol.js';
import { MediaSession, getDisplayTrack, getTrack } from './media.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ConferenceMedia extends EventTarget {
  constructor({ audioMuted = false, videoMuted = false, localStream = null, signalUrl, iceServers = [] }) {
    super();
    this.audioMuted = audioMuted;
    this.videoMuted = videoMuted;
    this.localStream = localStream || new MediaStream();
    this.signalUrl = signalUrl;
    this.iceServers = iceServers;
    this.slots = [];
    this.screen = null; // participant whose screen is in our screen slot
    this.sharing = false; // we share our screen
    this.screenTrack = null;
    this.dominantSpeaker = null;
    this.speakerOrder = []; // most recent speaker first
    this.speakerKnown = false; // the bridge sent `dominant-speaker` at least once
    this.constraints = null; // the last `constraints` sent on the bridge channel
    this._wantedConstraints = null;
    this.session = null;
    this.bridge = null;
    this.mediaState = 'new';
    this._gen = 0; // signalling connection generation (see conference.js)
    this._mediaGen = 0; // media session + bridge channel generation
    this._nslots = 0;
    this._answer = null;
    this._muteDirty = false; // a mute change could not be sent; re-send after resuming
  }

  get pc() { return this.session ? this.session.pc : null; }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  status(text, level = 'info', sticky = false, action = null) {
    this._emit('status', { text, level, sticky, action });
  }

  /** Keep the media of a resumed participant when possible, else negotiate afresh. */
  async _startMedia(gen, keep) {
    if (keep) {
      if (this.bridge && this.bridge.isOpen) return; // media untouched by the signalling drop
      try {
        await this._openBridge(this._mediaGen, this._answer);
        return;
      } catch (err) {
        if (gen !== this._gen) return;
        console.warn('tertulia: bridge channel could not be reopened; renegotiating', err);
        this._closeMedia();
      }
    }
    try {
      await this._negotiate(gen);
    } catch (err) {
      if (gen !== this._gen) return;
      console.warn('tertulia: media negotiation failed', err);
      this.status(`Audio and video are unavailable: ${err.message}`, 'error', true);
    }
  }

  async _negotiate(gen) {
    const mgen = ++this._mediaGen;
    const signal = this.signal;
    const session = new MediaSession({ slots: this._nslots, iceServers: this.iceServers });
    this.session = session;
    this.mediaState = 'new';
    session.addEventListener('localstream', (ev) => {
      if (mgen !== this._mediaGen) return;
      this.localStream = ev.detail;
      this._emit('local');
    });
    session.addEventListener('connectionstatechange', (ev) => this._onMediaState(mgen, ev.detail));
    await session.useLocalStream(this.localStream, { audioMuted: this.audioMuted, videoMuted: this.videoMuted });
    if (this.screenTrack && this.screenTrack.readyState === 'live') await session.setScreenTrack(this.screenTrack);
    this._emit('media');
    const sdp = await session.createOffer();
    const current = () => gen === this._gen && mgen === this._mediaGen;
    if (!current()) return;
    let answer;
    for (let attempt = 0; ; attempt++) {
      try {
        answer = await signal.request({ type: 'offer', sdp }, { timeout: 30000 });
        break;
      } catch (err) {
        if (!current()) return;
        if (['bridge-unavailable', 'no-bridge', 'draining'].includes(err.code) && attempt < 5) {
          this.status('No media server available, retrying…', 'info', true);
          await sleep(3000);
          if (!current()) return;
          continue;
        }
        if (err.code === 'timeout') throw new Error('the media server did not answer');
        throw err;
      }
    }
    if (!current()) return;
    await session.setAnswer(answer.sdp);
    if (!current()) return;
    this._answer = answer;
    this.status('');
    await this._openBridge(mgen, answer);
  }

  async _openBridge(mgen, answer) {
    if (!answer || !answer.bridgeChannel) throw new Error('no bridge channel in answer');
    const url = new URL(answer.bridgeChannel, this.signalUrl);
    if (url.protocol === 'http:') url.protocol = 'ws:';
    if (url.protocol === 'https:') url.protocol = 'wss:';
    const bridge = new BridgeChannel();
    bridge.addEventListener('slots', (ev) => {
      if (mgen === this._mediaGen) this._applySlots(ev.detail.slots, ev.detail.screen);
    });
    bridge.addEventListener('dominant-speaker', (ev) => {
      if (mgen === this._mediaGen) this._applySpeaker(ev.detail);
    });
    bridge.addEventListener('sender-constraints', (ev) => {
      const max = ev.detail && Number.isInteger(ev.detail.maxHeight) ? ev.detail.maxHeight : -1;
      if (mgen === this._mediaGen && this.session) this.session.applySenderConstraints(max);
    });
    bridge.addEventListener('error', (ev) => {
      if (mgen === this._mediaGen) console.warn('tertulia: bridge error', ev.detail);
    });
    bridge.addEventListener('close', (ev) => {
      if (mgen !== this._mediaGen || ev.detail.requested) return;
      if (this.bridge === bridge) this.bridge = null;
      this._lost('Media connection lost.');
    });
    await bridge.connect(url.href);
    if (mgen !== this._mediaGen) { bridge.close(); return; }
    if (this.bridge) this.bridge.close();
    this.bridge = bridge;
    bridge.startKeepalive(15000, 60000);
    // A new channel (maybe a new endpoint) knows nothing yet: tell it our state again.
    if (this.sharing) bridge.sendSharing(true);
    this.constraints = null;
    if (this._wantedConstraints) this.sendConstraints(this._wantedConstraints);
  }

  _applySlots(list, screen) {
    if (screen !== undefined) {
      const id = typeof screen === 'string' && screen ? screen : null;
      if (id !== this.screen) {
        this.screen = id;
        this._emit('screen');
      }
    }
    if (!Array.isArray(list)) return;
    const slots = this.slots.slice();
    for (const entry of list) {
      if (!entry || !Number.isInteger(entry.slot) || entry.slot < 0) continue;
      while (slots.length <= entry.slot) slots.push(null);
      slots[entry.slot] = entry.participant ?? null;
    }
    this.slots = slots;
    this._emit('slots');
  }

  _applySpeaker(msg) {
    const id = typeof msg.participant === 'string' ? msg.participant : null;
    const order = Array.isArray(msg.order) ? msg.order.filter((x) => typeof x === 'string') : [];
    this.speakerKnown = true;
    this.dominantSpeaker = id;
    this.speakerOrder = order;
    this._emit('speaker');
  }

  /**
   * Receiver constraints for the bridge: sent only when they differ from the last ones sent
   * (and again on every new bridge channel). Returns true when something was sent.
   */
  sendConstraints(constraints) {
    this._wantedConstraints = constraints;
    if (this.constraints && JSON.stringify(this.constraints) === JSON.stringify(constraints)) return false;
    if (!this.bridge || !this.bridge.sendConstraints(constraints)) return false;
    this.constraints = constraints;
    return true;
  }

  /** Share the screen: pick it (browser UI), send it on the screen m-line, tell the bridge. */
  async startScreenShare() {
    if (this.sharing || this._screenBusy) return this.sharing;
    if (!this.session) {
      this.status('Screen sharing needs the media connection: try again in a moment.', 'error');
      return false;
    }
    this._screenBusy = true;
    let track = null;
    try {
      track = await getDisplayTrack();
      if (!this.session || this.state === 'left' || this.state === 'ended') { track.stop(); return false; }
      await this.session.setScreenTrack(track);
      this.screenTrack = track;
      track.addEventListener('ended', () => { if (this.screenTrack === track) this.stopScreenShare(); });
      this.sharing = true;
      if (this.bridge) this.bridge.sendSharing(true);
      this._emit('sharing');
      return true;
    } catch (err) {
      if (track && this.screenTrack !== track) track.stop();
      if (!err.cancelled) this.status(err.message, 'error');
      return false;
    } finally {
      this._screenBusy = false;
    }
  }

  /** Stop sharing (the button, or the browser's own "Stop sharing" which ends the track). */
  async stopScreenShare() {
    const track = this.screenTrack;
    if (!track && !this.sharing) return;
    this.screenTrack = null;
    const wasSharing = this.sharing;
    this.sharing = false;
    try {
      if (this.session) await this.session.setScreenTrack(null);
    } catch (err) {
      console.warn('tertulia: could not detach the screen track', err);
    }
    if (track) track.stop();
    if (wasSharing && this.bridge) this.bridge.sendSharing(false);
    if (wasSharing) this._emit('sharing');
  }

  _onMediaState(mgen, state) {
    if (mgen !== this._mediaGen) return;
    this.mediaState = state;
    this._emit('media');
    if (state === 'connected') {
      if (this.state === 'joined') this.status('');
    } else if (state === 'disconnected') {
      if (this.state === 'joined') this.status('Media connection interrupted…', 'info', true);
    } else if (state === 'failed') {
      this._lost('Media connection failed.');
    }
  }

  _closeMedia() {
    this._mediaGen++;
    if (this.bridge) this.bridge.close();
    if (this.session) this.session.close({ stopTracks: false });
    this.bridge = null;
    this.session = null;
    this._answer = null;
    this.mediaState = 'closed';
  }

  _sendMute(fields) {
    if (!this.signal || !this.signal.send({ type: 'mute', ...fields })) this._muteDirty = true;
  }

  async setAudioMuted(muted) {
    try {
      if (this.session) await this.session.setAudioMuted(muted);
      else this.localStream.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    } catch (err) {
      this.status(err.message, 'error');
      return false;
    }
    this.audioMuted = muted;
    this._sendMute({ audioMuted: muted });
    this._emit('local');
    return true;
  }

  /**
   * Use another camera or microphone (deviceId, exact) without renegotiating. Returns true when
   * the device is in use now, false when there was nothing to switch (camera off, no microphone
   * yet: the caller remembers the choice) or it failed (said on the status line).
   */
  async switchDevice(kind, deviceId) {
    try {
      if (this.session) {
        if (!(await this.session.switchDevice(kind, deviceId))) return false;
      } else {
        const old = kind === 'audio' ? this.localStream.getAudioTracks() : this.localStream.getVideoTracks();
        if (!old.length || (kind === 'video' && this.videoMuted)) return false;
        const track = await getTrack(kind, deviceId);
        if (kind === 'audio') track.enabled = !this.audioMuted;
        old.forEach((t) => t.stop());
        this.localStream = new MediaStream([...this.localStream.getTracks().filter((t) => !old.includes(t)), track]);
      }
    } catch (err) {
      this.status(err.message, 'error');
      return false;
    }
    this._emit('local');
    return true;
  }

  async setVideoMuted(muted) {
    try {
      if (this.session) {
        await this.session.setVideoMuted(muted);
      } else if (muted) {
        this.localStream.getVideoTracks().forEach((t) => { t.stop(); this.localStream.removeTrack(t); });
      } else {
        throw new Error('Camera: not connected yet');
      }
    } catch (err) {
      this.status(err.message, 'error');
      return false;
    }
    this.videoMuted = muted;
    this._sendMute({ videoMuted: muted });
    this._emit('local');
    return true;
  }
}
