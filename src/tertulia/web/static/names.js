// Room names: random readable defaults and validation.

const ADJECTIVES = [
  'amber', 'bold', 'brave', 'bright', 'calm', 'clever', 'cosy', 'curious', 'eager', 'fancy',
  'gentle', 'golden', 'happy', 'jolly', 'kind', 'lively', 'lucky', 'mellow', 'merry', 'misty',
  'noble', 'quiet', 'rapid', 'silver', 'sunny', 'swift', 'tidy', 'vivid', 'warm', 'witty',
];
const NOUNS = [
  'badgers', 'comets', 'dolphins', 'falcons', 'foxes', 'geckos', 'herons', 'koalas', 'lemurs',
  'lions', 'meadows', 'otters', 'owls', 'pandas', 'parrots', 'pebbles', 'penguins', 'rivers',
  'robins', 'salmon', 'sparrows', 'squirrels', 'tigers', 'turtles', 'walruses', 'whales',
];
const VERBS = [
  'dance', 'dream', 'glow', 'hum', 'jump', 'laugh', 'listen', 'meet', 'paint', 'play', 'roam',
  'sing', 'skate', 'smile', 'swim', 'talk', 'think', 'wander', 'whistle', 'write',
];

const ROOM_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function pick(list, rand) {
  return list[Math.floor(rand() * list.length) % list.length];
}

/** e.g. "brave-otters-sing" or "calm-foxes" (only [a-z-]). */
export function randomRoomName(rand = Math.random) {
  const words = [pick(ADJECTIVES, rand), pick(NOUNS, rand)];
  if (rand() < 0.75) words.push(pick(VERBS, rand));
  return words.join('-');
}

/** Lower-cased, trimmed room name, or null when it is not [a-z0-9][a-z0-9._-]{0,63}. */
export function normalizeRoom(name) {
  const room = String(name ?? '').trim().toLowerCase();
  return ROOM_RE.test(room) ? room : null;
}
