// Responsive 16:9 tile layout: choose the column count that makes tiles largest.
export const MIN_TILE_W = 150;

export function bestLayout(count, width, height, gap = 8) {
  const n = Math.max(1, count);
  let best = { cols: 1, tileW: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const wByWidth = (width - gap * (cols - 1)) / cols;
    const wByHeight = ((height - gap * (rows - 1)) / rows) * (16 / 9);
    const w = Math.floor(Math.min(wByWidth, wByHeight));
    if (w > best.tileW) best = { cols, tileW: w };
  }
  if (best.tileW < MIN_TILE_W) {
    // Too many to fit: keep a readable size and let the grid scroll.
    const cols = Math.max(1, Math.floor((width + gap) / (MIN_TILE_W + gap)));
    best = { cols, tileW: Math.floor(Math.min(width, (width - gap * (cols - 1)) / cols)) };
  }
  return best;
}
