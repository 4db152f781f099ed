// One participation in a room: signalling, the one offer/answer, the bridge channel, presence,
// slots and reconnection. No DOM.
//
// Events (all CustomEvent):
//   'state'        detail = state: connecting | joined | reconnecting | left | failed
//   'participants' presence changed (this.participants)
//   'slots'        slot mapping changed (this.slots)
//   'local'        own mute state or local stream changed
//   'media'        media session created/replaced or its connection state changed
//   'status'       detail = {text, level: 'info'|'error'|'', sticky}; text '' clears

import { SignalClient, BridgeChannel } from './protocol.js';
import { MediaSession } from './media.js';

const MAX_RECONNECTS = 6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class JoinError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'JoinError';
    this.code = code;
  }
}

export class Conference extends EventTarget {
  constructor({ room, name, audioMuted = false, videoMuted = false, localStream = null, signalUrl, iceServers = [] }) {
    super();
    this.room = room;
    this.name = name;
    this.audioMuted = audioMuted;
    this.videoMuted = videoMuted;
    this.localStream = localStream || new MediaStream();
    this.signalUrl = signalUrl;
    this.iceServers = iceServers;
    this.state = 'idle';
    this.me = null;
    this.participants = new Map();
    this.slots = [];
    this.session = null;
    this.signal = null;
    this.bridge = null;
    this.mediaState = 'new';
    this._gen = 0;
    this._attempts = 0;
    this._closeReason = null;
  }

  get pc() {
    return this.session ? this.session.pc : null;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  }

  status(text, level = 'info', sticky = false) {
    this._emit('status', { text, level, sticky });
  }

  /** Connect and join. Resolves after `welcome`; throws JoinError (code 'unreachable' or the server's). */
  async join() {
    this._setState('connecting');
    await this._connectAndJoin();
    this._setState('joined');
  }

  async _connectAndJoin() {
    const gen = ++this._gen;
    const signal = new SignalClient();
    try {
      await signal.connect(this.signalUrl);
    } catch (err) {
      throw new JoinError('The server cannot be reached.', 'unreachable');
    }
    if (gen !== this._gen) { signal.close(); throw new JoinError('cancelled', 'cancelled'); }
    this.signal = signal;
    this._wireSignal(signal, gen);
    let welcome;
    try {
      welcome = await signal.request({
        type: 'join', room: this.room, name: this.name,
        audioMuted: this.audioMuted, videoMuted: this.videoMuted,
      });
    } catch (err) {
      signal.close();
      if (err.code === 'closed' || err.code === 'timeout') {
        throw new JoinError('The server did not answer the join request.', 'unreachable');
      }
      throw new JoinError(err.message, err.code);
    }
    if (welcome.type !== 'welcome') {
      signal.close();
      throw new JoinError(`unexpected reply ${welcome.type}`, 'bad-reply');
    }
    signal.startKeepalive();
    this.me = welcome.participant;
    if (welcome.room) this.room = welcome.room;
    this.participants = new Map();
    for (const p of welcome.participants || []) {
      if (p && p.id && p.id !== this.me) this.participants.set(p.id, { ...p });
    }
    const nslots = Number.isInteger(welcome.slots) && welcome.slots >= 0 ? welcome.slots : 0;
    this.slots = new Array(nslots).fill(null);
    this._emit('participants');
    this._emit('slots');
    this._negotiate(gen, nslots).catch((err) => {
      if (gen !== this._gen) return;
      console.warn('tertulia: media negotiation failed', err);
      this.status(`Audio and video are unavailable: ${err.message}`, 'error', true);
    });
  }

  _wireSignal(signal, gen) {
    const live = () => gen === this._gen;
    signal.addEventListener('participant-joined', (ev) => {
      const p = ev.detail.participant;
      if (!live() || !p || !p.id || p.id === this.me) return;
      this.participants.set(p.id, { ...p });
      this._emit('participants');
    });
    signal.addEventListener('participant-updated', (ev) => {
      const p = ev.detail.participant;
      if (!live() || !p || !p.id || p.id === this.me) return;
      this.participants.set(p.id, { ...(this.participants.get(p.id) || {}), ...p });
      this._emit('participants');
    });
    signal.addEventListener('participant-left', (ev) => {
      const id = ev.detail.id;
      if (!live()) return;
      if (id === this.me) {
        this._lost('You were disconnected from the meeting.');
        return;
      }
      if (this.participants.delete(id)) this._emit('participants');
      const i = this.slots.indexOf(id);
      if (i >= 0) {
        this.slots = this.slots.map((s) => (s === id ? null : s));
        this._emit('slots');
      }
    });
    signal.addEventListener('error', (ev) => {
      if (!live()) return;
      const m = ev.detail;
      if (m.code === 'media-timeout' || m.code === 'dtls-failed') {
        // The bridge dropped our media; the server closes the socket next and we rejoin.
        this._closeReason = 'Media connection lost.';
        this.status(`Media connection lost: ${m.message || m.code}`, 'error', true);
        return;
      }
      this.status(`Server error: ${m.message || m.code}`, 'error');
    });
    signal.addEventListener('close', (ev) => {
      if (!live() || ev.detail.requested) return;
      this._lost(this._closeReason || 'Connection to the server lost.');
      this._closeReason = null;
    });
  }

  async _negotiate(gen, nslots) {
    const session = new MediaSession({ slots: nslots, iceServers: this.iceServers });
    this.session = session;
    session.addEventListener('localstream', (ev) => {
      this.localStream = ev.detail;
      this._emit('local');
    });
    session.addEventListener('connectionstatechange', (ev) => this._onMediaState(gen, ev.detail));
    await session.useLocalStream(this.localStream, { audioMuted: this.audioMuted, videoMuted: this.videoMuted });
    this._emit('media');
    const sdp = await session.createOffer();
    if (gen !== this._gen) return;
    let answer;
    for (let attempt = 0; ; attempt++) {
      try {
        answer = await this.signal.request({ type: 'offer', sdp }, { timeout: 30000 });
        break;
      } catch (err) {
        if (gen !== this._gen) return;
        if (err.code === 'bridge-unavailable' && attempt < 5) {
          this.status('No media server available, retrying…', 'info', true);
          await sleep(3000);
          if (gen !== this._gen) return;
          continue;
        }
        if (err.code === 'timeout') throw new Error('the media server did not answer');
        throw err;
      }
    }
    if (gen !== this._gen) return;
    await session.setAnswer(answer.sdp);
    if (gen !== this._gen) return;
    this.status('');
    await this._openBridge(gen, answer);
  }

  async _openBridge(gen, answer) {
    if (!answer.bridgeChannel) throw new Error('no bridge channel in answer');
    const url = new URL(answer.bridgeChannel, this.signalUrl);
    if (url.protocol === 'http:') url.protocol = 'ws:';
    if (url.protocol === 'https:') url.protocol = 'wss:';
    const bridge = new BridgeChannel();
    bridge.addEventListener('slots', (ev) => {
      if (gen !== this._gen) return;
      this._applySlots(ev.detail.slots);
    });
    bridge.addEventListener('error', (ev) => {
      if (gen !== this._gen) return;
      console.warn('tertulia: bridge error', ev.detail);
    });
    bridge.addEventListener('close', (ev) => {
      if (gen !== this._gen || ev.detail.requested) return;
      this._lost('Media connection lost.');
    });
    await bridge.connect(url.href);
    if (gen !== this._gen) { bridge.close(); return; }
    this.bridge = bridge;
    bridge.startKeepalive(15000, 60000);
  }

  _applySlots(list) {
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

  _onMediaState(gen, state) {
    if (gen !== this._gen) return;
    this.mediaState = state;
    this._emit('media');
    if (state === 'connected') {
      this._attempts = 0;
      this.status('');
    } else if (state === 'disconnected') {
      this.status('Media connection interrupted…', 'info', true);
    } else if (state === 'failed') {
      this._lost('Media connection failed.');
    }
  }

  /** Tear down the current connection and try to rejoin with backoff. */
  _lost(reason) {
    if (this.state !== 'joined') return;
    this._teardown({ stopTracks: false });
    this._setState('reconnecting');
    this._reconnectLoop(reason);
  }

  async _reconnectLoop(reason) {
    while (this.state === 'reconnecting') {
      this._attempts++;
      if (this._attempts > MAX_RECONNECTS) {
        this._teardown({ stopTracks: true });
        this._setState('failed');
        this.status('Connection to the server lost', 'error', true);
        return;
      }
      this.status(`${reason} Reconnecting…`, 'info', true);
      await sleep(Math.min(1000 * 2 ** (this._attempts - 1), 8000));
      if (this.state !== 'reconnecting') return;
      try {
        await this._connectAndJoin();
        if (this.state !== 'reconnecting') return;
        this._setState('joined');
        this.status('Reconnected', 'info');
        return;
      } catch (err) {
        if (err.code && err.code !== 'unreachable' && err.code !== 'cancelled') {
          this._teardown({ stopTracks: true });
          this._setState('failed');
          this.status(`Could not rejoin: ${err.message}`, 'error', true);
          return;
        }
      }
    }
  }

  _teardown({ stopTracks }) {
    this._gen++;
    if (this.bridge) this.bridge.close();
    if (this.signal) this.signal.close();
    if (this.session) this.session.close({ stopTracks });
    this.bridge = null;
    this.signal = null;
    this.session = null;
    this.mediaState = 'closed';
    if (stopTracks) this.localStream.getTracks().forEach((t) => t.stop());
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
    if (this.signal) this.signal.send({ type: 'mute', audioMuted: muted });
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
    if (this.signal) this.signal.send({ type: 'mute', videoMuted: muted });
    this._emit('local');
    return true;
  }

  /** Leave for good: sends `leave`, closes everything, stops the devices. */
  leave() {
    if (this.signal) this.signal.send({ type: 'leave' });
    this._teardown({ stopTracks: true });
    this.participants = new Map();
    this.slots = [];
    this._setState('left');
    this.status('');
  }
}
