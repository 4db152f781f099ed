// Tertulia wire protocol: JSON over WebSocket. No DOM beyond WebSocket/EventTarget.
// See docs/protocol.md.

/**
 * ws:// or wss:// + host + "/ws?room=<room>" for a Location-like object. The front (HAProxy)
 * routes on the lower-cased `room` parameter so that a room lives on one shard; the server
 * refuses a join for any other room.
 */
export function signalUrl(location = globalThis.location, room = null) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = room ? `?room=${encodeURIComponent(String(room).toLowerCase())}` : '';
  return `${scheme}//${location.host}/ws${query}`;
}

/** An `error` message received as the reply to a request. */
export class ProtocolError extends Error {
  constructor(msg) {
    super(msg.message || msg.code || 'error');
    this.name = 'ProtocolError';
    this.code = msg.code || 'error';
    this.ref = msg.ref;
    this.detail = msg;
  }
}

/** The request got no reply in time, or the socket closed before one came. */
export class RequestError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'RequestError';
    this.code = code;
  }
}

/**
 * One JSON-over-WebSocket connection.
 * - connect(url) resolves once open (rejects on failure or timeout).
 * - request(msg) sets an incrementing `id` and resolves with the message whose `ref` matches
 *   (rejects with ProtocolError for an `error` reply). Replies that settle a request are NOT
 *   dispatched as events as well.
 * - every other incoming message is dispatched as a CustomEvent named after its `type`
 *   (detail = the message), plus a generic 'message' event.
 * - a `batch` ({type:'batch', messages:[…]}) is unpacked: each inner message is handled in
 *   order exactly as if it had arrived alone (reply matching included).
 * - 'close' (detail {code, reason, wasClean, requested}) when the socket closes.
 */
class JsonChannel extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.url = null;
    this._nextId = 1;
    this._pending = new Map();
    this._closeRequested = false;
    this._keepalive = null;
    this.lastReceived = 0;
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  connect(url, { timeout = 10000 } = {}) {
    this.url = String(url);
    return new Promise((resolve, reject) => {
      let settled = false;
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        reject(new RequestError(`cannot open ${this.url}: ${err.message}`, 'connect-failed'));
        return;
      }
      this.ws = ws;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        try { ws.close(); } catch { /* ignore */ }
        reject(new RequestError('connection timed out', 'connect-timeout'));
      }, timeout);
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.lastReceived = Date.now();
        resolve(this);
      };
      ws.onerror = () => { /* followed by close */ };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        this._stopKeepalive();
        if (!settled) {
          settled = true;
          reject(new RequestError('connection failed', 'connect-failed'));
          return;
        }
        this._failPending(new RequestError('connection closed', 'closed'));
        this.dispatchEvent(new CustomEvent('close', {
          detail: { code: ev.code, reason: ev.reason, wasClean: ev.wasClean, requested: this._closeRequested },
        }));
      };
      ws.onmessage = (ev) => this._onMessage(ev.data);
    });
  }

  _onMessage(data) {
    this.lastReceived = Date.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('tertulia: ignoring non-JSON frame');
      return;
    }
    this._handle(msg, 0);
  }

  /** One message, as if received alone; a `batch` is unpacked and each inner one handled in order. */
  _handle(msg, depth) {
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
    if (msg.type === 'batch') {
      if (!Array.isArray(msg.messages) || depth > 4) return;
      for (const inner of msg.messages) {
        if (this._closeRequested) return; // a handler closed the channel
        this._handle(inner, depth + 1);
      }
      return;
    }
    if (msg.ref !== undefined && msg.ref !== null && this._pending.has(msg.ref)) {
      const p = this._pending.get(msg.ref);
      this._pending.delete(msg.ref);
      clearTimeout(p.timer);
      if (msg.type === 'error') {
        p.reject(new ProtocolError(msg));
      } else {
        // Synchronous hook: lets the caller apply the reply before the next message of the
        // same batch is dispatched (a promise continuation would only run after the batch).
        if (p.onReply) {
          try { p.onReply(msg); } catch (err) { console.error('tertulia: reply handler failed', err); }
        }
        p.resolve(msg);
      }
      return;
    }
    this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
    this.dispatchEvent(new CustomEvent('message', { detail: msg }));
  }

  _failPending(err) {
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this._pending.clear();
  }

  /** Send a message; returns false when the socket is not open. */
  send(msg) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Send with a fresh `id`; resolves with the reply carrying that `ref`. `onReply(reply)`, when
   * given, runs synchronously on a non-error reply, before any later message is dispatched.
   */
  request(msg, { timeout = 15000, onReply = null } = {}) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(new RequestError('not connected', 'closed'));
        return;
      }
      const timer = setTimeout(() => {
        if (this._pending.delete(id)) reject(new RequestError(`no reply to ${msg.type}`, 'timeout'));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer, onReply });
      this.ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  /**
   * Send {type:'ping'} every `interval` ms; if nothing at all was received for `deadAfter` ms
   * the socket is closed (which dispatches 'close' with requested=false).
   */
  startKeepalive(interval = 15000, deadAfter = 45000) {
    this._stopKeepalive();
    this._keepalive = setInterval(() => {
      if (!this.isOpen) return;
      if (Date.now() - this.lastReceived > deadAfter) {
        try { this.ws.close(4000, 'keepalive timeout'); } catch { /* ignore */ }
        return;
      }
      this.send({ type: 'ping' });
    }, interval);
  }

  _stopKeepalive() {
    if (this._keepalive) clearInterval(this._keepalive);
    this._keepalive = null;
  }

  close(code = 1000, reason = '') {
    this._closeRequested = true;
    this._stopKeepalive();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      try { this.ws.close(code, reason); } catch { /* ignore */ }
    }
  }
}

/** Signalling channel (/ws): join, presence, mute, the one offer/answer, controls, chat. */
export class SignalClient extends JsonChannel {}

/**
 * Bridge channel (/bridge/ws/{conference}/{endpoint}?token=T). In: `slots` (with `screen`),
 * `dominant-speaker`. Out: `sharing`, `constraints`.
 */
export class BridgeChannel extends JsonChannel {
  /** {"type":"sharing","screen":bool}: our screen m-line started (true) or stopped sending. */
  sendSharing(screen) {
    return this.send({ type: 'sharing', screen: !!screen });
  }

  /** {"type":"constraints", lastN, onStage, selected, defaultMaxHeight, maxHeights}. */
  sendConstraints(constraints) {
    return this.send({ ...constraints, type: 'constraints' });
  }
}
