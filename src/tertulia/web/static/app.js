// Tertulia browser client: routing between home, prejoin, meeting and message screens.
import { parseFragment } from './fragment.js';
import { normalizeRoom } from './names.js';
import { signalUrl } from './protocol.js';
import { getLocalMedia } from './media.js';
import { Conference } from './conference.js';
import { renderHome } from './ui/home.js';
import { renderPrejoin, storedName, storeName } from './ui/prejoin.js';
import { MeetingView } from './ui/meeting.js';
import { renderMessage } from './ui/pages.js';
import { showStatus } from './ui/status.js';

const root = document.getElementById('app');
const fragment = parseFragment(location.hash);
const config = fragment.config || {};
const userInfo = fragment.userInfo || {};

const app = {
  state: 'init', // home | prejoin | connecting | joined | reconnecting | left | failed | error
  room: null,
  conference: null,
  view: null,
  prejoin: null,
  last: null, // settings of the last join, for "Rejoin"
};

// Debug/test handle, always current.
window.tertulia = Object.defineProperties({}, {
  state: { enumerable: true, get: () => app.state },
  room: { enumerable: true, get: () => app.room },
  session: { enumerable: true, get: () => app.conference?.session ?? null },
  pc: { enumerable: true, get: () => app.conference?.pc ?? null },
  participants: { enumerable: true, get: () => app.conference?.participants ?? new Map() },
  slots: { enumerable: true, get: () => app.conference?.slots ?? [] },
  me: { enumerable: true, get: () => app.conference?.me ?? null },
  mediaState: { enumerable: true, get: () => app.conference?.mediaState ?? 'new' },
  audioMuted: { enumerable: true, get: () => app.conference?.audioMuted ?? null },
  videoMuted: { enumerable: true, get: () => app.conference?.videoMuted ?? null },
  conference: { enumerable: true, get: () => app.conference },
  fragment: { enumerable: true, value: fragment },
});

function setState(state) {
  app.state = state;
  document.body.dataset.state = state;
}

function navigate(path) {
  location.assign(path);
}

function roomFromPath(pathname) {
  const raw = pathname.replace(/^\/+/, '').replace(/\/+$/, '');
  let decoded = raw;
  try { decoded = decodeURIComponent(raw); } catch { /* keep raw */ }
  return { raw: decoded, room: normalizeRoom(decoded) };
}

function flag(value) {
  return value === true || value === 'true';
}

function mediaMessage(audioError, videoError) {
  const parts = [];
  if (audioError && videoError && audioError === videoError) {
    parts.push(`Camera and microphone unavailable: ${audioError}.`);
  } else {
    if (audioError) parts.push(`Microphone unavailable: ${audioError}.`);
    if (videoError) parts.push(`Camera unavailable: ${videoError}.`);
  }
  if (parts.length) parts.push('You can still join without them.');
  return parts.join(' ');
}

/** Open mic (muted or not) and, unless the camera starts muted, the camera. */
async function openMedia({ audioMuted, videoMuted }) {
  const { stream, audioError, videoError } = await getLocalMedia({ audio: true, video: !videoMuted });
  const hasAudio = stream.getAudioTracks().length > 0;
  const hasVideo = stream.getVideoTracks().length > 0;
  return {
    stream,
    audioMuted: audioMuted || !hasAudio,
    videoMuted: videoMuted || !hasVideo,
    message: mediaMessage(audioError, videoError),
  };
}

function showHome() {
  setState('home');
  document.title = 'Tertulia';
  renderHome(root, { navigate });
}

async function showRoom(room) {
  app.room = room;
  document.title = `${room} · Tertulia`;
  const startAudioMuted = flag(config.startWithAudioMuted);
  const startVideoMuted = flag(config.startWithVideoMuted);
  const fragName = typeof userInfo.displayName === 'string' ? userInfo.displayName : null;
  const prejoinEnabled = !(config.prejoinConfig && config.prejoinConfig.enabled === false)
    && config.prejoinPageEnabled !== false;

  if (!prejoinEnabled) {
    setState('connecting');
    renderMessage(root, { id: 'connecting-screen', title: 'Joining…', text: room, busy: true });
    const media = await openMedia({ audioMuted: startAudioMuted, videoMuted: startVideoMuted });
    if (media.message) showStatus({ text: media.message, level: 'error' });
    join({ room, name: fragName ?? storedName(), ...media });
    return;
  }

  setState('prejoin');
  renderMessage(root, { id: 'connecting-screen', title: 'Starting camera…', text: room, busy: true });
  const media = await openMedia({ audioMuted: startAudioMuted, videoMuted: startVideoMuted });
  app.prejoin = renderPrejoin(root, {
    room,
    name: fragName ?? storedName(),
    media,
    onJoin: (choice) => {
      if (choice.name) storeName(choice.name);
      app.prejoin = null;
      join({ room, ...choice });
    },
  });
}

function cleanName(name) {
  const chars = [...String(name || '').trim()];
  return chars.slice(0, 64).join('') || 'Guest';
}

async function join({ room, name, audioMuted, videoMuted, stream }) {
  app.last = { room, name, audioMuted, videoMuted };
  setState('connecting');
  renderMessage(root, { id: 'connecting-screen', title: 'Joining…', text: room, busy: true });
  const conf = new Conference({
    room, name: cleanName(name), audioMuted, videoMuted, localStream: stream, signalUrl: signalUrl(location),
  });
  app.conference = conf;
  conf.addEventListener('status', (ev) => showStatus(ev.detail));
  conf.addEventListener('state', (ev) => onConferenceState(conf, ev.detail));
  try {
    await conf.join();
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    if (app.conference !== conf) return;
    showJoinError(err);
    return;
  }
  if (app.conference !== conf) return;
  setState('joined');
  app.view = new MeetingView(root, conf, { onLeave: leave });
}

function onConferenceState(conf, state) {
  if (app.conference !== conf) return;
  if (state === 'reconnecting') setState('reconnecting');
  else if (state === 'joined' && app.view) setState('joined');
  else if (state === 'failed') {
    destroyView();
    setState('failed');
    renderMessage(root, {
      id: 'error-screen', code: 'connection-lost',
      title: 'Connection to the server lost',
      text: 'We could not reconnect you to the meeting.',
      actions: [
        { id: 'rejoin-button', label: 'Rejoin', primary: true, onclick: rejoin },
        { id: 'home-link', label: 'Back to home', href: '/' },
      ],
    });
  }
}

function showJoinError(err) {
  setState('error');
  showStatus({ text: '' });
  const unreachable = err.code === 'unreachable';
  renderMessage(root, {
    id: 'error-screen',
    code: err.code || 'error',
    title: unreachable ? 'Cannot reach the server' : 'Could not join the meeting',
    text: unreachable
      ? 'The meeting server is not reachable right now. Check your connection and try again.'
      : err.message,
    detail: unreachable ? null : `Error code: ${err.code}`,
    actions: [
      err.code === 'invalid-room' ? null : { id: 'retry-button', label: 'Try again', primary: true, onclick: rejoin },
      { id: 'home-link', label: 'Back to home', href: '/', primary: err.code === 'invalid-room' },
    ].filter(Boolean),
  });
}

function destroyView() {
  if (app.view) app.view.destroy();
  app.view = null;
}

function leave() {
  const conf = app.conference;
  destroyView();
  if (conf) conf.leave();
  setState('left');
  renderMessage(root, {
    id: 'left-screen',
    title: 'You left the meeting',
    text: app.room,
    actions: [
      { id: 'rejoin-button', label: 'Rejoin', primary: true, onclick: rejoin },
      { id: 'home-link', label: 'Back to home', href: '/' },
    ],
  });
}

async function rejoin() {
  const last = app.last;
  if (!last) { location.reload(); return; }
  if (app.conference && app.conference.state !== 'left') app.conference.leave();
  setState('connecting');
  renderMessage(root, { id: 'connecting-screen', title: 'Joining…', text: last.room, busy: true });
  const media = await openMedia({ audioMuted: last.audioMuted, videoMuted: last.videoMuted });
  if (media.message) showStatus({ text: media.message, level: 'error' });
  join({ ...last, ...media });
}

window.addEventListener('pagehide', () => {
  const conf = app.conference;
  if (conf && conf.state !== 'left' && conf.signal) conf.signal.send({ type: 'leave' });
});

function main() {
  const path = location.pathname;
  if (path === '/' || path === '' || path === '/index.html') {
    showHome();
    return;
  }
  const { raw, room } = roomFromPath(path);
  if (!room) {
    setState('error');
    renderMessage(root, {
      id: 'error-screen', code: 'invalid-room',
      title: 'Invalid meeting name',
      text: `“${raw}” is not a valid meeting name. Use 1–64 letters, digits, ".", "_" or "-".`,
      actions: [{ id: 'home-link', label: 'Back to home', href: '/', primary: true }],
    });
    return;
  }
  showRoom(room);
}

main();
