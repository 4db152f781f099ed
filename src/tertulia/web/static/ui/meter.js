// Microphone level meter: WebAudio analyser on the mic track, drawn as a small bar.
import { h } from './dom.js';

export class LevelMeter {
  constructor() {
    this.el = h('div', { id: 'audio-level', class: 'meter', role: 'meter', 'aria-label': 'Microphone level', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' },
      h('div', { class: 'meter-fill' }));
    this.fill = this.el.firstChild;
    this.ctx = null;
    this.source = null;
    this.analyser = null;
    this.raf = 0;
    this.track = null;
    this._resume = () => { if (this.ctx && this.ctx.state === 'suspended') this.ctx.resume().catch(() => {}); };
    document.addEventListener('pointerdown', this._resume, true);
    document.addEventListener('keydown', this._resume, true);
  }

  setTrack(track) {
    if (track === this.track) return;
    this.track = track;
    if (this.source) { this.source.disconnect(); this.source = null; }
    if (!track) { this._draw(0); return; }
    try {
      if (!this.ctx) {
        const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
        if (!Ctx) return;
        this.ctx = new Ctx();
        this.analyser = this.ctx.createAnalyser();
        this.analyser.fftSize = 512;
        this.buf = new Float32Array(this.analyser.fftSize);
      }
      this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
      this.source.connect(this.analyser);
      this._resume();
      if (!this.raf) this._loop();
    } catch (err) {
      console.warn('tertulia: level meter unavailable', err);
    }
  }

  _loop() {
    this.raf = requestAnimationFrame(() => this._loop());
    if (!this.analyser || !this.track) return;
    let level = 0;
    if (this.track.enabled && this.track.readyState === 'live') {
      this.analyser.getFloatTimeDomainData(this.buf);
      let sum = 0;
      for (const v of this.buf) sum += v * v;
      const rms = Math.sqrt(sum / this.buf.length);
      // map roughly -60..0 dBFS to 0..1
      const db = 20 * Math.log10(rms || 1e-8);
      level = Math.max(0, Math.min(1, (db + 60) / 60));
    }
    this._draw(level);
  }

  _draw(level) {
    const pct = Math.round(level * 100);
    this.fill.style.transform = `scaleX(${level})`;
    if (this.el.getAttribute('aria-valuenow') !== String(pct)) this.el.setAttribute('aria-valuenow', String(pct));
  }

  destroy() {
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    document.removeEventListener('pointerdown', this._resume, true);
    document.removeEventListener('keydown', this._resume, true);
    if (this.source) this.source.disconnect();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}
