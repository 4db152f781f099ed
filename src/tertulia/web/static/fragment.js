// Jitsi-style URL fragment overrides: "#config.startWithAudioMuted=true&userInfo.displayName=%22Ana%22"

const FORBIDDEN = new Set(['__proto__', 'prototype', 'constructor']);

function decodeValue(raw) {
  let text = raw;
  try {
    text = decodeURIComponent(raw);
  } catch {
    /* malformed escape: keep raw */
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Parse a location.hash into nested objects: {config:{...}, userInfo:{...}, ...}. Pure. */
export function parseFragment(hash) {
  const out = { config: {}, userInfo: {} };
  let s = String(hash || '');
  if (s.startsWith('#')) s = s.slice(1);
  if (!s) return out;
  for (const part of s.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    let key = part.slice(0, eq);
    try {
      key = decodeURIComponent(key);
    } catch {
      /* keep raw */
    }
    const path = key.split('.').filter(Boolean);
    if (!path.length || path.some((k) => FORBIDDEN.has(k))) continue;
    const value = decodeValue(part.slice(eq + 1));
    let node = out;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i];
      if (!node[k] || typeof node[k] !== 'object' || Array.isArray(node[k])) node[k] = {};
      node = node[k];
    }
    node[path[path.length - 1]] = value;
  }
  return out;
}
