// Tiny DOM helpers. Text is always set via textContent; innerHTML only for built-in SVG icons.

/** h('button', {id: 'x', class: 'a b', onclick: fn, 'aria-label': '…'}, child, 'text', …) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'html') el.innerHTML = v; // trusted, built-in markup only
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Initials for an avatar: "Ana María" → "AM", "bo" → "B". */
export function initials(name) {
  const words = String(name || '').trim().split(/\s+/).filter(Boolean);
  if (!words.length) return '?';
  const first = [...words[0]][0] || '';
  const last = words.length > 1 ? [...words[words.length - 1]][0] || '' : '';
  return (first + last).toUpperCase();
}

const HUES = [211, 262, 330, 12, 28, 160, 188, 236, 290, 350];

/** A stable hue (from a small pleasant palette) for a participant's avatar background. */
export function hueFor(key) {
  let x = 7;
  for (const ch of String(key || '')) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return HUES[x % HUES.length];
}

/** Set srcObject and start playback; autoplay refusals are ignored (reported via onBlocked). */
export function attachStream(video, stream, onBlocked) {
  if (video.srcObject !== stream) video.srcObject = stream;
  if (!stream) return;
  const p = video.play();
  if (p && p.catch) {
    p.catch((err) => {
      if (err && err.name === 'NotAllowedError') {
        if (onBlocked) onBlocked(video);
      } else if (err && err.name !== 'AbortError') {
        console.warn('tertulia: play() failed', err);
      }
    });
  }
}
