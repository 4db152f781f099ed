// Recently joined meetings (this browser only, localStorage), newest first, at most 5.
const KEY = 'tertulia.recentRooms';
const MAX = 5;

/** [{room, at}] — newest first. */
export function recentRooms() {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) || '[]');
    if (!Array.isArray(list)) return [];
    return list.filter((r) => r && typeof r.room === 'string' && Number.isFinite(r.at)).slice(0, MAX);
  } catch {
    return [];
  }
}

export function rememberRoom(room) {
  const list = [{ room, at: Date.now() }, ...recentRooms().filter((r) => r.room !== room)].slice(0, MAX);
  try { localStorage.setItem(KEY, JSON.stringify(list)); } catch { /* private mode */ }
}

export function forgetRooms() {
  try { localStorage.removeItem(KEY); } catch { /* private mode */ }
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "5 minutes ago", "yesterday"… */
export function ago(at, now = Date.now()) {
  const s = Math.round((at - now) / 1000);
  const steps = [[60, 'second'], [3600, 'minute', 60], [86400, 'hour', 3600], [604800, 'day', 86400], [Infinity, 'week', 604800]];
  if (s > -45) return 'just now';
  for (const [limit, unit, div = 1] of steps) {
    if (-s < limit) return rtf.format(Math.round(s / div), unit);
  }
  return '';
}
