// Home page ("/"): pick a room name and start; recent meetings of this browser as links.
import { h } from './dom.js';
import { icons } from './icons.js';
import { randomRoomName, normalizeRoom } from '../names.js';
import { recentRooms, forgetRooms, ago } from './recent.js';

function recentList() {
  const rooms = recentRooms();
  if (!rooms.length) return null;
  const section = h('section', { class: 'recent', 'aria-labelledby': 'recent-title' },
    h('div', { class: 'recent-head' },
      h('h2', { id: 'recent-title', class: 'recent-title' }, 'Recent meetings'),
      h('button', {
        id: 'recent-clear', type: 'button', class: 'link-btn', 'aria-label': 'Forget recent meetings',
        onclick: () => { forgetRooms(); section.remove(); document.getElementById('room-name')?.focus(); },
      }, 'Clear')),
    h('ul', { id: 'recent-rooms', class: 'recent-list' },
      rooms.map((r) => h('li', {},
        h('a', { class: 'recent-link', href: `/${encodeURIComponent(r.room)}` },
          h('span', { class: 'recent-room' }, r.room),
          h('span', { class: 'recent-when' }, ago(r.at)))))));
  return section;
}

/**
 * Without a secure context (plain http on an address other than localhost) browsers refuse
 * camera and microphone: say so plainly instead of failing later.
 */
export function insecureNote() {
  if (window.isSecureContext) return null;
  return h('p', { id: 'insecure-context', class: 'notice', role: 'alert' },
    `This page was opened over plain HTTP (${location.host}), so your browser will not allow `
    + 'the camera or microphone here. Open it over HTTPS instead: the server can run with '
    + '--cert/--key, or with --self-signed on a local network.');
}

/** With a self-signed certificate: how others get past the browser's warning. */
async function selfSignedNote(section) {
  let about;
  try {
    const res = await fetch('/about/tls', { cache: 'no-store' });
    if (!res.ok) return;
    about = await res.json();
  } catch { return; }
  if (!about || !about.selfSigned) return;
  section.append(h('div', { id: 'self-signed-note', class: 'notice' },
    h('p', {}, 'This server uses a self-signed certificate, so everyone you invite will see a '
      + 'browser warning the first time. To continue: in Chrome or Edge choose Advanced, then '
      + 'Proceed; in Firefox, Advanced, then Accept the Risk and Continue; in Safari, Show '
      + 'Details, then visit this website.'),
    h('p', {}, 'To be sure it is this server, compare the certificate\'s SHA-256 fingerprint '
      + 'with the one the server printed when it started:'),
    h('code', { class: 'fingerprint' }, String(about.fingerprint || ''))));
}

export function renderHome(root, { navigate }) {
  const input = h('input', {
    id: 'room-name', type: 'text', value: randomRoomName(), autocomplete: 'off',
    autocapitalize: 'none', spellcheck: 'false', maxlength: '64',
    'aria-describedby': 'room-error', 'aria-label': 'Meeting name',
  });
  const error = h('p', { id: 'room-error', class: 'field-error', role: 'alert' });
  const start = () => {
    const room = normalizeRoom(input.value);
    if (!room) {
      error.textContent = 'Use 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    navigate(`/${room}`);
  };
  input.addEventListener('input', () => {
    error.textContent = '';
    input.removeAttribute('aria-invalid');
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); start(); }
  });
  const button = h('button', { id: 'start-meeting', class: 'btn btn-primary', type: 'button', onclick: start }, 'Start meeting');

  root.replaceChildren(
    h('section', { id: 'home', class: 'screen home' },
      h('div', { class: 'home-inner' },
        h('div', { class: 'brand', html: icons.logo }),
        h('h1', {}, 'Tertulia'),
        h('p', { class: 'tagline' }, 'Video meetings for everyone, on your own server. No accounts, no installs — just pick a name and share the link.'),
        h('form', { class: 'start-form', onsubmit: (ev) => { ev.preventDefault(); start(); } },
          h('label', { class: 'field-label', for: 'room-name' }, 'Start or join a meeting'),
          h('div', { class: 'start-row' }, input, button),
          error),
        insecureNote(),
        recentList(),
      )),
  );
  selfSignedNote(root.querySelector('.home-inner'));
  input.focus();
  input.select();
}
