// Connection quality of each remote participant, as we receive them: packet loss and jitter of
// their slot's inbound audio and video over the last few seconds (getStats every 2 s). Shown as a
// dot on the tile (quality-good | quality-fair | quality-poor).

const INTERVAL_MS = 2000;
const WINDOW = 4; // samples kept per slot: the last ~6 s

/** 'good' | 'fair' | 'poor' from a loss fraction (0..1) and jitter in ms. */
export function qualityLevel(loss, jitterMs) {
  if (loss < 0.02 && jitterMs < 30) return 'good';
  if (loss < 0.08 && jitterMs < 80) return 'fair';
  return 'poor';
}

export class QualityMonitor {
  /** tileOf(participantId) → Tile or undefined. */
  constructor(conf, tileOf) {
    this.conf = conf;
    this.tileOf = tileOf;
    this.history = new Map(); // slot index → {pid, samples: [{recv, lost, jitter}]}
    this.levels = new Map(); // participant id → {level, loss, jitter}
    this._busy = false;
    this.timer = setInterval(() => this.poll(), INTERVAL_MS);
  }

  async poll() {
    const c = this.conf;
    const session = c.session;
    if (this._busy || !session || session.closed) return;
    this._busy = true;
    let stats;
    try {
      stats = await session.getStats();
    } catch {
      return;
    } finally {
      this._busy = false;
    }
    if (session !== c.session) return;
    const byMid = new Map();
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.mid != null) byMid.set(s.mid, s); });
    const levels = new Map();
    c.slots.forEach((pid, i) => {
      const tr = session.slotTransceivers[i];
      if (!pid || !tr) { this.history.delete(i); return; }
      const a = byMid.get(tr.audio.mid) || {};
      const v = byMid.get(tr.video.mid) || {};
      const sample = {
        recv: (a.packetsReceived || 0) + (v.packetsReceived || 0),
        lost: (a.packetsLost || 0) + (v.packetsLost || 0),
        jitter: 1000 * (a.jitter ?? v.jitter ?? 0),
      };
      let h = this.history.get(i);
      if (!h || h.pid !== pid) { h = { pid, samples: [] }; this.history.set(i, h); }
      h.samples.push(sample);
      if (h.samples.length > WINDOW) h.samples.shift();
      if (h.samples.length < 2) return;
      const first = h.samples[0];
      const recv = sample.recv - first.recv;
      const lost = Math.max(0, sample.lost - first.lost);
      if (recv <= 0) {
        // Nothing arrives although the microphone is on: as bad as it gets.
        const p = c.participants.get(pid);
        if (p && !p.audioMuted) levels.set(pid, { level: 'poor', loss: 1, jitter: 0, text: 'no audio arriving' });
        return;
      }
      const loss = lost / (recv + lost);
      const level = qualityLevel(loss, sample.jitter);
      levels.set(pid, { level, loss, jitter: sample.jitter, text: `${(loss * 100).toFixed(loss < 0.1 ? 1 : 0)}% loss, ${Math.round(sample.jitter)} ms jitter` });
    });
    this.levels = levels;
    for (const pid of c.participants.keys()) {
      const tile = this.tileOf(pid);
      const q = levels.get(pid);
      if (tile) tile.setQuality(q ? q.level : null, q ? q.text : '');
    }
  }

  destroy() {
    clearInterval(this.timer);
  }
}
