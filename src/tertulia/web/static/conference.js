// One participation in a room: signalling (join, password, lobby, resume), presence and
// reconnection. Media (offer/answer, bridge channel, slots, mute) is the base class in
// conference-media.js; room controls (role, chat, hands, lobby…) live in controls.js. No DOM.
//
// Events (all CustomEvent):
//   'state'        detail = state: connecting | lobby | joined | reconnecting | left | ended | failed
//   'participants' presence changed (this.participants)
//   'slots'        slot mapping changed (this.slots)
//   'local'        own mute state or local stream changed
//   'media'        media session created/replaced or its connection state changed
//   'status'       detail = {text, level: 'info'|'error'|'', sticky, action}; text '' clears
//   and those of controls.js: 'role', 'room', 'hands', 'chat', 'knocks', 'moderation'

import { SignalClient } from './protocol.js';
import { ConferenceMedia } from './conference-media.js';
import { Controls } from './controls.js';

const MAX_RECONNECTS = 8;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 16000;
const BACKOFF_JITTER = 0.3;
// Join refusals after which the same signalling connection may simply send another `join`.
const RETRY_ON_SAME_SOCKET = new Set(['password-required', 'wrong-password', 'rate-limited', 'bad-resume']);
// Closing with a non-1000/1001 code tells the server we mean to come back (resume grace).
const CLOSE_TO_RESUME = 4001;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Reconnect delay for attempt n (1-based): 1, 2, 4, 8, 16, 16… s, each ±30 % at random. */
export function backoffDelay(attempt, rand = Math.random) {
  const base = Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1), BACKOFF_MAX_MS);
  return Math.round(base * (1 + BACKOFF_JITTER * (2 * rand() - 1)));
}

export class JoinError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'JoinError';
    this.code = code;
  }
}

export class Conference extends ConferenceMedia {
  constructor({ room, name, password = null, token = null, ...media }) {
    super(media);
    this.room = room;
    this.name = name;
    this.password = password || null;
    this.token = token || null;
    this.state = 'idle';
    this.me = null;
    this.resume = null; // secret from the last welcome, for join.resume
    this.knock = null; // own knock id while waiting in the lobby
    this.failure = null; // {code, message} once 'failed'
    this.participants = new Map();
    this.signal = null;
    this.controls = new Controls(this);
    this._spare = null; // open connection whose join was refused: the next join reuses it
    this._closeReason = null;
  }

  get role() { return this.controls.role; }
  get roomState() { return this.controls.roomState; }
  get hands() { return this.controls.hands; }
  get chat() { return this.controls.chat; }
  get knocks() { return this.controls.knocks; }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  }

  /**
   * Connect and join (again, after a refusal: `password` replaces the one sent). Resolves after
   * `welcome` — possibly after waiting in the lobby (state 'lobby'). Throws JoinError with code
   * 'unreachable', 'cancelled', 'lobby-denied' or the server's error code.
   */
  async join({ password } = {}) {
    if (password !== undefined) this.password = password || null;
    this.failure = null;
    this._setState('connecting');
    const welcome = await this._connectAndJoin(null);
    this._setState('joined');
    return welcome;
  }

  async _openSignal() {
    const spare = this._spare;
    this._spare = null;
    if (spare && spare.isOpen) return spare;
    if (spare) spare.close();
    const signal = new SignalClient();
    try {
      await signal.connect(this.signalUrl);
    } catch {
      throw new JoinError('The server cannot be reached.', 'unreachable');
    }
    return signal;
  }

  async _connectAndJoin(resume) {
    const gen = ++this._gen;
    const signal = await this._openSignal();
    if (gen !== this._gen) { signal.close(); throw new JoinError('cancelled', 'cancelled'); }
    this.signal = signal;
    this._wireSignal(signal, gen);
    signal.startKeepalive();
    const msg = { type: 'join', room: this.room, name: this.name, audioMuted: this.audioMuted, videoMuted: this.videoMuted };
    if (this.password) msg.password = this.password;
    if (this.token) msg.token = this.token;
    if (resume) msg.resume = resume;
    const onReply = (m) => { if (m.type === 'welcome' && gen === this._gen) this._applyWelcome(m, gen, !!resume); };
    let reply;
    try {
      reply = await signal.request(msg, { onReply });
    } catch (err) {
      throw this._joinRefused(signal, gen, err);
    }
    if (reply.type === 'lobby-waiting') {
      reply = await this._waitInLobby(signal, gen, reply);
    } else if (reply.type !== 'welcome') {
      signal.close();
      throw new JoinError(`unexpected reply ${reply.type}`, 'bad-reply');
    }
    if (gen !== this._gen) throw new JoinError('cancelled', 'cancelled');
    return reply;
  }

  _joinRefused(signal, gen, err) {
    if (this.signal === signal) this.signal = null;
    if (gen !== this._gen) { signal.close(); return new JoinError('cancelled', 'cancelled'); }
    if (err.code === 'closed' || err.code === 'timeout') {
      signal.close();
      return new JoinError('The server did not answer the join request.', 'unreachable');
    }
    if (RETRY_ON_SAME_SOCKET.has(err.code) && signal.isOpen) this._spare = signal;
    else signal.close();
    return new JoinError(err.message, err.code);
  }

  /** After `lobby-waiting`: resolves with the `welcome` once admitted. */
  _waitInLobby(signal, gen, reply) {
    this.knock = typeof reply.knock === 'string' ? reply.knock : null;
    this._setState('lobby');
    return new Promise((resolve, reject) => {
      const done = () => {
        this.knock = null;
        signal.removeEventListener('welcome', onWelcome);
        signal.removeEventListener('error', onError);
        signal.removeEventListener('close', onClose);
      };
      const onWelcome = (ev) => {
        done();
        if (gen !== this._gen) { reject(new JoinError('cancelled', 'cancelled')); return; }
        this._applyWelcome(ev.detail, gen, false);
        resolve(ev.detail);
      };
      const onError = (ev) => {
        if (ev.detail.code !== 'lobby-denied' && ev.detail.code !== 'lobby-full') return;
        done();
        if (this.signal === signal) this.signal = null;
        signal.close();
        reject(new JoinError(ev.detail.message || 'A moderator declined your request to join.', ev.detail.code));
      };
      const onClose = (ev) => {
        done();
        reject(ev.detail.requested || gen !== this._gen
          ? new JoinError('cancelled', 'cancelled')
          : new JoinError('The connection to the server was lost while waiting to be let in.', 'unreachable'));
      };
      signal.addEventListener('welcome', onWelcome);
      signal.addEventListener('error', onError);
      signal.addEventListener('close', onClose);
    });
  }

  /** Synchronous: applied before any later message of the same batch. */
  _applyWelcome(welcome, gen, resuming) {
    const resumed = resuming && welcome.resumed === true;
    this.me = welcome.participant;
    if (welcome.room) this.room = welcome.room;
    if (typeof welcome.resume === 'string') this.resume = welcome.resume;
    this.participants = new Map();
    for (const p of welcome.participants || []) {
      if (p && p.id && p.id !== this.me) this.participants.set(p.id, { ...p });
    }
    this._nslots = Number.isInteger(welcome.slots) && welcome.slots >= 0 ? welcome.slots : 0;
    // TURN relays with time-limited credentials (docs/protocol.md); used by the next offer.
    if (Array.isArray(welcome.iceServers)) {
      this.iceServers = welcome.iceServers.filter((s) => s && (typeof s.urls === 'string' || Array.isArray(s.urls)));
    }
    const s = this.session;
    const keepMedia = resumed && !!s && !s.closed && s.pc.connectionState === 'connected';
    if (!keepMedia) {
      this._closeMedia();
      this.slots = new Array(this._nslots).fill(null);
      this.screen = null;
      this.dominantSpeaker = null;
      this.speakerOrder = [];
    }
    if (resumed && this._muteDirty) {
      this.signal.send({ type: 'mute', audioMuted: this.audioMuted, videoMuted: this.videoMuted });
    }
    this._muteDirty = false;
    this.controls.onWelcome(welcome, resumed);
    this._emit('participants');
    this._emit('slots');
    this._emit('screen');
    this._startMedia(gen, keepMedia);
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
      if (!live() || !p || !p.id) return;
      if (p.id === this.me) { this.controls.onSelfUpdated(p); return; }
      this.participants.set(p.id, { ...(this.participants.get(p.id) || {}), ...p });
      this._emit('participants');
    });
    signal.addEventListener('participant-left', (ev) => {
      const { id, reason } = ev.detail;
      if (!live()) return;
      if (id === this.me) {
        this._lost('You were disconnected from the meeting.');
        return;
      }
      const gone = this.participants.get(id);
      if (this.participants.delete(id)) this._emit('participants');
      if (gone && reason === 'kicked') this.status(`${gone.name || 'Someone'} was removed from the meeting`);
      if (this.slots.includes(id)) {
        this.slots = this.slots.map((s) => (s === id ? null : s));
        this._emit('slots');
      }
    });
    this.controls.wire(signal, live);
    signal.addEventListener('renegotiate', () => {
      // Our bridge failed: the server forgot our media. Start it over with a fresh offer; the
      // focus places it on another bridge.
      if (!live()) return;
      this.status('Reconnecting audio and video…', 'info', true);
      this._closeMedia();
      this._startMedia(gen, false);
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
      if (m.code === 'lobby-denied' || m.code === 'lobby-full') return; // handled while waiting
      const friendly = {
        'not-moderator': 'Only moderators can do that.',
        'rate-limited': 'Slow down: too many messages.',
        'no-such-participant': 'That participant is no longer in the meeting.',
        'no-such-knock': 'That person is no longer waiting.',
      }[m.code];
      this.status(friendly || `Server error: ${m.message || m.code}`, 'error');
    });
    signal.addEventListener('close', (ev) => {
      if (!live() || ev.detail.requested) return;
      if (this.controls.ended) { this._end(); return; }
      this._lost(this._closeReason || 'Connection to the server lost.');
      this._closeReason = null;
    });
  }

  /**
   * Connection trouble while joined: drop the signalling connection (media is kept), then
   * reconnect with `resume`; the welcome decides whether media must be negotiated again.
   */
  _lost(reason) {
    if (this.state !== 'joined') return;
    this._gen++;
    if (this.signal) this.signal.close(CLOSE_TO_RESUME, 'reconnecting');
    this.signal = null;
    this._setState('reconnecting');
    this._reconnectLoop(reason);
  }

  async _reconnectLoop(reason) {
    for (let attempt = 1; this.state === 'reconnecting'; attempt++) {
      if (attempt > MAX_RECONNECTS) {
        this._fail('connection-lost', 'Connection to the server lost');
        return;
      }
      this.status(`${reason} Reconnecting…`, 'info', true);
      await sleep(backoffDelay(attempt)); // jitter: a restarted server is not hit all at once
      if (this.state !== 'reconnecting') return;
      try {
        await this._rejoin();
      } catch (err) {
        if (this.state === 'left' || this.state === 'ended') return;
        if (err.code === 'unreachable' || err.code === 'cancelled' || err.code === 'rate-limited') {
          this._setState('reconnecting'); // e.g. the lobby connection dropped
          continue;
        }
        this._fail(err.code || 'error', err.message);
        return;
      }
      if (this.state !== 'reconnecting' && this.state !== 'lobby') return;
      this._setState('joined');
      this.status('Reconnected', 'info');
      return;
    }
  }

  async _rejoin() {
    if (this.resume) {
      try {
        return await this._connectAndJoin(this.resume);
      } catch (err) {
        if (err.code !== 'bad-resume') throw err;
        this.resume = null; // too late to resume: join afresh (on the same connection)
      }
    }
    return this._connectAndJoin(null);
  }

  _fail(code, message) {
    this._teardown({ stopTracks: true });
    this.failure = { code, message };
    this._setState('failed');
    this.status(message, 'error', true);
  }

  /** Kicked or the meeting ended (controls.ended says which). */
  _end() {
    if (this.state === 'ended' || this.state === 'left') return;
    this._teardown({ stopTracks: true });
    this.participants = new Map();
    this.slots = [];
    this._setState('ended');
  }

  _teardown({ stopTracks }) {
    this._gen++;
    this._mediaGen++;
    if (this.bridge) this.bridge.close();
    if (this.signal) this.signal.close();
    if (this._spare) this._spare.close();
    if (this.session) this.session.close({ stopTracks });
    this.bridge = null;
    this.signal = null;
    this._spare = null;
    this.session = null;
    this.resume = null;
    this.mediaState = 'closed';
    if (stopTracks) this.localStream.getTracks().forEach((t) => t.stop());
    if (this.screenTrack) this.screenTrack.stop();
    this.screenTrack = null;
    this.sharing = false;
    this.screen = null;
  }

  /** Leave for good (also cancels waiting in the lobby): sends `leave`, closes, stops devices. */
  leave() {
    if (this.signal) this.signal.send({ type: 'leave' });
    else if (this._spare) this._spare.send({ type: 'leave' });
    this._teardown({ stopTracks: true });
    this.participants = new Map();
    this.slots = [];
    this._setState('left');
    this.status('');
  }
}

