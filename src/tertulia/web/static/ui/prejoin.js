// Prejoin screen: preview, mic level, name, device toggles and choice, "Join meeting".
import { h, initials, hueFor, attachStream } from './dom.js';
import { icons } from './icons.js';
import { LevelMeter } from './meter.js';
import { getTrack } from '../media.js';
import { DevicePicker, storeDevice, preferredDevice } from './devices.js';

export const NAME_KEY = 'tertulia.displayName';

export function storedName() {
  try { return localStorage.getItem(NAME_KEY) || ''; } catch { return ''; }
}

export function storeName(name) {
  try { localStorage.setItem(NAME_KEY, name); } catch { /* private mode */ }
}

/** Set aria-pressed (= muted), label and icon on a mic/camera toggle button. */
export function setToggle(button, kind, muted, key = null) {
  const noun = kind === 'audio' ? 'microphone' : 'camera';
  const action = kind === 'audio' ? (muted ? 'Unmute' : 'Mute') : (muted ? 'Turn on' : 'Turn off');
  const label = `${action} ${noun}${key ? ` (${key})` : ''}`;
  button.setAttribute('aria-pressed', muted ? 'true' : 'false');
  button.setAttribute('aria-label', label);
  button.title = label;
  button.classList.toggle('off', muted);
  const icon = kind === 'audio' ? (muted ? icons.micOff : icons.mic) : (muted ? icons.camOff : icons.cam);
  if (button.dataset.icon !== icon) {
    button.innerHTML = icon;
    button.dataset.icon = icon;
  }
}

/**
 * Render prejoin. `media` = {stream, audioMuted, videoMuted, message}.
 * onJoin({name, audioMuted, videoMuted, stream}) is called once.
 */
export function renderPrejoin(root, { room, name, media, onJoin }) {
  const stream = media.stream;
  let audioMuted = media.audioMuted;
  let videoMuted = media.videoMuted;
  let done = false;
  const meter = new LevelMeter();

  const preview = h('video', { id: 'preview', autoplay: true, muted: true, playsinline: true, class: 'mirror' });
  preview.setAttribute('autoplay', '');
  preview.setAttribute('muted', '');
  preview.setAttribute('playsinline', '');
  preview.muted = true;
  const avatar = h('div', { class: 'avatar avatar-lg' });
  const frame = h('div', { class: 'preview-frame' }, preview, h('div', { class: 'avatar-layer' }, avatar));
  const message = h('p', { id: 'media-message', class: 'notice', role: 'alert' });
  if (media.message) message.textContent = media.message;
  message.hidden = !media.message;

  const audioBtn = h('button', { id: 'prejoin-audio', type: 'button', class: 'round-btn' });
  const videoBtn = h('button', { id: 'prejoin-video', type: 'button', class: 'round-btn' });
  const nameInput = h('input', {
    id: 'display-name', type: 'text', maxlength: '64', autocomplete: 'nickname',
    placeholder: 'Your name', value: name || '',
  });
  const joinBtn = h('button', { id: 'join-button', type: 'button', class: 'btn btn-primary btn-wide' }, 'Join meeting');

  const refresh = () => {
    setToggle(audioBtn, 'audio', audioMuted);
    setToggle(videoBtn, 'video', videoMuted);
    const vtrack = stream.getVideoTracks()[0];
    const showVideo = !!vtrack && !videoMuted;
    frame.classList.toggle('show-video', showVideo);
    attachStream(preview, showVideo ? stream : null);
    avatar.textContent = initials(nameInput.value || 'Guest');
    avatar.style.setProperty('--hue', hueFor(nameInput.value || 'Guest'));
    const atrack = stream.getAudioTracks()[0] || null;
    if (atrack) atrack.enabled = !audioMuted;
    meter.setTrack(atrack);
    meter.el.classList.toggle('muted', audioMuted || !atrack);
  };

  const say = (text) => {
    message.textContent = text;
    message.hidden = !text;
  };

  audioBtn.addEventListener('click', async () => {
    if (audioMuted && !stream.getAudioTracks().length) {
      audioBtn.disabled = true;
      try {
        stream.addTrack(await getTrack('audio'));
        say('');
      } catch (err) {
        say(`${err.message}. You can still join without it.`);
        audioBtn.disabled = false;
        return;
      }
      audioBtn.disabled = false;
      picker.refresh(); // device names are known once one was opened
    }
    audioMuted = !audioMuted;
    refresh();
  });

  videoBtn.addEventListener('click', async () => {
    if (!videoMuted) {
      videoMuted = true;
      for (const t of stream.getVideoTracks()) { t.stop(); stream.removeTrack(t); }
      refresh();
      return;
    }
    videoBtn.disabled = true;
    try {
      if (!stream.getVideoTracks().length) stream.addTrack(await getTrack('video'));
      videoMuted = false;
      say('');
    } catch (err) {
      say(`${err.message}. You can still join without it.`);
    }
    videoBtn.disabled = false;
    refresh();
    picker.refresh();
  });

  const deviceOf = (kind) => {
    const track = kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    return (track && track.getSettings().deviceId) || preferredDevice(kind);
  };
  const picker = new DevicePicker({
    current: deviceOf,
    onSelect: async (kind, id) => {
      storeDevice(kind, id);
      if (kind === 'speaker' || (kind === 'video' && videoMuted)) return;
      const old = kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks();
      old.forEach((t) => { t.stop(); stream.removeTrack(t); });
      try {
        stream.addTrack(await getTrack(kind, id));
        say('');
      } catch (err) {
        say(`${err.message}. Choose another device or join without it.`);
        if (kind === 'audio') audioMuted = true;
        else videoMuted = true;
      }
      refresh();
      picker.refresh();
    },
  });
  if (!window.isSecureContext) {
    picker.el.hidden = true;
    say('Camera and microphone need HTTPS (or localhost). You can still join, but others will not see or hear you.');
  }

  const join = () => {
    if (done) return;
    done = true;
    joinBtn.disabled = true;
    meter.destroy();
    picker.destroy();
    onJoin({ name: nameInput.value.trim(), audioMuted, videoMuted, stream });
  };
  joinBtn.addEventListener('click', join);
  nameInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); join(); }
  });
  nameInput.addEventListener('input', () => {
    storeName(nameInput.value.trim());
    refresh();
  });

  root.replaceChildren(
    h('section', { id: 'prejoin', class: 'screen prejoin' },
      h('div', { class: 'prejoin-card' },
        h('div', { class: 'prejoin-media' },
          frame,
          h('div', { class: 'preview-bar' },
            audioBtn, videoBtn,
            h('div', { class: 'meter-wrap' }, h('span', { class: 'meter-icon', html: icons.mic }), meter.el)),
          message,
          picker.el),
        h('div', { class: 'prejoin-form' },
          h('p', { class: 'eyebrow' }, 'Ready to join?'),
          h('h1', { id: 'room-title', class: 'room-title' }, room),
          h('label', { class: 'field-label', for: 'display-name' }, 'Your name'),
          nameInput,
          joinBtn,
          h('a', { class: 'subtle-link', href: '/' }, 'Back to home')))),
  );
  refresh();
  nameInput.focus();
  return {
    destroy() { meter.destroy(); picker.destroy(); },
  };
}
