// Tertulia browser client: routing between home, prejoin, meeting and message screens.
import { parseFragment } from './fragment.js';
import { normalizeRoom } from './names.js';
import { signalUrl } from './protocol.js';
import { getLocalMedia, setCameraResolution } from './media.js';
import { Conference } from './conference.js';
import { renderHome } from './ui/home.js';
import { renderPrejoin, storedName, storeName } from './ui/prejoin.js';
import { MeetingView } from './ui/meeting.js';
import { setReceiveFrameRate } from './ui/constraints.js';
import { renderMessage } from './ui/pages.js';
import { renderPassword, renderLobby } from './ui/entry.js';
import { showStatus } from './ui/status.js';
import { errorPage } from './ui/errors.js';
import { rememberRoom } from './ui/recent.js';
import { loadPreferredDevices } from './ui/devices.js';

const root = document.getElementById('app');
const fragment = parseFragment(location.hash);
const config = fragment.config || {};
const userInfo = fragment.userInfo || {};
if (config.resolution !== undefined) setCameraResolution(config.resolution);
if (config.maxFrameRate !== undefined) setReceiveFrameRate(config.maxFrameRate);
// A JWT as in Jitsi: https://host/room?jwt=…
const token = new URLSearchParams(location.search).get('jwt') || null;
const PASSWORD_CODES = new Set(['password-required', 'wrong-password']);
const PASSWORD_KEY = 'tertulia.password.';

const app = {
  state: 'init', // home | prejoin | connecting | password | lobby | joined | reconnecting | left | ended | failed | error
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
  role: { enumerable: true, get: () => app.conference?.role ?? null },
  roomState: { enumerable: true, get: () => app.conference?.roomState ?? null },
  hands: { enumerable: true, get: () => app.conference?.hands ?? [] },
  chat: { enumerable: true, get: () => app.conference?.chat ?? [] },
  knocks: { enumerable: true, get: () => app.conference?.knocks ?? [] },
  knock: { enumerable: true, get: () => app.conference?.knock ?? null },
  handRaised: { enumerable: true, get: () => app.conference?.controls.handRaised ?? false },
  fragment: { enumerable: true, value: fragment },
  // Media layout (docs/protocol.md): mic, camera, screen (send); slot pairs; the screen slot.
  slotTransceivers: { enumerable: true, value: (i) => app.conference?.session?.slotTransceivers[i] ?? null },
  screenTransceiver: { enumerable: true, get: () => app.conference?.session?.screenTransceiver ?? null },
  screenSender: { enumerable: true, get: () => app.conference?.session?.screenSender ?? null },
  screen: { enumerable: true, get: () => app.conference?.screen ?? null },
  sharing: { enumerable: true, get: () => app.conference?.sharing ?? false },
  dominantSpeaker: { enumerable: true, get: () => app.conference?.dominantSpeaker ?? null },
  speakerOrder: { enumerable: true, get: () => app.conference?.speakerOrder ?? [] },
  constraints: { enumerable: true, get: () => app.conference?.constraints ?? null },
  layout: { enumerable: true, get: () => app.view?.current.mode ?? null },
  onStage: { enumerable: true, get: () => app.view?.current.main ?? null },
  pinned: { enumerable: true, get: () => app.view?.pinned ?? null },
  view: { enumerable: true, get: () => app.view },
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
  if (!window.isSecureContext) {
    return 'Camera and microphone need HTTPS (or localhost). You can still join, but others will not see or hear you.';
  }
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

/** The password that last worked for this room (this tab only), or one from the URL fragment. */
function knownPassword(room) {
  try {
    const saved = sessionStorage.getItem(PASSWORD_KEY + room);
    if (saved) return saved;
  } catch { /* private mode */ }
  return typeof config.roomPassword === 'string' && config.roomPassword ? config.roomPassword : null;
}

function rememberPassword(room, password) {
  try {
    if (password) sessionStorage.setItem(PASSWORD_KEY + room, password);
    else sessionStorage.removeItem(PASSWORD_KEY + room);
  } catch { /* private mode */ }
}

async function join({ room, name, audioMuted, videoMuted, stream, password }) {
  app.last = { room, name, audioMuted, videoMuted };
  setState('connecting');
  renderMessage(root, { id: 'connecting-screen', title: 'Joining…', text: room, busy: true });
  const conf = new Conference({
    room, name: cleanName(name), audioMuted, videoMuted, localStream: stream, signalUrl: signalUrl(location, room),
    password: password ?? knownPassword(room), token,
  });
  app.conference = conf;
  conf.addEventListener('status', (ev) => showStatus(ev.detail));
  conf.addEventListener('state', (ev) => onConferenceState(conf, ev.detail));
  conf.addEventListener('room', () => {
    // A locked room we are in: remember its password for rejoining; unlocked: forget it.
    if (conf.roomState && !conf.roomState.locked) rememberPassword(conf.room, null);
  });
  await attemptJoin(conf, stream);
}

/** conf.join(), routing refusals to the password screen or an error page. */
async function attemptJoin(conf, stream, password) {
  try {
    await conf.join(password === undefined ? {} : { password });
  } catch (err) {
    if (app.conference !== conf || conf.state === 'left' || err.code === 'cancelled') return;
    if (PASSWORD_CODES.has(err.code) || (err.code === 'rate-limited' && app.state === 'password')) {
      showPasswordScreen(err.code, (pw) => attemptJoin(conf, stream, pw), () => {
        conf.leave();
        stream.getTracks().forEach((t) => t.stop());
        navigate('/');
      });
      return;
    }
    stream.getTracks().forEach((t) => t.stop());
    showJoinError(err);
    return;
  }
  if (app.conference !== conf) return;
  if (conf.password && conf.roomState.locked) rememberPassword(conf.room, conf.password);
  enterMeeting(conf);
}

function showPasswordScreen(code, retry, cancel) {
  setState('password');
  showStatus({ text: '' });
  const screen = renderPassword(root, {
    room: app.room,
    code,
    onSubmit: (pw) => {
      screen.busy(true);
      retry(pw);
    },
    onCancel: cancel,
  });
}

function enterMeeting(conf) {
  if (app.conference !== conf) return;
  setState('joined');
  rememberRoom(conf.room);
  if (!app.view) app.view = new MeetingView(root, conf, { onLeave: leave, onPasswordSet: (pw) => rememberPassword(conf.room, pw) });
}

function onConferenceState(conf, state) {
  if (app.conference !== conf) return;
  if (state === 'reconnecting') setState('reconnecting');
  else if (state === 'joined') enterMeeting(conf);
  else if (state === 'lobby') {
    destroyView();
    setState('lobby');
    showStatus({ text: '' });
    renderLobby(root, {
      room: conf.room,
      name: conf.name,
      onCancel: () => leave({ title: 'You cancelled your request to join' }),
    });
  } else if (state === 'ended') {
    destroyView();
    showEnded(conf.controls.ended || { code: 'meeting-ended' });
  } else if (state === 'failed') {
    destroyView();
    const code = conf.failure?.code;
    if (PASSWORD_CODES.has(code)) {
      // The room got locked while we were away and our fresh join needs the password.
      showPasswordScreen(code, (pw) => rejoin(pw), () => navigate('/'));
      return;
    }
    setState('failed');
    const lost = !code || code === 'connection-lost' || code === 'unreachable';
    const page = errorPage(lost ? 'connection-lost' : code, conf.failure?.message);
    renderMessage(root, {
      id: 'error-screen', code: code || 'connection-lost',
      title: page.title,
      text: page.text,
      detail: page.detail,
      actions: [
        { id: 'rejoin-button', label: 'Rejoin', primary: true, onclick: () => rejoin() },
        { id: 'home-link', label: 'Back to home', href: '/' },
      ],
    });
  }
}

function showEnded({ code, byName, message }) {
  setState('ended');
  showStatus({ text: '' });
  const kicked = code === 'kicked';
  const who = byName || 'A moderator';
  renderMessage(root, {
    id: 'error-screen',
    code,
    title: kicked ? 'You were removed from the meeting' : 'The meeting has ended',
    text: kicked
      ? (message ? `${who} removed you: “${message}”` : `${who} removed you from the meeting.`)
      : `${who} ended the meeting for everyone.`,
    actions: [{ id: 'home-link', label: 'Back to home', href: '/', primary: true }],
  });
}

function showJoinError(err) {
  setState('error');
  showStatus({ text: '' });
  const page = errorPage(err.code, err.message);
  renderMessage(root, {
    id: 'error-screen',
    code: err.code || 'error',
    title: page.title,
    text: page.text,
    detail: page.detail,
    actions: [
      page.retry ? { id: 'retry-button', label: page.retryLabel || 'Try again', primary: true, onclick: () => rejoin() } : null,
      page.guest && app.room ? { id: 'guest-link', label: 'Join as a guest', href: `/${encodeURIComponent(app.room)}` } : null,
      { id: 'home-link', label: 'Back to home', href: '/', primary: !page.retry },
    ].filter(Boolean),
  });
}

function destroyView() {
  if (app.view) app.view.destroy();
  app.view = null;
}

function leave({ title = 'You left the meeting' } = {}) {
  const conf = app.conference;
  destroyView();
  if (conf) conf.leave();
  setState('left');
  renderMessage(root, {
    id: 'left-screen',
    title,
    text: app.room,
    actions: [
      { id: 'rejoin-button', label: 'Rejoin', primary: true, onclick: () => rejoin() },
      { id: 'home-link', label: 'Back to home', href: '/' },
    ],
  });
}

async function rejoin(password) {
  const last = app.last;
  if (!last) { location.reload(); return; }
  if (app.conference && app.conference.state !== 'left') app.conference.leave();
  destroyView();
  setState('connecting');
  renderMessage(root, { id: 'connecting-screen', title: 'Joining…', text: last.room, busy: true });
  const media = await openMedia({ audioMuted: last.audioMuted, videoMuted: last.videoMuted });
  if (media.message) showStatus({ text: media.message, level: 'error' });
  join({ ...last, name: app.conference?.name || last.name, ...media, password }); // a name set in Settings
}

window.addEventListener('pagehide', () => {
  const conf = app.conference;
  if (conf && conf.state !== 'left' && conf.signal) conf.signal.send({ type: 'leave' });
});

function main() {
  loadPreferredDevices();
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
