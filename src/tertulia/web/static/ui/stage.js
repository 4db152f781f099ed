// The meeting's video area, in one of three arrangements (data-layout on #stage):
//   tile   — everyone in an even grid (#grid);
//   stage  — one large video (#stage-main) and the others in a filmstrip (#filmstrip): a strip
//            on the right, or along the bottom on narrow/portrait screens;
//   lonely — nobody else here: the invite panel (#lonely) large, own video in the filmstrip.
// It also holds the screen share tile (#screen-tile) and the "you are presenting" banner.
import { h, attachStream } from './dom.js';
import { icons } from './icons.js';
import { bestLayout } from './grid.js';

const GAP = 8;
export const SCREEN = 'screen'; // the key of the screen share tile

/**
 * Which arrangement, and what is large on stage. Keys: 'local', participant ids, 'screen'.
 * others: the other participants' ids in join order; pinned: a key or null; screen: the id
 * whose screen is in our screen slot, or null; override: 'tile' | 'stage' | null (the user's
 * choice); dominant, order: from the bridge's `dominant-speaker` (may never come).
 */
export function chooseLayout({ others, pinned, screen, override, dominant, order = [] }) {
  if (!others.length) return { mode: 'lonely', main: null };
  const present = new Set(others);
  const pin = pinned === 'local' || present.has(pinned) ? pinned : null;
  const shared = screen && present.has(screen) ? SCREEN : null;
  const mode = override || (pin || shared ? 'stage' : others.length + 1 >= 3 ? 'tile' : 'stage');
  if (mode === 'tile') return { mode, main: null };
  const speaker = [dominant, ...order].find((id) => id && present.has(id));
  return { mode, main: pin || shared || speaker || others[others.length - 1] };
}

class ScreenTile {
  constructor({ onClick }) {
    this.video = h('video', { autoplay: true, playsinline: true });
    this.video.setAttribute('autoplay', '');
    this.video.setAttribute('playsinline', '');
    this.video.muted = true; // the screen slot is video only
    this.label = h('span', { class: 'tile-name' });
    this.el = h('div', { id: 'screen-tile', class: 'tile screen-tile show-video', role: 'group' },
      this.video,
      h('div', { class: 'tile-label' }, h('span', { class: 'tile-icon screen-icon', html: icons.screen }), this.label));
    this.el.addEventListener('click', onClick);
  }

  update(name, stream) {
    const text = `${name || 'Someone'} is presenting`;
    if (this.label.textContent !== text) {
      this.label.textContent = text;
      this.el.setAttribute('aria-label', text);
    }
    if (this.video.srcObject !== stream) attachStream(this.video, stream);
  }

  clear() {
    if (this.video.srcObject) this.video.srcObject = null;
  }
}

export class Stage {
  constructor({ lonely, onStopSharing, onScreenClick }) {
    this.grid = h('div', { id: 'grid', class: 'grid' });
    this.main = h('div', { id: 'stage-main', class: 'stage-main' });
    this.filmstrip = h('div', { id: 'filmstrip', class: 'filmstrip', role: 'region', 'aria-label': 'Other participants' });
    this.view = h('div', { id: 'stage-view', class: 'stage-view' }, this.main, this.filmstrip);
    this.lonely = lonely;
    this.screenTile = new ScreenTile({ onClick: onScreenClick });
    this.stopBtn = h('button', { id: 'stop-sharing', type: 'button', class: 'btn btn-small btn-danger', onclick: onStopSharing }, 'Stop presenting');
    this.banner = h('div', { id: 'sharing-banner', class: 'sharing-banner', role: 'status', hidden: true },
      h('span', { class: 'sharing-icon', html: icons.screen }),
      h('span', {}, 'You are presenting your screen to everyone'),
      this.stopBtn);
    this.el = h('main', { id: 'stage', class: 'stage', 'data-layout': 'tile' }, this.banner, this.grid, this.view);
    this.mode = 'tile';
  }

  setSharing(on) {
    this.banner.hidden = !on;
  }

  /**
   * Put the elements in place. keys: every tile key in display order ('screen' first when
   * there is a screen share); elementOf(key) → its element.
   */
  arrange({ mode, main }, keys, elementOf) {
    this.mode = mode;
    this.el.dataset.layout = mode;
    const gridEls = [];
    const mainEls = [];
    const stripEls = [];
    if (mode === 'tile') {
      for (const k of keys) gridEls.push(elementOf(k));
    } else if (mode === 'lonely') {
      mainEls.push(this.lonely);
      for (const k of keys) stripEls.push(elementOf(k));
    } else {
      mainEls.push(elementOf(main));
      for (const k of keys) if (k !== main) stripEls.push(elementOf(k));
    }
    this.grid.hidden = mode !== 'tile';
    this.view.hidden = mode === 'tile';
    place(this.grid, gridEls);
    place(this.main, mainEls);
    place(this.filmstrip, stripEls);
    const wanted = new Set([...gridEls, ...mainEls, ...stripEls]);
    for (const box of [this.grid, this.main, this.filmstrip]) {
      for (const child of [...box.children]) if (!wanted.has(child)) child.remove();
    }
    this.filmstrip.hidden = stripEls.length === 0;
    this.main.classList.toggle('main-screen', mainEls[0] === this.screenTile.el);
    this.layoutGrid();
  }

  /** Tile view: the column count and tile width that make tiles largest. */
  layoutGrid() {
    if (this.mode !== 'tile') return;
    const n = this.grid.childElementCount;
    const style = getComputedStyle(this.el);
    const w = this.el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const hgt = this.el.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom) - 2;
    if (w <= 0 || hgt <= 0) return;
    const { cols, tileW } = bestLayout(n, w, hgt, GAP);
    this.grid.style.setProperty('--cols', String(cols));
    this.grid.style.setProperty('--tile-w', `${tileW}px`);
    this.grid.style.setProperty('--gap', `${GAP}px`);
    this.grid.dataset.cols = String(cols);
  }
}

/** Make `els` the leading children of `box`, in order, moving only what is out of place. */
function place(box, els) {
  els.forEach((el, i) => {
    const at = box.children[i] || null;
    if (at !== el) box.insertBefore(el, at);
  });
}
