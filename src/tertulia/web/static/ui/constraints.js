// Receiver constraints: tell the bridge how large we show each participant's camera, so that it
// forwards nothing for tiles nobody can see (scrolled away, covered by a full-screen panel, or
// showing an avatar because the camera is off). Sent on the bridge channel only when changed.
//
// {"type":"constraints","lastN":-1,"onStage":[…],"selected":[…],"defaultMaxHeight":180,
//  "maxHeights":{id: CSS height × devicePixelRatio, or 0},
//  "defaultMaxFrameRate": -1 or the URL's config.maxFrameRate, "maxFrameRates":{id: 15}}
//
// Frame rates: in a large tile view (LARGE_GRID remote videos or more) every tile asks for
// 15 fps, as Jitsi Meet lowers thumbnails' frame rate in large tile views: nobody follows a
// dozen small faces at 30 fps, and the bridge then forwards half the frames (VP8 temporal
// layers) — about a fifth fewer bits, and half the decoding work for this device. Stage and
// small meetings keep the full rate. `#config.maxFrameRate=N` in the URL caps every video
// (a weak device or link).

const MAX_HEIGHT = 4320; // the bridge's upper bound
const LARGE_GRID = 9;
const GRID_FRAME_RATE = 15;
let receiveFrameRate = -1; // config.maxFrameRate, -1: no limit

/** Cap the frame rate of every video received (1-240 fps; anything else: no cap). */
export function setReceiveFrameRate(fps) {
  const n = Number(fps);
  receiveFrameRate = Number.isFinite(n) && n >= 1 && n <= 240 ? n : -1;
  return receiveFrameRate;
}
const RESIZE_DEBOUNCE_MS = 300;
const CHANGE_DEBOUNCE_MS = 60;

export class ConstraintsReporter {
  /**
   * state() → {mode, main, pinned, tiles: Map(key → Tile), covered: bool}; keys of remote
   * tiles are participant ids ('local' is ours).
   */
  constructor(conf, state, stageEl) {
    this.conf = conf;
    this.state = state;
    this.visible = new WeakMap(); // tile element → intersects the viewport (after clipping)
    this.observed = new Set();
    this._timer = 0;
    this.io = new IntersectionObserver((entries) => {
      for (const e of entries) this.visible.set(e.target, e.isIntersecting && e.intersectionRatio > 0);
      this.schedule();
    }, { threshold: [0, 0.01] });
    this.ro = new ResizeObserver(() => this.schedule(RESIZE_DEBOUNCE_MS));
    this.ro.observe(stageEl);
    this._onResize = () => this.schedule(RESIZE_DEBOUNCE_MS);
    window.addEventListener('resize', this._onResize);
  }

  /** Follow the current set of remote tile elements. */
  track(elements) {
    const now = new Set(elements);
    for (const el of this.observed) {
      if (!now.has(el)) { this.io.unobserve(el); this.observed.delete(el); }
    }
    for (const el of now) {
      if (!this.observed.has(el)) { this.io.observe(el); this.observed.add(el); }
    }
  }

  /** Send (if changed) after `delay` ms; a later call within the delay postpones it. */
  schedule(delay = CHANGE_DEBOUNCE_MS) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.flush(), delay);
  }

  compute() {
    const { mode, main, pinned, tiles, covered } = this.state();
    const c = this.conf;
    const onStage = [];
    if (mode === 'stage' && main) {
      const id = main === 'screen' ? c.screen : main === 'local' ? null : main;
      if (id) onStage.push(id);
    }
    const selected = pinned && pinned !== 'local' ? [pinned] : [];
    const dpr = window.devicePixelRatio || 1;
    const maxHeights = {};
    for (const [key, tile] of tiles) {
      if (key === 'local') continue;
      const el = tile.el;
      const rect = el.isConnected ? el.getBoundingClientRect() : null;
      const seen = !covered && !!rect && rect.height > 0 && rect.width > 0 && this.visible.get(el) !== false;
      maxHeights[key] = seen && tile.showsVideo ? Math.min(MAX_HEIGHT, Math.max(1, Math.round(rect.height * dpr))) : 0;
    }
    const maxFrameRates = {};
    const showing = Object.keys(maxHeights).filter((k) => maxHeights[k] > 0);
    if (mode === 'tile' && showing.length >= LARGE_GRID) {
      for (const key of showing) {
        maxFrameRates[key] = receiveFrameRate > 0 ? Math.min(receiveFrameRate, GRID_FRAME_RATE) : GRID_FRAME_RATE;
      }
    }
    return {
      type: 'constraints', lastN: -1, onStage, selected, defaultMaxHeight: 180, maxHeights,
      defaultMaxFrameRate: receiveFrameRate, maxFrameRates,
    };
  }

  flush() {
    clearTimeout(this._timer);
    this._timer = 0;
    this.conf.sendConstraints(this.compute());
  }

  destroy() {
    clearTimeout(this._timer);
    this.io.disconnect();
    this.ro.disconnect();
    window.removeEventListener('resize', this._onResize);
  }
}
