// Camera, microphone and speaker choice: remembered in localStorage, offered on the prejoin
// screen as <select id="camera-select">, "mic-select" and "speaker-select" (the speaker only
// where the browser can route audio: HTMLMediaElement.setSinkId).
import { h } from './dom.js';
import { setPreferredDevices } from '../media.js';

const KEYS = { video: 'tertulia.camera', audio: 'tertulia.mic', speaker: 'tertulia.speaker' };

export function preferredDevice(kind) {
  try { return localStorage.getItem(KEYS[kind]) || null; } catch { return null; }
}

export function storeDevice(kind, id) {
  try {
    if (id) localStorage.setItem(KEYS[kind], id);
    else localStorage.removeItem(KEYS[kind]);
  } catch { /* private mode */ }
  if (kind !== 'speaker') setPreferredDevices({ [kind]: id || null });
}

/** Make media.js use the remembered camera and microphone. */
export function loadPreferredDevices() {
  setPreferredDevices({ audio: preferredDevice('audio'), video: preferredDevice('video') });
}

export const canPickSpeaker = () => typeof HTMLMediaElement !== 'undefined'
  && typeof HTMLMediaElement.prototype.setSinkId === 'function';

const SELECTS = [
  ['video', 'videoinput', 'camera-select', 'Camera'],
  ['audio', 'audioinput', 'mic-select', 'Microphone'],
  ['speaker', 'audiooutput', 'speaker-select', 'Speaker'],
];

/**
 * The three selects. current(kind) → deviceId in use (from the live track) or null;
 * onSelect(kind, deviceId, select) is called when the user picks a device. `ids` ({video, audio,
 * speaker}) and `id` rename the selects and the container (the prejoin ids by default).
 */
export class DevicePicker {
  constructor({ current, onSelect, ids = {}, id: pickerId = 'device-picker' }) {
    this.current = current;
    this.selects = {};
    this.rows = {};
    const rows = SELECTS.map(([kind, , defaultId, label]) => {
      const id = ids[kind] || defaultId;
      const select = h('select', { id, class: 'device-select' });
      select.addEventListener('change', () => onSelect(kind, select.value, select));
      this.selects[kind] = select;
      this.rows[kind] = h('div', { class: 'device-row' }, h('label', { class: 'field-label', for: id }, label), select);
      return this.rows[kind];
    });
    this.el = h('div', { id: pickerId, class: 'device-picker' }, rows);
    this._onChange = () => this.refresh();
    if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      navigator.mediaDevices.addEventListener('devicechange', this._onChange);
    }
    this.refresh();
  }

  async refresh() {
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch { /* no mediaDevices (insecure page) */ }
    for (const [kind, type, , label] of SELECTS) {
      const list = devices.filter((d) => d.kind === type && d.deviceId);
      const select = this.selects[kind];
      const chosen = (kind === 'speaker' ? preferredDevice('speaker') : this.current(kind)) || '';
      const options = list.map((d, i) => h('option', { value: d.deviceId }, d.label || `${label} ${i + 1}`));
      const hasDefault = list.some((d) => d.deviceId === 'default');
      if (!list.length || (kind === 'speaker' && !hasDefault)) {
        options.unshift(h('option', { value: '' }, list.length ? 'System default' : `No ${label.toLowerCase()} found`));
      }
      select.replaceChildren(...options);
      select.value = list.some((d) => d.deviceId === chosen) ? chosen : (select.options[0]?.value ?? '');
      if (kind === 'speaker' && select.value === 'default') select.value = chosen === 'default' ? 'default' : select.value;
      select.disabled = !list.length;
      this.rows[kind].hidden = kind === 'speaker' && (!canPickSpeaker() || !list.length);
    }
  }

  destroy() {
    if (navigator.mediaDevices && navigator.mediaDevices.removeEventListener) {
      navigator.mediaDevices.removeEventListener('devicechange', this._onChange);
    }
  }
}
