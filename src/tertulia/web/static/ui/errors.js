// What to tell people when they cannot join (or rejoin): a title, a plain explanation and
// whether trying again can help. Rendered as #error-screen[data-code=…] by app.js.

const TOKEN_REASONS = {
  'token-required': 'this meeting needs a personal link with a sign-in token. Ask the organiser to send you one.',
  'token-malformed': 'its sign-in token is damaged. Copy the whole link again, or ask for a new one.',
  'token-algorithm': 'its sign-in token is signed in a way this server does not accept. Ask the organiser for a new link.',
  'token-signature': 'its sign-in token was not issued by this server. Ask the organiser for a new link.',
  'token-expired': 'it has expired. Ask the organiser for a new link.',
  'token-not-yet-valid': 'it is not valid yet. Try again closer to the meeting time, or check your device’s clock.',
  'token-wrong-room': 'it is for a different meeting. Check that you opened the right link.',
  'token-issuer': 'it was issued by another service. Ask the organiser for a new link.',
  'token-audience': 'it was issued for another service. Ask the organiser for a new link.',
};

const PAGES = {
  unreachable: {
    title: 'Cannot reach the server',
    text: 'The meeting server is not reachable right now. Check your internet connection and try again.',
  },
  'connection-lost': {
    title: 'Connection to the server lost',
    text: 'We could not reconnect you to the meeting. Check your internet connection, then rejoin.',
  },
  'room-full': {
    title: 'This meeting is full',
    text: 'It already has as many participants as this server allows. Try again when someone leaves, or start a new meeting.',
  },
  'server-full': {
    title: 'The server is busy',
    text: 'This server is hosting as many meetings as it can right now. Try again in a few minutes.',
  },
  'lobby-full': {
    title: 'Too many people are waiting',
    text: 'The waiting room of this meeting is full. Try again in a few minutes.',
  },
  'rate-limited': {
    title: 'Too many attempts',
    text: 'You tried to join too often in a short time. Wait a minute, then try again.',
  },
  'bridge-unavailable': {
    title: 'No media server available',
    text: 'The server cannot carry audio and video right now. Try again in a few minutes.',
  },
};

/** {title, text, detail, retry} for a join refusal or failure `code` (server `message` as fallback). */
export function errorPage(code, message) {
  if (code && code.startsWith('token-')) {
    const reason = TOKEN_REASONS[code] || 'the server refused its sign-in token. Ask the organiser for a new link.';
    // Without the token the server may still let people in as guests (allow_anonymous).
    return {
      title: 'This meeting link does not work', text: `Your meeting link is not valid: ${reason}`,
      detail: null, retry: code === 'token-not-yet-valid', guest: code !== 'token-required',
    };
  }
  if (code === 'lobby-denied') {
    const text = message ? message[0].toUpperCase() + message.slice(1) + (/[\p{L}\p{N}]$/u.test(message) ? '.' : '') : 'A moderator declined your request to join.';
    return { title: 'You were not let in', text, detail: null, retry: true, retryLabel: 'Ask again' };
  }
  if (code === 'invalid-room') {
    return { title: 'Invalid meeting name', text: message || 'That is not a valid meeting name.', detail: null, retry: false };
  }
  const page = PAGES[code];
  if (page) return { ...page, detail: null, retry: true };
  return {
    title: 'Could not join the meeting',
    text: message ? `The server said: ${message}` : 'Something went wrong while joining.',
    detail: code ? `Error code: ${code}` : null,
    retry: true,
  };
}
