// Room controls as the client sees them: role, room state (lobby/password), raised hands, chat,
// lobby knocks, and the moderator requests. No DOM. Owned by a Conference (conference.js),
// which calls onWelcome() for every `welcome` and wire() for every signalling connection.
//
// Events, dispatched on the conference (all CustomEvent):
//   'role'        own role changed (conference.role)
//   'room'        roomState changed
//   'hands'       raised-hand queue changed
//   'chat'        detail = {messages: [added…], live: bool} (live = received now, not history)
//   'knocks'      knock list changed (moderators)
//   'moderation'  detail = {type: 'muted-by-moderator'|'unmute-requested', kind?, by}

export const MODERATOR = 'moderator';
const CHAT_KEEP = 500;

export class Controls {
  constructor(conference) {
    this.conf = conference;
    this.role = 'participant';
    this.roomState = { lobby: false, locked: false };
    this.hands = [];
    this.chat = [];
    this.knocks = [];
    this.ended = null; // {code: 'kicked'|'meeting-ended', by, message}
  }

  get isModerator() {
    return this.role === MODERATOR;
  }

  get handRaised() {
    return !!this.conf.me && this.hands.includes(this.conf.me);
  }

  _emit(type, detail) {
    this.conf._emit(type, detail);
  }

  /** Apply the control parts of a `welcome` (synchronously, before later messages). */
  onWelcome(welcome, resumed) {
    const oldRole = this.role;
    this.role = welcome.role === MODERATOR ? MODERATOR : 'participant';
    this._setRoomState(welcome.roomState, false);
    this.hands = Array.isArray(welcome.hands) ? welcome.hands.filter((id) => typeof id === 'string') : [];
    this.knocks = []; // the server sends moderators a `knock` for each waiting knock next
    const added = this._addChat(Array.isArray(welcome.chat) ? welcome.chat : []);
    if (added.length) this._emit('chat', { messages: added, live: !!resumed });
    this._emit('room');
    this._emit('hands');
    this._emit('knocks');
    if (oldRole !== this.role) this._emit('role');
  }

  _setRoomState(state, emit = true) {
    if (!state || typeof state !== 'object') return;
    this.roomState = { lobby: !!state.lobby, locked: !!state.locked };
    if (emit) this._emit('room');
  }

  /** Add messages not seen yet (by id), keep chronological order; returns those added. */
  _addChat(list) {
    const known = new Set(this.chat.map((m) => m.id));
    const added = [];
    for (const m of list) {
      if (!m || typeof m !== 'object' || typeof m.text !== 'string') continue;
      const msg = {
        id: typeof m.id === 'string' ? m.id : `local-${Date.now()}-${Math.random()}`,
        from: m.from ?? null,
        name: typeof m.name === 'string' ? m.name : 'Guest',
        text: m.text,
        at: Number.isFinite(m.at) ? m.at : Date.now(),
        private: m.private === true,
        to: m.to ?? null,
      };
      if (known.has(msg.id)) continue;
      known.add(msg.id);
      added.push(msg);
    }
    if (!added.length) return added;
    this.chat = this.chat.concat(added).sort((a, b) => a.at - b.at); // stable: ties keep order
    if (this.chat.length > CHAT_KEEP) this.chat = this.chat.slice(-CHAT_KEEP);
    return added;
  }

  /** Listen to one signalling connection; `live()` is false once it is superseded. */
  wire(signal, live) {
    const on = (type, fn) => signal.addEventListener(type, (ev) => { if (live()) fn(ev.detail); });
    on('room-updated', (m) => this._setRoomState(m.roomState));
    on('hands', (m) => {
      if (!Array.isArray(m.hands)) return;
      this.hands = m.hands.filter((id) => typeof id === 'string');
      this._emit('hands');
    });
    on('chat', (m) => {
      const added = this._addChat([m]);
      if (added.length) this._emit('chat', { messages: added, live: true });
    });
    on('knock', (m) => {
      const k = m.knock;
      if (!k || typeof k.id !== 'string' || this.knocks.some((x) => x.id === k.id)) return;
      this.knocks = this.knocks.concat([{ id: k.id, name: typeof k.name === 'string' ? k.name : 'Guest' }]);
      this._emit('knocks');
    });
    on('knock-removed', (m) => {
      const before = this.knocks.length;
      this.knocks = this.knocks.filter((k) => k.id !== m.knock);
      if (this.knocks.length !== before) this._emit('knocks');
    });
    on('muted-by-moderator', (m) => {
      const kind = m.kind === 'video' ? 'video' : 'audio';
      // Same path as the toolbar: stop the device and send `mute`.
      if (kind === 'audio') this.conf.setAudioMuted(true);
      else this.conf.setVideoMuted(true);
      this._emit('moderation', { type: 'muted-by-moderator', kind, by: m.by ?? null });
    });
    on('unmute-requested', (m) => {
      this._emit('moderation', { type: 'unmute-requested', by: m.by ?? null });
    });
    // The server closes the connection right after these; never reconnect.
    on('kicked', (m) => {
      const message = typeof m.message === 'string' ? m.message : '';
      this.ended = { code: 'kicked', by: m.by ?? null, byName: this._byName(m.by), message };
      this.conf._end();
    });
    on('meeting-ended', (m) => {
      this.ended = { code: 'meeting-ended', by: m.by ?? null, byName: this._byName(m.by), message: '' };
      this.conf._end();
    });
  }

  /** A `participant-updated` about ourselves (role granted, hand, forced mute, new name). */
  onSelfUpdated(p) {
    if (typeof p.name === 'string' && p.name && p.name !== this.conf.name) {
      this.conf.name = p.name;
      this._emit('local');
    }
    if (p.role && p.role !== this.role) {
      this.role = p.role === MODERATOR ? MODERATOR : 'participant';
      this._emit('role');
    }
  }

  /** Display name of a participant id (ourselves included). */
  nameOf(id) {
    if (!id) return 'Someone';
    if (id === this.conf.me) return this.conf.name;
    const p = this.conf.participants.get(id);
    return p ? p.name || 'Guest' : 'A moderator';
  }

  _byName(id) {
    if (id && id === this.conf.me) return 'You';
    const p = id ? this.conf.participants.get(id) : null;
    return p ? p.name || 'A moderator' : 'A moderator';
  }

  // -- requests (none of these has a reply; failures come back as `error` messages) --------

  _send(msg) {
    const signal = this.conf.signal;
    if (!signal || !signal.send(msg)) {
      this.conf.status('Not connected to the server right now.', 'error');
      return false;
    }
    return true;
  }

  sendChat(text, to = null) {
    const body = String(text || '').trim();
    if (!body) return false;
    const msg = { type: 'chat', text: [...body].slice(0, 2000).join('') };
    if (to) msg.to = to;
    return this._send(msg);
  }

  /**
   * Change the display name (1–64 characters). Shown at once; everyone, we included, then gets
   * `participant-updated` (with the name as the server cleaned it).
   */
  setName(name) {
    const clean = [...String(name || '').trim()].slice(0, 64).join('');
    if (!clean || !this._send({ type: 'set-name', name: clean })) return false;
    this.conf.name = clean;
    this._emit('local');
    return true;
  }

  raiseHand(raised = !this.handRaised) {
    return this._send({ type: 'raise-hand', raised: !!raised });
  }

  admit(knock) { return this._send({ type: 'lobby-admit', knock }); }

  deny(knock, message) {
    const msg = { type: 'lobby-deny', knock };
    if (message) msg.message = String(message).slice(0, 200);
    return this._send(msg);
  }

  setLobby(enabled) { return this._send({ type: 'set-lobby', enabled: !!enabled }); }

  /** password: 1–64 characters, or null to clear. */
  setPassword(password) {
    return this._send({ type: 'set-password', password: password ? String(password).slice(0, 64) : null });
  }

  grantModerator(participant) { return this._send({ type: 'grant-moderator', participant }); }

  muteParticipant(participant, kind = 'audio') {
    return this._send({ type: 'mute-participant', participant, kind });
  }

  muteAll(kind = 'audio') { return this._send({ type: 'mute-all', kind }); }

  askUnmute(participant = null) {
    const msg = { type: 'ask-unmute' };
    if (participant) msg.participant = participant;
    return this._send(msg);
  }

  kick(participant, message) {
    const msg = { type: 'kick', participant };
    if (message) msg.message = String(message).slice(0, 200);
    return this._send(msg);
  }

  endMeeting() { return this._send({ type: 'end-meeting' }); }
}
